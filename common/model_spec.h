// Helpers for contrail::ModelSpec (proto/contrail.proto): the fingerprint
// that tells whether two replicas hold the same architecture, and checks of a
// spec against tensors. Torch-free; thread-compatible free functions.
#ifndef CONTRAIL_COMMON_MODEL_SPEC_H_
#define CONTRAIL_COMMON_MODEL_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

namespace contrail {

// xxHash64 of the architecture, input shape, class count and every tensor's
// name, shape, dtype and kind, in order. Ignores spec.fingerprint itself.
uint64_t ComputeFingerprint(const ModelSpec& spec);

// Number of floats in tensor `i` of `spec`.
int64_t TensorSize(const TensorSpec& tensor);

// Number of floats in the whole model.
int64_t ModelSize(const ModelSpec& spec);

// OK when `views` has one span per tensor of `spec`, each of the spec's size.
absl::Status CheckViewsMatchSpec(const ModelSpec& spec,
                                 const ConstTensorViews& views);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_MODEL_SPEC_H_
