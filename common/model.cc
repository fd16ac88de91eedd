#include "common/model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

constexpr int64_t kClasses = 10;
const std::vector<int64_t> kInputShape = {1, 28, 28};

struct LeNet5Impl : torch::nn::Module {
  LeNet5Impl()
      : conv1(register_module(
            "conv1", torch::nn::Conv2d(
                         torch::nn::Conv2dOptions(1, 6, 5).padding(2)))),
        conv2(register_module("conv2", torch::nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", torch::nn::Linear(16 * 5 * 5, 120))),
        fc2(register_module("fc2", torch::nn::Linear(120, 84))),
        fc3(register_module("fc3", torch::nn::Linear(84, kClasses))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    x = x.flatten(1);
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return fc3->forward(x);
  }

  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2, fc3;
};

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", torch::nn::Linear(28 * 28, 256))),
        fc2(register_module("fc2", torch::nn::Linear(256, 128))),
        fc3(register_module("fc3", torch::nn::Linear(128, kClasses))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = x.flatten(1);
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return fc3->forward(x);
  }

  torch::nn::Linear fc1, fc2, fc3;
};

std::string DtypeName(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat ? "float32"
                                          : std::string(c10::toString(t.scalar_type()));
}

}  // namespace

std::vector<std::string> Model::Architectures() { return {"lenet5", "mlp"}; }

absl::StatusOr<std::unique_ptr<Model>> Model::Create(
    const std::string& architecture, uint64_t seed) {
  torch::manual_seed(seed);
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  if (architecture == "lenet5") {
    auto m = std::make_shared<LeNet5Impl>();
    forward = [m](const torch::Tensor& x) { return m->forward(x); };
    module = m;
  } else if (architecture == "mlp") {
    auto m = std::make_shared<MlpImpl>();
    forward = [m](const torch::Tensor& x) { return m->forward(x); };
    module = m;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown model architecture \"", architecture,
                     "\"; expected one of ", absl::StrJoin(Architectures(), ", ")));
  }
  ModelSpec spec;
  spec.set_architecture(architecture);
  for (int64_t d : kInputShape) spec.add_input_shape(d);
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
  for (const auto& p : module->named_parameters(/*recurse=*/true)) {
    add(p.key(), p.value(), /*buffer=*/false);
  }
  const int num_parameters = static_cast<int>(tensors.size());
  for (const auto& b : module->named_buffers(/*recurse=*/true)) {
    add(b.key(), b.value(), /*buffer=*/true);
  }
  for (const torch::Tensor& t : tensors) {
    if (t.scalar_type() != torch::kFloat || !t.is_contiguous()) {
      return absl::InternalError(absl::StrCat(
          "model ", architecture, " has a tensor that is not contiguous float32"));
    }
  }
  spec.set_fingerprint(ComputeFingerprint(spec));
  return std::unique_ptr<Model>(new Model(std::move(module), std::move(spec),
                                          std::move(tensors), num_parameters,
                                          std::move(forward)));
}

Model::Model(std::shared_ptr<torch::nn::Module> module, ModelSpec spec,
             std::vector<torch::Tensor> tensors, int num_parameter_tensors,
             std::function<torch::Tensor(const torch::Tensor&)> forward)
    : module_(std::move(module)),
      spec_(std::move(spec)),
      tensors_(std::move(tensors)),
      num_parameter_tensors_(num_parameter_tensors),
      forward_(std::move(forward)) {}

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
  return forward_(inputs);
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

void Model::SetTraining(bool training) { module_->train(training); }

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
