// Torch-free views of a model's tensors: one span of floats per parameter or
// buffer, in the model's flattening order (see common/model.h). Versioning,
// codec and selection code works on these, so it builds and tests without
// LibTorch.
#ifndef CONTRAIL_COMMON_TENSOR_VIEWS_H_
#define CONTRAIL_COMMON_TENSOR_VIEWS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace contrail {

using TensorViews = std::vector<absl::Span<float>>;
using ConstTensorViews = std::vector<absl::Span<const float>>;

inline ConstTensorViews AsConst(const TensorViews& views) {
  return ConstTensorViews(views.begin(), views.end());
}

// xxHash64 over the bytes of every tensor in order: equal checksums mean
// bit-identical models (up to hash collisions).
uint64_t ChecksumTensors(const ConstTensorViews& tensors);

// Total number of floats.
int64_t CountEntries(const ConstTensorViews& tensors);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_TENSOR_VIEWS_H_
