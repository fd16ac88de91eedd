#include "trainer/sparse_optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/float_bytes.h"

namespace contrail {

SparseOptimizer::SparseOptimizer(const Options& options,
                                 std::vector<int64_t> tensor_sizes)
    : options_(options) {
  if (options_.kind != OptimizerKind::kAdam) return;
  for (int64_t n : tensor_sizes) {
    first_moment_.emplace_back(n, 0.0f);
    second_moment_.emplace_back(n, 0.0f);
  }
}

void SparseOptimizer::BeginStep() {
  ++step_;
  // torch.optim.Adam: step_size = lr / (1 - beta1^t),
  // denom = sqrt(v) / sqrt(1 - beta2^t) + eps.
  const double t = static_cast<double>(step_);
  step_size_ =
      static_cast<float>(options_.lr / (1.0 - std::pow(options_.beta1, t)));
  bias_correction2_sqrt_ =
      static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
}

void SparseOptimizer::AdamEntry(size_t tensor, size_t i, float g, float* w) {
  const float beta1 = static_cast<float>(options_.beta1);
  const float beta2 = static_cast<float>(options_.beta2);
  float& m = first_moment_[tensor][i];
  float& v = second_moment_[tensor][i];
  m = beta1 * m + (1.0f - beta1) * g;
  v = beta2 * v + (1.0f - beta2) * g * g;
  const float denom = std::sqrt(v) / bias_correction2_sqrt_ +
                      static_cast<float>(options_.epsilon);
  *w -= step_size_ * m / denom;
}

void SparseOptimizer::Update(size_t tensor, absl::Span<float> weights,
                             absl::Span<const float> gradient,
                             absl::Span<const uint32_t> indices) {
  if (options_.kind == OptimizerKind::kSgd) {
    const float lr = static_cast<float>(options_.lr);
    for (uint32_t i : indices) weights[i] -= lr * gradient[i];
    return;
  }
  for (uint32_t i : indices) AdamEntry(tensor, i, gradient[i], &weights[i]);
}

void SparseOptimizer::UpdateDense(size_t tensor, absl::Span<float> weights,
                                  absl::Span<const float> gradient) {
  if (options_.kind == OptimizerKind::kSgd) {
    const float lr = static_cast<float>(options_.lr);
    for (size_t i = 0; i < weights.size(); ++i) weights[i] -= lr * gradient[i];
    return;
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    AdamEntry(tensor, i, gradient[i], &weights[i]);
  }
}

void SparseOptimizer::SaveState(OptimizerState* out) const {
  out->set_step(step_);
  for (const std::vector<float>& m : first_moment_) {
    out->mutable_first_moment()->add_tensors(FloatsToBytes(m));
  }
  for (const std::vector<float>& v : second_moment_) {
    out->mutable_second_moment()->add_tensors(FloatsToBytes(v));
  }
}

absl::Status SparseOptimizer::RestoreState(const OptimizerState& state) {
  if (state.first_moment().tensors_size() != static_cast<int>(first_moment_.size()) ||
      state.second_moment().tensors_size() != static_cast<int>(second_moment_.size())) {
    return absl::DataLossError(absl::StrCat(
        "optimizer state for ", state.first_moment().tensors_size(), " tensors, the model has ",
        first_moment_.size()));
  }
  for (size_t t = 0; t < first_moment_.size(); ++t) {
    if (absl::Status s = BytesToFloats(state.first_moment().tensors(t),
                                       absl::MakeSpan(first_moment_[t]), "first moment");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = BytesToFloats(state.second_moment().tensors(t),
                                       absl::MakeSpan(second_moment_[t]), "second moment");
        !s.ok()) {
      return s;
    }
  }
  step_ = state.step();
  return absl::OkStatus();
}

}  // namespace contrail
