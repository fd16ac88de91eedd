// Forms the mini-batches of proactive training (Prapas et al. 2021, §3): the
// t newest examples plus b - t examples drawn uniformly, without repeats,
// from the historical data seen before them.
//
// Torch-free. Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_PROACTIVE_SAMPLER_H_
#define CONTRAIL_TRAINER_PROACTIVE_SAMPLER_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/rng_state.h"

namespace contrail {

class ProactiveSampler {
 public:
  explicit ProactiveSampler(uint64_t seed) : rng_(seed) {}

  // Returns `new_examples` followed by min(batch_size - t, history_size)
  // distinct indices drawn uniformly from [0, history_size), where
  // t = new_examples.size(). With t >= batch_size the batch is the new
  // examples alone (online training).
  std::vector<int64_t> FormBatch(absl::Span<const int64_t> new_examples,
                                 int64_t history_size, int64_t batch_size) {
    return FormBatch(new_examples, 0, history_size, batch_size);
  }
  // The same, drawing from [history_begin, history_end) (a bounded
  // history): history_begin + the draws from [0, history_end - history_begin).
  std::vector<int64_t> FormBatch(absl::Span<const int64_t> new_examples,
                                 int64_t history_begin, int64_t history_end,
                                 int64_t batch_size);

  // The generator's state, for a checkpoint.
  std::string SaveState() const { return RngState(rng_); }
  absl::Status RestoreState(const std::string& state) {
    return RestoreRng(state, "sampler", &rng_);
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_PROACTIVE_SAMPLER_H_
