#include "trainer/proactive_sampler.h"

#include <algorithm>
#include <unordered_set>

namespace contrail {

std::vector<int64_t> ProactiveSampler::FormBatch(
    absl::Span<const int64_t> new_examples, int64_t history_begin,
    int64_t history_end, int64_t batch_size) {
  const int64_t history_size = std::max<int64_t>(history_end - history_begin, 0);
  std::vector<int64_t> batch(new_examples.begin(), new_examples.end());
  const int64_t wanted = std::min<int64_t>(
      std::max<int64_t>(batch_size - static_cast<int64_t>(new_examples.size()), 0),
      history_size);
  if (wanted == 0) return batch;
  // Floyd's algorithm: `wanted` distinct draws in O(wanted), whatever the
  // size of the history.
  std::unordered_set<int64_t> chosen;
  chosen.reserve(wanted * 2);
  for (int64_t j = history_size - wanted; j < history_size; ++j) {
    std::uniform_int_distribution<int64_t> draw(0, j);
    const int64_t t = draw(rng_);
    const int64_t pick = chosen.insert(t).second ? t : j;
    if (pick == j) chosen.insert(j);
    batch.push_back(history_begin + pick);
  }
  return batch;
}

}  // namespace contrail
