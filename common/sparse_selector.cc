#include "common/sparse_selector.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "common/float_bytes.h"
#include "common/rng_state.h"

namespace contrail {

int64_t KeepCount(int64_t n, double ratio) {
  if (n <= 0) return 0;
  const int64_t k = std::llround(ratio * static_cast<double>(n));
  return std::clamp<int64_t>(k, 1, n);
}

void SelectRandomK(int64_t n, int64_t k, std::mt19937_64* rng,
                   std::vector<uint32_t>* indices) {
  indices->clear();
  k = std::clamp<int64_t>(k, 0, n);
  if (k == n) {
    indices->resize(n);
    std::iota(indices->begin(), indices->end(), 0u);
    return;
  }
  // Floyd: for j in [n-k, n), draw t in [0, j]; take t unless taken, else j.
  std::unordered_set<uint32_t> chosen;
  chosen.reserve(k * 2);
  for (int64_t j = n - k; j < n; ++j) {
    std::uniform_int_distribution<int64_t> draw(0, j);
    const auto t = static_cast<uint32_t>(draw(*rng));
    if (!chosen.insert(t).second) chosen.insert(static_cast<uint32_t>(j));
  }
  indices->assign(chosen.begin(), chosen.end());
  std::sort(indices->begin(), indices->end());
}

SparseSelector::SparseSelector(const Options& options,
                               std::vector<int64_t> tensor_sizes)
    : options_(options),
      tensor_sizes_(std::move(tensor_sizes)),
      rng_(options.seed) {
  residuals_.resize(tensor_sizes_.size());
  if (options_.sparsity == Sparsity::kNone) return;
  for (size_t i = 0; i < tensor_sizes_.size(); ++i) {
    residuals_[i].assign(tensor_sizes_[i], 0.0f);
  }
}

void SparseSelector::Select(size_t tensor, absl::Span<float> gradient,
                            std::vector<uint32_t>* indices) {
  const int64_t n = static_cast<int64_t>(gradient.size());
  if (options_.sparsity == Sparsity::kNone) {
    indices->resize(n);
    std::iota(indices->begin(), indices->end(), 0u);
    return;
  }
  // No dense temporaries: the residual becomes gradient + residual in
  // place, the selection reads it, and only the selected entries move.
  std::vector<float>& residual = residuals_[tensor];
  for (int64_t i = 0; i < n; ++i) residual[i] += gradient[i];
  const int64_t k = KeepCount(n, options_.ratio);
  if (options_.sparsity == Sparsity::kTopK) {
    SelectTopK(residual, k, indices);
  } else {
    SelectRandomK(n, k, &rng_, indices);
  }
  for (uint32_t i : *indices) {
    gradient[i] = residual[i];
    residual[i] = 0.0f;
  }
}

void SparseSelector::SaveState(SelectorState* out) const {
  for (const std::vector<float>& r : residuals_) {
    out->mutable_residuals()->add_tensors(FloatsToBytes(r));
  }
  out->set_rng(RngState(rng_));
}

absl::Status SparseSelector::RestoreState(const SelectorState& state) {
  if (state.residuals().tensors_size() != static_cast<int>(residuals_.size())) {
    return absl::DataLossError(absl::StrCat("residuals for ", state.residuals().tensors_size(),
                                            " tensors, the model has ", residuals_.size()));
  }
  for (size_t t = 0; t < residuals_.size(); ++t) {
    if (absl::Status s = BytesToFloats(state.residuals().tensors(t),
                                       absl::MakeSpan(residuals_[t]), "residual");
        !s.ok()) {
      return s;
    }
  }
  return RestoreRng(state.rng(), "selector", &rng_);
}

}  // namespace contrail
