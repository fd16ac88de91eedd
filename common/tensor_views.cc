#include "common/tensor_views.h"

#include <xxhash.h>

namespace contrail {

uint64_t ChecksumTensors(const ConstTensorViews& tensors) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, /*seed=*/0);
  for (absl::Span<const float> t : tensors) {
    XXH64_update(state, t.data(), t.size() * sizeof(float));
  }
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}

int64_t CountEntries(const ConstTensorViews& tensors) {
  int64_t n = 0;
  for (absl::Span<const float> t : tensors) n += static_cast<int64_t>(t.size());
  return n;
}

}  // namespace contrail
