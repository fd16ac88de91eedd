// The update codec: encodes the changed entries of a model into an Update
// message, and decodes and applies one. The trainer applies every update it
// publishes to its mirror with ApplyUpdate, the same code a server runs, so
// that mirror and servers stay bit-identical.
//
// Payload checksum: xxHash64 over the update's header fields and every
// TensorUpdate's fields in order (see PayloadChecksum); a replica rejects an
// update whose checksum does not match before it touches its model.
//
// Torch-free, stateless free functions; thread-compatible.
#ifndef CONTRAIL_COMMON_UPDATE_CODEC_H_
#define CONTRAIL_COMMON_UPDATE_CODEC_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

namespace contrail {

// Appends the entries `indices` (strictly increasing) of tensor `tensor` with
// the new values `values` (one per index) to `update`.
void AppendSparseTensor(uint32_t tensor, absl::Span<const uint32_t> indices,
                        absl::Span<const float> values, Update* update);

// Appends every entry of tensor `tensor` to `update`.
void AppendDenseTensor(uint32_t tensor, absl::Span<const float> values,
                       Update* update);

// xxHash64 of the version fields, fingerprint, run, encoding and every
// TensorUpdate (everything but `checksum`, `spec` and `model_checksum`).
uint64_t PayloadChecksum(const Update& update);

// Sets update->checksum.
void SealUpdate(Update* update);

// One tensor's entries, decoded. `indices` is empty when `dense`.
struct DecodedTensor {
  uint32_t tensor = 0;
  bool dense = false;
  std::vector<uint32_t> indices;
  std::vector<float> values;
};

// Checks `update` against `spec` (fingerprint, checksum, tensor numbers,
// entry counts, varints, index ranges and order) and decodes it. Any defect
// gives INVALID_ARGUMENT (malformed) or DATA_LOSS (checksum) with a message
// naming it; nothing is ever read out of bounds.
absl::StatusOr<std::vector<DecodedTensor>> DecodeUpdate(const Update& update,
                                                        const ModelSpec& spec);

// Writes decoded entries into `model` (views matching the spec they were
// decoded against).
void ApplyDecoded(const std::vector<DecodedTensor>& decoded,
                  const TensorViews& model);

// DecodeUpdate, then ApplyDecoded: `model` is untouched unless the whole
// update is valid.
absl::Status ApplyUpdate(const Update& update, const ModelSpec& spec,
                         const TensorViews& model);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_UPDATE_CODEC_H_
