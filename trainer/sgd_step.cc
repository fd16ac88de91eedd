#include "trainer/sgd_step.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model_spec.h"

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
                 const SparseSelector::Options& sparsity)
    : model_(model),
      sparsity_enabled_(sparsity.sparsity != Sparsity::kNone),
      optimizer_(optimizer, ParameterSizes(*model)),
      selector_(sparsity, ParameterSizes(*model)) {}

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
  const torch::Tensor loss =
      torch::nn::functional::cross_entropy(model_->Forward(inputs), labels);
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value)) {
    ++skipped_steps_;
    return std::nan("");
  }
  loss.backward();
  optimizer_.BeginStep();
  TensorViews weights = model_->Views();
  TensorViews gradients = model_->GradientViews();
  for (int t = 0; t < model_->num_parameter_tensors(); ++t) {
    if (gradients[t].empty()) continue;
    if (sparse && sparsity_enabled_) {
      selector_.Select(t, gradients[t], &selected_);
      optimizer_.Update(t, weights[t], gradients[t], selected_);
    } else {
      optimizer_.UpdateDense(t, weights[t], gradients[t]);
    }
  }
  return loss_value;
}

}  // namespace contrail
