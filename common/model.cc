#include "common/model.h"

#include <torch/torch.h>

#include <cmath>
#include <exception>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/architectures.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

std::string DtypeName(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat ? "float32"
                                          : std::string(c10::toString(t.scalar_type()));
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// INVALID_ARGUMENT unless what `signature` sets is usable.
absl::Status CheckSignature(const Model::Signature& signature) {
  for (int64_t d : signature.input_shape) {
    if (d < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input_shape ", ShapeString(signature.input_shape), " has a size < 1"));
    }
  }
  if (signature.num_classes < 0 ||
      signature.num_classes > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes must be >= 1, got ", signature.num_classes));
  }
  return absl::OkStatus();
}

Model::Signature WithDefaults(Model::Signature signature) {
  if (signature.input_shape.empty()) {
    signature.input_shape.assign(std::begin(kDefaultInputShape), std::end(kDefaultInputShape));
  }
  if (signature.num_classes == 0) signature.num_classes = kDefaultNumClasses;
  return signature;
}

}  // namespace

struct Model::Impl {
  Network network;
  torch::Device device = torch::kCPU;
  // Parameters then buffers; they share storage with network.
  std::vector<torch::Tensor> tensors;
};

void SetLibTorchThreads(int threads) { torch::set_num_threads(threads); }

std::vector<std::string> Model::Architectures() { return ArchitectureNames(); }

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const std::string& architecture,
                                                     uint64_t seed,
                                                     const Signature& requested) {
  const absl::Status usable = CheckSignature(requested);
  if (!usable.ok()) return usable;
  const Signature signature = WithDefaults(requested);
  try {
    torch::manual_seed(seed);
    absl::StatusOr<Network> network =
        BuildNetwork(architecture, signature.input_shape, signature.num_classes);
    if (!network.ok()) return network.status();
    auto impl = std::make_unique<Impl>();
    impl->network = *std::move(network);
    return FromImpl(std::move(impl), architecture, signature);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building ", architecture,
                                            " failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("building ", architecture, " failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateFromTorchScript(
    const std::string& module_bytes, const std::string& name, const Signature& requested) {
  const absl::Status usable = CheckSignature(requested);
  if (!usable.ok()) return usable;
  absl::StatusOr<Network> network = LoadTorchScript(module_bytes);
  if (!network.ok()) return network.status();
  // What the module declares wins; a request may only repeat it.
  Signature signature = requested;
  const std::vector<int64_t>& declared_shape = network->declared_input_shape;
  if (!declared_shape.empty()) {
    if (!requested.input_shape.empty() && requested.input_shape != declared_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input_shape ", ShapeString(requested.input_shape),
          " contradicts the input_shape ", ShapeString(declared_shape),
          " that the TorchScript module ", name, " declares"));
    }
    signature.input_shape = declared_shape;
  }
  const int64_t declared_classes = network->declared_num_classes;
  if (declared_classes != 0) {
    if (requested.num_classes != 0 && requested.num_classes != declared_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "num_classes ", requested.num_classes, " contradicts the num_classes ",
          declared_classes, " that the TorchScript module ", name, " declares"));
    }
    signature.num_classes = declared_classes;
  }
  signature = WithDefaults(std::move(signature));
  const absl::Status fits =
      CheckNetworkShape(*network, signature.input_shape, signature.num_classes);
  if (!fits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TorchScript module ", name, ": ", fits.message()));
  }
  auto impl = std::make_unique<Impl>();
  impl->network = *std::move(network);
  absl::StatusOr<std::unique_ptr<Model>> model =
      FromImpl(std::move(impl), absl::StrCat("torchscript:", name), signature);
  if (model.ok()) (*model)->torchscript_module_ = module_bytes;
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& name_or_path,
                                                   uint64_t seed,
                                                   const Signature& signature) {
  if (!absl::EndsWith(name_or_path, ".pt")) return Create(name_or_path, seed, signature);
  std::ifstream file(name_or_path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrCat("cannot open TorchScript file ", name_or_path));
  }
  std::ostringstream bytes;
  bytes << file.rdbuf();
  if (file.bad()) {
    return absl::DataLossError(absl::StrCat("error reading ", name_or_path));
  }
  return CreateFromTorchScript(bytes.str(),
                               name_or_path.substr(name_or_path.find_last_of('/') + 1),
                               signature);
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateLike(const Model& other,
                                                         uint64_t seed) {
  const std::string& architecture = other.spec().architecture();
  if (other.torchscript_module_.empty()) {
    return Create(architecture, seed, other.signature());
  }
  return CreateFromTorchScript(other.torchscript_module_,
                               architecture.substr(architecture.find(':') + 1),
                               other.signature());
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateFromSpec(
    const ModelSpec& spec, const std::string& torchscript_module) {
  const Signature signature{
      std::vector<int64_t>(spec.input_shape().begin(), spec.input_shape().end()),
      spec.num_classes()};
  const std::string& architecture = spec.architecture();
  constexpr absl::string_view kTorchScript = "torchscript:";
  absl::StatusOr<std::unique_ptr<Model>> model =
      absl::StartsWith(architecture, kTorchScript)
          ? CreateFromTorchScript(torchscript_module,
                                  architecture.substr(kTorchScript.size()), signature)
          : Create(architecture, /*seed=*/0, signature);
  if (!model.ok()) return model.status();
  if ((*model)->spec().fingerprint() != spec.fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", architecture, " built here for input_shape ",
        ShapeString(signature.input_shape), " and ", signature.num_classes,
        " classes has other tensors than the one described (fingerprint ",
        absl::Hex((*model)->spec().fingerprint()), ", expected ",
        absl::Hex(spec.fingerprint()), ")"));
  }
  return model;
}

Model::Signature Model::signature() const {
  return Signature{
      std::vector<int64_t>(spec_.input_shape().begin(), spec_.input_shape().end()),
      spec_.num_classes()};
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromImpl(
    absl::StatusOr<std::unique_ptr<Impl>> impl, const std::string& architecture,
    const Signature& signature) {
  if (!impl.ok()) return impl.status();
  ModelSpec spec;
  spec.set_architecture(architecture);
  for (int64_t d : signature.input_shape) spec.add_input_shape(d);
  spec.set_num_classes(static_cast<int32_t>(signature.num_classes));
  std::vector<torch::Tensor>& tensors = (*impl)->tensors;
  auto add = [&](const std::string& name, const torch::Tensor& t, bool buffer) {
    TensorSpec* ts = spec.add_tensors();
    ts->set_name(name);
    for (int64_t d : t.sizes()) ts->add_shape(d);
    ts->set_dtype(DtypeName(t));
    ts->set_is_buffer(buffer);
    tensors.push_back(t);
  };
  Network& network = (*impl)->network;
  // Models start in training mode (a TorchScript module may have been saved
  // in either), so that training_ says what the network does.
  network.set_training(true);
  for (const auto& [name, t] : network.parameters) add(name, t, /*buffer=*/false);
  const int num_parameters = static_cast<int>(tensors.size());
  for (const auto& [name, t] : network.buffers) add(name, t, /*buffer=*/true);
  for (const torch::Tensor& t : tensors) {
    if (t.scalar_type() != torch::kFloat || !t.is_contiguous() || !t.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", architecture, " has a tensor that is not contiguous float32 on the CPU"));
    }
  }
  spec.set_fingerprint(ComputeFingerprint(spec));
  return std::unique_ptr<Model>(
      new Model(*std::move(impl), std::move(spec), num_parameters));
}

Model::Model(std::unique_ptr<Impl> impl, ModelSpec spec, int num_parameter_tensors)
    : impl_(std::move(impl)),
      spec_(std::move(spec)),
      num_parameter_tensors_(num_parameter_tensors) {}

Model::~Model() = default;

absl::Status Model::MoveTo(const std::string& name) {
  std::optional<torch::Device> device;
  try {
    device.emplace(name);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown device \"", name, "\"; expected cpu, cuda or cuda:N"));
  }
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device ", name, ": this LibTorch has no CUDA (or sees no GPU); "
          "build against a CUDA LibTorch to train on a GPU (README: Training on a GPU)"));
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (device->has_index() && device->index() >= count) {
      return absl::OutOfRangeError(absl::StrCat("device ", name, ": this machine has ",
                                                count, " GPU(s)"));
    }
  } else if (!device->is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown device \"", name, "\"; expected cpu, cuda or cuda:N"));
  }
  try {
    impl_->network.to(*device);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("moving the model to ", name, ": ", e.what()));
  }
  impl_->device = *device;
  return absl::OkStatus();
}

std::string Model::device() const { return impl_->device.str(); }

bool Model::on_cpu() const { return impl_->device.is_cpu(); }

TensorViews Model::Views() {
  TensorViews views;
  if (!on_cpu()) return views;
  views.reserve(impl_->tensors.size());
  for (torch::Tensor& t : impl_->tensors) {
    views.emplace_back(t.data_ptr<float>(), t.numel());
  }
  return views;
}

ConstTensorViews Model::Views() const {
  ConstTensorViews views;
  if (!on_cpu()) return views;
  views.reserve(impl_->tensors.size());
  for (const torch::Tensor& t : impl_->tensors) {
    views.emplace_back(t.data_ptr<float>(), t.numel());
  }
  return views;
}

TensorViews Model::GradientViews() {
  TensorViews views;
  if (!on_cpu()) return views;
  views.reserve(num_parameter_tensors_);
  for (int i = 0; i < num_parameter_tensors_; ++i) {
    torch::Tensor grad = impl_->tensors[i].grad();
    if (grad.defined()) {
      views.emplace_back(grad.data_ptr<float>(), grad.numel());
    } else {
      views.emplace_back();
    }
  }
  return views;
}

uint64_t Model::Checksum() const {
  if (on_cpu()) return ChecksumTensors(Views());
  std::vector<torch::Tensor> host;
  ConstTensorViews views;
  for (const torch::Tensor& t : impl_->tensors) {
    host.push_back(t.to(torch::kCPU).contiguous());
    views.emplace_back(host.back().data_ptr<float>(), host.back().numel());
  }
  return ChecksumTensors(views);
}

at::Tensor Model::Forward(const at::Tensor& inputs) {
  return impl_->network.forward(inputs);
}

at::Tensor Model::Parameter(int index) { return impl_->tensors[index]; }

absl::Status Model::CheckInputShape(absl::Span<const int64_t> shape) const {
  const auto& expected = spec_.input_shape();
  bool ok = shape.size() == static_cast<size_t>(expected.size()) + 1 &&
            shape[0] >= 1;
  for (int i = 0; ok && i < expected.size(); ++i) ok = shape[i + 1] == expected[i];
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "expected inputs of shape [N, ", absl::StrJoin(expected, ", "),
      "] with N >= 1, got [", absl::StrJoin(shape, ", "), "]"));
}

absl::StatusOr<Model::Predictions> Model::Predict(absl::Span<const int64_t> shape,
                                                  absl::Span<const float> values) const {
  const absl::Status shape_ok = CheckInputShape(shape);
  if (!shape_ok.ok()) return shape_ok;
  const int64_t batch = shape[0];
  int64_t expected = 1;
  for (int64_t d : shape) expected *= d;
  if (static_cast<int64_t>(values.size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shape [", absl::StrJoin(shape, ", "), "] needs ", expected,
        " values, got ", values.size()));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value ", i, " (example ", i / (expected / batch), ") is not finite"));
    }
  }
  if (training_) {
    return absl::FailedPreconditionError(
        "Predict needs the model in inference mode: call SetTraining(false) first");
  }
  const int64_t classes = spec_.num_classes();
  Predictions out;
  out.num_classes = classes;
  try {
    c10::InferenceMode inference;
    const torch::Tensor inputs =
        torch::from_blob(const_cast<float*>(values.data()),
                         std::vector<int64_t>(shape.begin(), shape.end()), torch::kFloat)
            .to(impl_->device);
    const torch::Tensor logits = impl_->network.forward(inputs).to(torch::kCPU);
    if (logits.dim() != 2 || logits.size(0) != batch || logits.size(1) != classes) {
      return absl::InternalError(absl::StrCat(
          spec_.architecture(), " answered a batch of ", batch, " with logits of shape [",
          absl::StrJoin(logits.sizes().vec(), ", "), "], expected [", batch, ", ",
          classes, "]"));
    }
    const torch::Tensor probabilities =
        torch::softmax(logits.to(torch::kFloat), /*dim=*/1).contiguous();
    // The arg-max of the logits: softmax can round distinct logits to
    // equal probabilities.
    const torch::Tensor labels = logits.argmax(1).to(torch::kInt).contiguous();
    out.probabilities.assign(probabilities.data_ptr<float>(),
                             probabilities.data_ptr<float>() + probabilities.numel());
    out.labels.assign(labels.data_ptr<int32_t>(),
                      labels.data_ptr<int32_t>() + labels.numel());
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(spec_.architecture(), " inference failed: ",
                                            e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(spec_.architecture(), " inference failed: ", e.what()));
  } catch (...) {
    // Whatever a module's code throws, it must not end the process.
    return absl::InternalError(absl::StrCat(
        spec_.architecture(), " inference failed with an exception of unknown type"));
  }
  return out;
}

int64_t CountCorrect(const Model::Predictions& predictions,
                     absl::Span<const int64_t> labels) {
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size() && i < predictions.labels.size(); ++i) {
    correct += predictions.labels[i] == labels[i];
  }
  return correct;
}

bool Model::has_input_normalization() const {
  return impl_->network.input_mean.defined();
}

absl::Status Model::FitInputNormalization(absl::Span<const float> inputs,
                                          int64_t count) {
  if (!has_input_normalization()) return absl::OkStatus();
  const auto& shape = spec_.input_shape();
  int64_t example_size = 1;
  for (int64_t d : shape) example_size *= d;
  if (count < 0 || static_cast<int64_t>(inputs.size()) != count * example_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fitting the input normalisation to ", count, " examples of ", ShapeString(shape),
        " needs ", count * example_size, " floats, got ", inputs.size()));
  }
  if (count == 0) return absl::OkStatus();
  const int64_t channels = shape[0];
  const int64_t per_channel = example_size / channels;
  const double n = static_cast<double>(count) * per_channel;
  // Two passes in double: the mean, then the spread around it.
  std::vector<double> mean(channels, 0.0), spread(channels, 0.0);
  for (int64_t e = 0; e < count; ++e) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* v = inputs.data() + e * example_size + c * per_channel;
      double sum = 0;
      for (int64_t i = 0; i < per_channel; ++i) sum += v[i];
      mean[c] += sum;
    }
  }
  for (double& m : mean) m /= n;
  for (int64_t e = 0; e < count; ++e) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* v = inputs.data() + e * example_size + c * per_channel;
      double sum = 0;
      for (int64_t i = 0; i < per_channel; ++i) sum += (v[i] - mean[c]) * (v[i] - mean[c]);
      spread[c] += sum;
    }
  }
  std::vector<float> mean_values(channels), scale_values(channels);
  for (int64_t c = 0; c < channels; ++c) {
    if (!std::isfinite(mean[c]) || !std::isfinite(spread[c])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fitting the input normalisation: channel ", c, " of the ", count,
          " examples holds a non-finite value"));
    }
    const double std_dev = std::sqrt(spread[c] / n);
    const float scale = static_cast<float>(1.0 / std_dev);
    mean_values[c] = static_cast<float>(mean[c]);
    // A constant channel carries no information: leave it unscaled.
    scale_values[c] = std_dev > 0 && std::isfinite(scale) ? scale : 1.0f;
  }
  try {
    torch::NoGradGuard no_grad;
    impl_->network.input_mean.copy_(torch::tensor(mean_values));
    impl_->network.input_scale.copy_(torch::tensor(scale_values));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("setting the input normalisation: ", e.what()));
  }
  return absl::OkStatus();
}

void Model::SetTraining(bool training) {
  impl_->network.set_training(training);
  training_ = training;
}

void Model::ZeroGradients() {
  for (int i = 0; i < num_parameter_tensors_; ++i) {
    torch::Tensor grad = impl_->tensors[i].mutable_grad();
    if (grad.defined()) grad.zero_();
  }
}

absl::Status Model::CopyFrom(const Model& other) {
  if (other.spec_.fingerprint() != spec_.fingerprint()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot copy a ", other.spec_.architecture(), " into a ",
                     spec_.architecture(), ": fingerprints differ"));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    impl_->tensors[i].copy_(other.impl_->tensors[i]);
  }
  return absl::OkStatus();
}

}  // namespace contrail
