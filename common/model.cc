#include "common/model.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

std::string DtypeName(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat ? "float32"
                                          : std::string(c10::toString(t.scalar_type()));
}

}  // namespace

std::vector<std::string> Model::Architectures() { return ArchitectureNames(); }

absl::StatusOr<std::unique_ptr<Model>> Model::Create(
    const std::string& architecture, uint64_t seed) {
  torch::manual_seed(seed);
  try {
    return FromNetwork(BuildNetwork(architecture), architecture);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building ", architecture,
                                            " failed: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateFromTorchScript(
    const std::string& module_bytes, const std::string& name) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      FromNetwork(LoadTorchScript(module_bytes), absl::StrCat("torchscript:", name));
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

absl::StatusOr<std::unique_ptr<Model>> Model::FromNetwork(
    absl::StatusOr<Network> network, const std::string& architecture) {
  if (!network.ok()) return network.status();
  ModelSpec spec;
  spec.set_architecture(architecture);
  for (int64_t d : {kImageChannels, kImageSize, kImageSize}) spec.add_input_shape(d);
  spec.set_num_classes(kClasses);
  std::vector<torch::Tensor> tensors;
  auto add = [&](const std::string& name, const torch::Tensor& t, bool buffer) {
    TensorSpec* ts = spec.add_tensors();
    ts->set_name(name);
    for (int64_t d : t.sizes()) ts->add_shape(d);
    ts->set_dtype(DtypeName(t));
    ts->set_is_buffer(buffer);
    tensors.push_back(t);
  };
  for (const auto& [name, t] : network->parameters) add(name, t, /*buffer=*/false);
  const int num_parameters = static_cast<int>(tensors.size());
  for (const auto& [name, t] : network->buffers) add(name, t, /*buffer=*/true);
  for (const torch::Tensor& t : tensors) {
    if (t.scalar_type() != torch::kFloat || !t.is_contiguous() || !t.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", architecture, " has a tensor that is not contiguous float32 on the CPU"));
    }
  }
  spec.set_fingerprint(ComputeFingerprint(spec));
  return std::unique_ptr<Model>(new Model(*std::move(network), std::move(spec),
                                          std::move(tensors), num_parameters));
}

Model::Model(Network network, ModelSpec spec, std::vector<torch::Tensor> tensors,
             int num_parameter_tensors)
    : network_(std::move(network)),
      spec_(std::move(spec)),
      tensors_(std::move(tensors)),
      num_parameter_tensors_(num_parameter_tensors) {}

TensorViews Model::Views() {
  TensorViews views;
  views.reserve(tensors_.size());
  for (torch::Tensor& t : tensors_) {
    views.emplace_back(t.data_ptr<float>(), t.numel());
  }
  return views;
}

ConstTensorViews Model::Views() const {
  ConstTensorViews views;
  views.reserve(tensors_.size());
  for (const torch::Tensor& t : tensors_) {
    views.emplace_back(t.data_ptr<float>(), t.numel());
  }
  return views;
}

TensorViews Model::GradientViews() {
  TensorViews views;
  views.reserve(num_parameter_tensors_);
  for (int i = 0; i < num_parameter_tensors_; ++i) {
    torch::Tensor grad = tensors_[i].grad();
    if (grad.defined()) {
      views.emplace_back(grad.data_ptr<float>(), grad.numel());
    } else {
      views.emplace_back();
    }
  }
  return views;
}

uint64_t Model::Checksum() const { return ChecksumTensors(Views()); }

torch::Tensor Model::Forward(const torch::Tensor& inputs) {
  return network_.forward(inputs);
}

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

void Model::SetTraining(bool training) { network_.set_training(training); }

void Model::ZeroGradients() {
  for (int i = 0; i < num_parameter_tensors_; ++i) {
    torch::Tensor grad = tensors_[i].mutable_grad();
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
  for (size_t i = 0; i < tensors_.size(); ++i) {
    tensors_[i].copy_(other.tensors_[i]);
  }
  return absl::OkStatus();
}

}  // namespace contrail
