#include "trainer/sgd_step.h"

#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "common/model_spec.h"
#include "common/status_macros.h"

namespace contrail {
namespace {

std::vector<int64_t> ParameterSizes(const Model& model) {
  std::vector<int64_t> sizes;
  for (int i = 0; i < model.num_parameter_tensors(); ++i) {
    sizes.push_back(TensorSize(model.spec().tensors(i)));
  }
  return sizes;
}

}  // namespace

SgdStep::SgdStep(Model* model, const SparseOptimizer::Options& optimizer,
                 const SparseSelector::Options& sparsity, bool tensor_ops)
    : model_(model),
      optimizer_options_(optimizer),
      sparsity_(sparsity),
      sparsity_enabled_(sparsity.sparsity != Sparsity::kNone),
      tensor_ops_(tensor_ops || !model->on_cpu()),
      // The span path's state is only built when it runs.
      optimizer_(optimizer, tensor_ops_ ? std::vector<int64_t>() : ParameterSizes(*model)),
      selector_(sparsity, tensor_ops_ ? std::vector<int64_t>() : ParameterSizes(*model)) {}

absl::StatusOr<double> SgdStep::Run(const torch::Tensor& inputs,
                                    const torch::Tensor& labels, bool sparse) {
  try {
    return RunOrThrow(inputs, labels, sparse);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("training step failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training step failed: ", e.what()));
  }
}

double SgdStep::RunOrThrow(const torch::Tensor& inputs, const torch::Tensor& labels,
                           bool sparse) {
  model_->SetTraining(true);
  model_->ZeroGradients();
  const torch::Device device(model_->device());
  const torch::Tensor loss = torch::nn::functional::cross_entropy(
      model_->Forward(inputs.to(device)), labels.to(device));
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value)) {
    ++skipped_steps_;
    return std::nan("");
  }
  loss.backward();
  const bool sparse_step = sparse && sparsity_enabled_;
  if (tensor_ops_) {
    StepWithTensorOps(sparse_step);
  } else {
    StepOnSpans(sparse_step);
  }
  return loss_value;
}

void SgdStep::StepOnSpans(bool sparse) {
  optimizer_.BeginStep();
  TensorViews weights = model_->Views();
  TensorViews gradients = model_->GradientViews();
  for (int t = 0; t < model_->num_parameter_tensors(); ++t) {
    if (gradients[t].empty()) continue;
    if (sparse) {
      selector_.Select(t, gradients[t], &selected_);
      optimizer_.Update(t, weights[t], gradients[t], selected_);
    } else {
      optimizer_.UpdateDense(t, weights[t], gradients[t]);
    }
  }
}

void SgdStep::StepWithTensorOps(bool sparse) {
  torch::NoGradGuard no_grad;
  const bool adam = optimizer_options_.kind == OptimizerKind::kAdam;
  // SparseOptimizer's arithmetic, in the same float operations and order,
  // so that both paths round alike.
  ++device_steps_;
  const double t = static_cast<double>(device_steps_);
  const float step_size =
      static_cast<float>(optimizer_options_.lr / (1.0 - std::pow(optimizer_options_.beta1, t)));
  const float bias_correction2_sqrt =
      static_cast<float>(std::sqrt(1.0 - std::pow(optimizer_options_.beta2, t)));
  const float beta1 = static_cast<float>(optimizer_options_.beta1);
  const float beta2 = static_cast<float>(optimizer_options_.beta2);
  const float epsilon = static_cast<float>(optimizer_options_.epsilon);
  const float lr = static_cast<float>(optimizer_options_.lr);
  if (device_state_.empty()) device_state_.resize(model_->num_parameter_tensors());
  for (int i = 0; i < model_->num_parameter_tensors(); ++i) {
    torch::Tensor weights = model_->Parameter(i);
    const torch::Tensor grad = weights.grad();
    if (!grad.defined()) continue;
    const torch::Tensor flat_weights = weights.view({-1});
    torch::Tensor gradient = grad.reshape({-1});
    DeviceState& state = device_state_[i];
    if (!state.residual.defined()) {
      state.residual = torch::zeros_like(gradient);
      if (adam) {
        state.first_moment = torch::zeros_like(gradient);
        state.second_moment = torch::zeros_like(gradient);
      }
    }
    // Sparse: gradient + residual, k entries selected, the rest kept.
    torch::Tensor index;
    if (sparse) {
      const torch::Tensor sum = state.residual + gradient;
      const int64_t k = KeepCount(sum.numel(), sparsity_.ratio);
      index = sparsity_.sparsity == Sparsity::kTopK
                  ? std::get<1>(torch::topk(sum.abs(), k, /*dim=*/0, /*largest=*/true,
                                            /*sorted=*/false))
                  : torch::randperm(sum.numel(), torch::TensorOptions()
                                                     .dtype(torch::kLong)
                                                     .device(sum.device()))
                        .slice(0, 0, k);
      gradient = sum.index_select(0, index);
      state.residual = sum.index_fill(0, index, 0.0);
    }
    auto select = [&](const torch::Tensor& full) {
      return sparse ? full.index_select(0, index) : full;
    };
    auto store = [&](torch::Tensor& full, const torch::Tensor& values) {
      if (sparse) {
        full.index_copy_(0, index, values);
      } else {
        full.copy_(values);
      }
    };
    torch::Tensor change;
    if (adam) {
      const torch::Tensor m = select(state.first_moment) * beta1 + gradient * (1.0f - beta1);
      const torch::Tensor v =
          select(state.second_moment) * beta2 + gradient * (1.0f - beta2) * gradient;
      store(state.first_moment, m);
      store(state.second_moment, v);
      change = m * step_size / (v.sqrt() / bias_correction2_sqrt + epsilon);
    } else {
      change = gradient * lr;
    }
    if (sparse) {
      flat_weights.index_add_(0, index, -change);
    } else {
      flat_weights.sub_(change);
    }
  }
}

absl::Status SgdStep::SaveState(OptimizerState* optimizer,
                                SelectorState* selector) const {
  if (tensor_ops_ || !model_->on_cpu()) {
    return absl::UnimplementedError(
        "checkpoints of a model training on a GPU are not supported yet");
  }
  optimizer_.SaveState(optimizer);
  selector_.SaveState(selector);
  return absl::OkStatus();
}

absl::Status SgdStep::RestoreState(const OptimizerState& optimizer,
                                   const SelectorState& selector) {
  if (tensor_ops_ || !model_->on_cpu()) {
    return absl::UnimplementedError(
        "checkpoints of a model training on a GPU are not supported yet");
  }
  CONTRAIL_RETURN_IF_ERROR(optimizer_.RestoreState(optimizer));
  return selector_.RestoreState(selector);
}

}  // namespace contrail
