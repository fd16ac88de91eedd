// Per-tensor sparse selection with residual memory, the "sparse updates with
// memory" of Prapas et al. (2021), after Aji & Heafield (2017): add what
// earlier steps left behind to the gradient, keep k of N entries per tensor
// (the k largest magnitudes, or k at random), at least one per tensor, and
// carry the rest over to the next step.
//
// Torch-free. SparseSelector is not thread-safe; the training thread owns it.
#ifndef CONTRAIL_COMMON_SPARSE_SELECTOR_H_
#define CONTRAIL_COMMON_SPARSE_SELECTOR_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/top_k.h"
#include "proto/checkpoint.pb.h"

namespace contrail {

enum class Sparsity {
  kNone,     // dense: every entry, no residual
  kTopK,     // the k largest magnitudes
  kRandomK,  // k entries drawn uniformly without replacement
};

// Entries kept from a tensor of n: round(ratio * n), at least 1, at most n.
int64_t KeepCount(int64_t n, double ratio);

// k distinct indices of [0, n) drawn uniformly (Floyd's algorithm), in
// increasing order.
void SelectRandomK(int64_t n, int64_t k, std::mt19937_64* rng,
                   std::vector<uint32_t>* indices);

class SparseSelector {
 public:
  struct Options {
    Sparsity sparsity = Sparsity::kTopK;
    // Fraction of each tensor's entries kept per step (see KeepCount).
    double ratio = 0.001;
    // Seeds random-k.
    uint64_t seed = 1;
  };

  // `tensor_sizes`: the number of entries of each tensor, in model order.
  SparseSelector(const Options& options, std::vector<int64_t> tensor_sizes);

  // Adds `gradient` to tensor `tensor`'s residual, selects entries of the
  // sum into `indices` (increasing), moves the selected entries of the sum
  // into `gradient` (its other entries are left as they were) and keeps the
  // unselected ones as the new residual (zero at the selected ones). With
  // Sparsity::kNone every index is selected, `gradient` is untouched and
  // the residual stays zero.
  void Select(size_t tensor, absl::Span<float> gradient,
              std::vector<uint32_t>* indices);

  absl::Span<const float> residual(size_t tensor) const {
    return residuals_[tensor];
  }
  const Options& options() const { return options_; }

  // The residuals and random-k's generator, for a checkpoint;
  // RestoreState() takes them back (DATA_LOSS when they do not fit).
  void SaveState(SelectorState* out) const;
  absl::Status RestoreState(const SelectorState& state);

 private:
  const Options options_;
  const std::vector<int64_t> tensor_sizes_;
  std::vector<std::vector<float>> residuals_;
  std::mt19937_64 rng_;
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_SPARSE_SELECTOR_H_
