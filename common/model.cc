#include "common/model.h"

#include <torch/torch.h>

#include <cmath>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/architectures.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

std::string DtypeName(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat ? "float32"
                                          : std::string(c10::toString(t.scalar_type()));
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

absl::StatusOr<std::unique_ptr<Model>> Model::Create(
    const std::string& architecture, uint64_t seed) {
  try {
    torch::manual_seed(seed);
    absl::StatusOr<Network> network = BuildNetwork(architecture);
    if (!network.ok()) return network.status();
    auto impl = std::make_unique<Impl>();
    impl->network = *std::move(network);
    return FromImpl(std::move(impl), architecture);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building ", architecture,
                                            " failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("building ", architecture, " failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateFromTorchScript(
    const std::string& module_bytes, const std::string& name) {
  absl::StatusOr<Network> network = LoadTorchScript(module_bytes);
  if (!network.ok()) return network.status();
  auto impl = std::make_unique<Impl>();
  impl->network = *std::move(network);
  absl::StatusOr<std::unique_ptr<Model>> model =
      FromImpl(std::move(impl), absl::StrCat("torchscript:", name));
  if (model.ok()) (*model)->torchscript_module_ = module_bytes;
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& name_or_path,
                                                   uint64_t seed) {
  if (!absl::EndsWith(name_or_path, ".pt")) return Create(name_or_path, seed);
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
                               name_or_path.substr(name_or_path.find_last_of('/') + 1));
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateLike(const Model& other,
                                                         uint64_t seed) {
  const std::string& architecture = other.spec().architecture();
  if (other.torchscript_module_.empty()) return Create(architecture, seed);
  return CreateFromTorchScript(other.torchscript_module_,
                               architecture.substr(architecture.find(':') + 1));
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromImpl(
    absl::StatusOr<std::unique_ptr<Impl>> impl, const std::string& architecture) {
  if (!impl.ok()) return impl.status();
  ModelSpec spec;
  spec.set_architecture(architecture);
  for (int64_t d : {kImageChannels, kImageSize, kImageSize}) spec.add_input_shape(d);
  spec.set_num_classes(kClasses);
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
