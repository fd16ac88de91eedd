// The update codec: encodes the changed entries of a model into an Update
// message, and decodes and applies one. The trainer applies every update it
// publishes to its mirror with ApplyUpdate, the same code a server runs, so
// that mirror and servers stay bit-identical.
//
// Values travel in the update's ValueEncoding: FP32_ASSIGN carries the new
// values themselves (exact); FP16_DELTA and BF16_DELTA carry rounded
// differences that the replica adds, so that the rounding error stays in
// trainer - mirror and goes out with a later update. Indices are Rice coded
// (common/index_coder.h).
//
// Two forms carry sparse entries. The model-wide form is one SparseEntries
// section whose positions are flat over the concatenation of the spec's
// tensors: one Rice code and one value blob for the whole update, so that a
// small update pays no per-tensor framing (a LeNet-5 update at 0.1 %, 67
// entries over 10 tensors, drops from 534 to 430 bytes, its header and
// framing from 171 to 67). The per-tensor form is one TensorUpdate per
// tensor (AppendSparseTensor); it carries dense tensors and snapshots, and
// every update written before the model-wide form existed (update logs
// replay them), which still decode. The trainer's SparseUpdateWriter sends
// whichever is smaller. An update carries one form or the other, never
// both.
//
// Payload checksum: xxHash64 over the update's header fields, every
// TensorUpdate's fields in order and the SparseEntries section when present
// (see PayloadChecksum); a replica rejects an update whose checksum does not
// match before it touches its model.
//
// Torch-free, stateless free functions and one single-use writer;
// thread-compatible.
#ifndef CONTRAIL_COMMON_UPDATE_CODEC_H_
#define CONTRAIL_COMMON_UPDATE_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

namespace contrail {

// "fp32", "fp16", "bf16" -> FP32_ASSIGN, FP16_DELTA, BF16_DELTA.
absl::StatusOr<ValueEncoding> ParseValueEncoding(absl::string_view name);
// The name ParseValueEncoding() takes.
std::string ValueEncodingName(ValueEncoding encoding);

// True for the encodings whose values are added to the replica's entries.
bool IsDeltaEncoding(ValueEncoding encoding);

// Bytes per value on the wire for `encoding`.
int ValueBytes(ValueEncoding encoding);

// The range of TensorUpdate.scale_exponent in FP16_DELTA: the encoder maps
// the largest finite difference of a tensor, 2^-149 to 2^128, into
// [2^14, 2^15), so its exponent lies in [-149 - 14, 127 - 14].
constexpr int kMinFp16ScaleExponent = -163;
constexpr int kMaxFp16ScaleExponent = 113;

// Appends entries `indices` (strictly increasing) of tensor `tensor` to
// `update`, in update->encoding(): `values` (one per index) are the new
// values for FP32_ASSIGN, the differences trainer - replica for the delta
// encodings. Delta entries that are not finite, or round to zero or to an
// infinity, are left out. Returns the number of entries appended; appends nothing when that is
// zero.
int64_t AppendSparseTensor(uint32_t tensor, absl::Span<const uint32_t> indices,
                           absl::Span<const float> values, Update* update);

// Collects the sparse entries of one update, tensor by tensor, and writes
// them in whichever form serializes smaller: the model-wide SparseEntries
// section (which wins when the tensors' entries are about as sparse: it
// saves the per-tensor framing) or per-tensor TensorUpdates, as
// AppendSparseTensor writes them (which win when whole tensors travel
// beside sparse ones, e.g. batch-norm statistics beside 0.1 % of the
// weights: one Rice parameter fits neither). Both decode to the same
// entries. Models of 2^32 entries or more (whose flat positions would not
// fit 32 bits) always get the per-tensor form. Use: Append for each tensor with entries,
// in increasing tensor order, then Finish once.
// Not thread-safe; `spec` and `update` must outlive the writer.
class SparseUpdateWriter {
 public:
  // Entries go to `update` in update->encoding(); `spec` is the model's.
  SparseUpdateWriter(const ModelSpec& spec, Update* update);

  // As AppendSparseTensor: entries `indices` (strictly increasing, within
  // the tensor) of tensor `tensor`, which must be a tensor of the spec and
  // greater than every tensor appended before. Returns the number of entries kept (delta entries that
  // are not finite or round to zero or an infinity are left out).
  int64_t Append(uint32_t tensor, absl::Span<const uint32_t> indices,
                 absl::Span<const float> values);

  // Writes the collected entries into the update (nothing when there are
  // none). Call before SealUpdate.
  void Finish();

 private:
  const ModelSpec& spec_;
  Update* const update_;
  // Flat position of each tensor's first entry, and of the end.
  std::vector<int64_t> offsets_;
  // The model is too large for flat positions: per-tensor form.
  bool per_tensor_ = false;
  // The entries of one tensor: flat_[begin] up to the next run's begin.
  struct Run {
    uint32_t tensor;
    size_t begin;
    int scale_exponent;  // fp16 only
  };
  std::vector<uint32_t> flat_;  // flat positions of the kept entries
  std::string values_;  // their values on the wire
  std::vector<Run> runs_;  // one per tensor with entries, in tensor order
};

// The number of (index, value) entries `update` carries, in either form.
int64_t UpdateEntries(const Update& update);

// Appends every entry of tensor `tensor` as FP32 values to `update` (whose
// encoding must be FP32_ASSIGN: snapshots).
void AppendDenseTensor(uint32_t tensor, absl::Span<const float> values,
                       Update* update);

// xxHash64 of the version fields, fingerprint, run, encoding, every
// TensorUpdate and the SparseEntries section (everything but `checksum`,
// `spec`, `model_checksum`, `torchscript_module` and `publish_time_us`).
// Without a SparseEntries section it is the checksum of the updates written
// before that section existed.
uint64_t PayloadChecksum(const Update& update);

// Sets update->checksum.
void SealUpdate(Update* update);

// One tensor's entries, decoded. `indices` is empty when `dense`.
struct DecodedTensor {
  uint32_t tensor = 0;
  bool dense = false;
  // Values are differences to add rather than values to assign.
  bool add = false;
  std::vector<uint32_t> indices;
  std::vector<float> values;
};

// Checks `update` against `spec` (fingerprint, checksum, encoding, tensor
// numbers, entry counts, index code and ranges (flat positions below the
// model's size), one form only, fp16 scale exponents (one per tensor with
// entries in the model-wide form) within
// [kMinFp16ScaleExponent, kMaxFp16ScaleExponent] and 0 in other encodings,
// and every decoded value finite) and decodes it. Any defect gives
// FAILED_PRECONDITION (another model), DATA_LOSS (checksum) or
// INVALID_ARGUMENT (malformed) with a message naming it; nothing is ever
// read out of bounds. The model-wide form decodes to one DecodedTensor per
// tensor with entries, in tensor order, with indices within the tensor. A sealed update can still carry a NaN or an infinity
// (the trainer's own model diverged): no replica ever applies one.
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
