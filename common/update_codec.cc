#include "common/update_codec.h"

#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/half_float.h"
#include "common/index_coder.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

static_assert(sizeof(float) == 4, "fp32 values are 4 bytes on the wire");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec writes values in host order and assumes little-endian hosts"
#endif

void HashU64(XXH64_state_t* state, uint64_t v) {
  XXH64_update(state, &v, sizeof(v));
}

void HashBytes(XXH64_state_t* state, const std::string& bytes) {
  HashU64(state, bytes.size());
  XXH64_update(state, bytes.data(), bytes.size());
}

// The fp16 scale of a tensor's differences: the largest magnitude maps into
// [2^14, 2^15), safely below fp16's maximum of 65504.
int Fp16ScaleExponent(absl::Span<const float> values) {
  float largest = 0;
  for (float v : values) {
    if (std::isfinite(v)) largest = std::max(largest, std::fabs(v));
  }
  return largest > 0 ? std::ilogb(largest) - 14 : 0;
}

// Quantises `value` in `encoding`; returns the bits on the wire and, in
// *decoded, what the replica will add.
uint16_t Quantise(ValueEncoding encoding, int scale_exponent, float value,
                  float* decoded) {
  if (encoding == FP16_DELTA) {
    const uint16_t h = FloatToHalfBits(std::ldexp(value, -scale_exponent));
    *decoded = std::ldexp(HalfBitsToFloat(h), scale_exponent);
    return h;
  }
  const uint16_t b = FloatToBf16Bits(value);
  *decoded = Bf16BitsToFloat(b);
  return b;
}

// Quantises the delta entries (indices[i], values[i]) in `encoding` with
// `scale_exponent`: appends the wire bits of each kept entry to *bytes and
// its index plus `offset` to *kept. Entries that are not finite, or round to
// zero or to an infinity, are left out. Returns the number kept.
int64_t QuantiseEntries(ValueEncoding encoding, int scale_exponent,
                        absl::Span<const uint32_t> indices,
                        absl::Span<const float> values, int64_t offset,
                        std::vector<uint32_t>* kept, std::string* bytes) {
  int64_t appended = 0;
  for (size_t i = 0; i < indices.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    float decoded;
    const uint16_t bits = Quantise(encoding, scale_exponent, values[i], &decoded);
    // A difference near fp32's largest value can round up past it; no
    // replica would apply an infinity.
    if (decoded == 0 || !std::isfinite(decoded)) continue;
    kept->push_back(static_cast<uint32_t>(offset + indices[i]));
    bytes->append(reinterpret_cast<const char*>(&bits), 2);
    ++appended;
  }
  return appended;
}

// The value on the wire at `position` of `bytes` (which holds at least
// position + 1 values) in `encoding`.
float WireValue(const std::string& bytes, size_t position, ValueEncoding encoding,
                int scale_exponent) {
  if (encoding == FP32_ASSIGN) {
    float value;
    std::memcpy(&value, bytes.data() + 4 * position, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes.data() + 2 * position, 2);
  return encoding == FP16_DELTA ? std::ldexp(HalfBitsToFloat(bits), scale_exponent)
                                : Bf16BitsToFloat(bits);
}

// Serialized bytes of a length-delimited field with a one-byte tag (field
// numbers below 16) and a `payload`-byte payload.
size_t FieldBytes(size_t payload) {
  size_t varint = 1;
  for (size_t v = payload; v >= 0x80; v >>= 7) ++varint;
  return 1 + varint + payload;
}

absl::Status CheckScaleExponent(ValueEncoding encoding, int scale_exponent,
                                const std::string& tensor_name) {
  if (encoding == FP16_DELTA && (scale_exponent < kMinFp16ScaleExponent ||
                                 scale_exponent > kMaxFp16ScaleExponent)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update of ", tensor_name, " has fp16 scale exponent ", scale_exponent,
        ", outside [", kMinFp16ScaleExponent, ", ", kMaxFp16ScaleExponent, "]"));
  }
  if (encoding != FP16_DELTA && scale_exponent != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update of ", tensor_name, " has scale exponent ", scale_exponent,
        " in encoding ", ValueEncodingName(encoding), "; only fp16 values are scaled"));
  }
  return absl::OkStatus();
}

// Decodes the model-wide SparseEntries section of `update` (already checked
// against fingerprint and checksum) into one DecodedTensor per tensor with
// entries.
absl::Status DecodeSparseEntries(const Update& update, const ModelSpec& spec,
                                 std::vector<DecodedTensor>* out) {
  const SparseEntries& sparse = update.sparse();
  const ValueEncoding encoding = update.encoding();
  if (update.snapshot() || update.tensors_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " carries model-wide sparse entries beside ",
        update.snapshot() ? "a snapshot" : "per-tensor entries"));
  }
  std::vector<int64_t> offsets(spec.tensors_size() + 1, 0);
  for (int t = 0; t < spec.tensors_size(); ++t) {
    offsets[t + 1] = offsets[t] + TensorSize(spec.tensors(t));
  }
  const int64_t size = offsets.back();
  if (sparse.count() > size) {
    return absl::InvalidArgumentError(
        absl::StrCat("update ", update.version(), " has ", sparse.count(),
                     " entries, the model has only ", size));
  }
  const size_t value_bytes = static_cast<size_t>(ValueBytes(encoding));
  if (sparse.values().size() != static_cast<size_t>(sparse.count()) * value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " declares ", sparse.count(),
        " entries but carries ", sparse.values().size(), " value bytes, expected ",
        sparse.count() * value_bytes));
  }
  std::vector<uint32_t> flat;
  const absl::Status indices =
      DecodeIndices(sparse.indices(), sparse.rice_bits(), sparse.count(), size, &flat);
  if (!indices.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("update ", update.version(), ": ", indices.message()));
  }
  out->clear();
  int tensor = 0;
  int scales = 0;
  int scale_exponent = 0;  // of `tensor`
  for (size_t i = 0; i < flat.size(); ++i) {
    if (out->empty() || flat[i] >= offsets[tensor + 1]) {
      // Positions increase, so each tensor's entries are contiguous.
      while (flat[i] >= offsets[tensor + 1]) ++tensor;
      const std::string& name = spec.tensors(tensor).name();
      scale_exponent = 0;
      if (encoding == FP16_DELTA) {
        if (scales >= sparse.scale_exponents_size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "update ", update.version(), " has entries in more tensors than its ",
              sparse.scale_exponents_size(), " fp16 scale exponents"));
        }
        scale_exponent = sparse.scale_exponents(scales++);
      }
      const absl::Status scale = CheckScaleExponent(encoding, scale_exponent, name);
      if (!scale.ok()) return scale;
      DecodedTensor& t = out->emplace_back();
      t.tensor = static_cast<uint32_t>(tensor);
      t.add = IsDeltaEncoding(encoding);
    }
    DecodedTensor& t = out->back();
    const float value = WireValue(sparse.values(), i, encoding, scale_exponent);
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update of ", spec.tensors(tensor).name(), ": value ", t.values.size(),
          " is ", value, "; every value must be finite"));
    }
    t.indices.push_back(static_cast<uint32_t>(flat[i] - offsets[tensor]));
    t.values.push_back(value);
  }
  if (scales != sparse.scale_exponents_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " carries ", sparse.scale_exponents_size(),
        " scale exponents for entries in ", scales, " tensors"));
  }
  return absl::OkStatus();
}

absl::Status DecodeTensor(const TensorUpdate& t, ValueEncoding encoding,
                          const ModelSpec& spec, DecodedTensor* out) {
  if (t.tensor() >= static_cast<uint32_t>(spec.tensors_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("update names tensor ", t.tensor(), " but the model has ",
                     spec.tensors_size()));
  }
  const TensorSpec& ts = spec.tensors(t.tensor());
  const int64_t size = TensorSize(ts);
  out->tensor = t.tensor();
  out->dense = t.dense();
  out->add = IsDeltaEncoding(encoding);
  if (t.dense() && t.count() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense update of ", ts.name(), " has ", t.count(),
                     " entries, the tensor has ", size));
  }
  if (t.dense() && encoding != FP32_ASSIGN) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense update of ", ts.name(), " is not fp32"));
  }
  if (t.count() > size) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), " has ", t.count(),
                     " entries, the tensor has only ", size));
  }
  const size_t value_bytes = static_cast<size_t>(ValueBytes(encoding));
  if (t.values().size() != static_cast<size_t>(t.count()) * value_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), " declares ", t.count(),
                     " entries but carries ", t.values().size(),
                     " value bytes, expected ", t.count() * value_bytes));
  }
  const absl::Status scale = CheckScaleExponent(encoding, t.scale_exponent(), ts.name());
  if (!scale.ok()) return scale;
  out->values.resize(t.count());
  if (encoding == FP32_ASSIGN) {
    // memcpy from or to a null pointer is undefined even for 0 bytes, and
    // an empty vector's data() may be null.
    if (!t.values().empty()) {
      std::memcpy(out->values.data(), t.values().data(), t.values().size());
    }
  } else {
    const char* bytes = t.values().data();
    for (uint32_t i = 0; i < t.count(); ++i) {
      uint16_t bits;
      std::memcpy(&bits, bytes + 2 * i, 2);
      out->values[i] = encoding == FP16_DELTA
                           ? std::ldexp(HalfBitsToFloat(bits), t.scale_exponent())
                           : Bf16BitsToFloat(bits);
    }
  }
  for (size_t i = 0; i < out->values.size(); ++i) {
    if (!std::isfinite(out->values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update of ", ts.name(), ": value ", i, " of ", out->values.size(), " is ",
          out->values[i], "; every value must be finite"));
    }
  }
  out->indices.clear();
  if (t.dense()) {
    if (!t.indices().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dense update of ", ts.name(), " carries indices"));
    }
    return absl::OkStatus();
  }
  const absl::Status indices =
      DecodeIndices(t.indices(), t.rice_bits(), t.count(), size, &out->indices);
  if (!indices.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), ": ", indices.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValueEncoding> ParseValueEncoding(absl::string_view name) {
  if (name == "fp32") return FP32_ASSIGN;
  if (name == "fp16") return FP16_DELTA;
  if (name == "bf16") return BF16_DELTA;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown value encoding \"", name, "\"; expected fp32, fp16 or bf16"));
}

std::string ValueEncodingName(ValueEncoding encoding) {
  switch (encoding) {
    case FP32_ASSIGN:
      return "fp32";
    case FP16_DELTA:
      return "fp16";
    case BF16_DELTA:
      return "bf16";
    default:
      return absl::StrCat("encoding ", static_cast<int>(encoding));
  }
}

bool IsDeltaEncoding(ValueEncoding encoding) {
  return encoding == FP16_DELTA || encoding == BF16_DELTA;
}

int ValueBytes(ValueEncoding encoding) {
  return IsDeltaEncoding(encoding) ? 2 : 4;
}

int64_t AppendSparseTensor(uint32_t tensor, absl::Span<const uint32_t> indices,
                           absl::Span<const float> values, Update* update) {
  const ValueEncoding encoding = update->encoding();
  if (indices.empty()) return 0;
  if (!IsDeltaEncoding(encoding)) {
    TensorUpdate* t = update->add_tensors();
    t->set_tensor(tensor);
    t->set_count(static_cast<uint32_t>(indices.size()));
    t->set_rice_bits(ChooseRiceBits(indices));
    EncodeIndices(indices, t->rice_bits(), t->mutable_indices());
    t->set_values(values.data(), values.size() * sizeof(float));
    return static_cast<int64_t>(indices.size());
  }
  const int scale_exponent = encoding == FP16_DELTA ? Fp16ScaleExponent(values) : 0;
  std::vector<uint32_t> kept;
  std::string bytes;
  kept.reserve(indices.size());
  bytes.reserve(indices.size() * 2);
  QuantiseEntries(encoding, scale_exponent, indices, values, /*offset=*/0, &kept,
                  &bytes);
  if (kept.empty()) return 0;
  TensorUpdate* t = update->add_tensors();
  t->set_tensor(tensor);
  t->set_count(static_cast<uint32_t>(kept.size()));
  t->set_rice_bits(ChooseRiceBits(kept));
  EncodeIndices(kept, t->rice_bits(), t->mutable_indices());
  t->set_values(std::move(bytes));
  t->set_scale_exponent(scale_exponent);
  return static_cast<int64_t>(kept.size());
}

SparseUpdateWriter::SparseUpdateWriter(const ModelSpec& spec, Update* update)
    : spec_(spec), update_(update), offsets_(spec.tensors_size() + 1, 0) {
  for (int t = 0; t < spec.tensors_size(); ++t) {
    offsets_[t + 1] = offsets_[t] + TensorSize(spec.tensors(t));
  }
  per_tensor_ = offsets_.back() > int64_t{UINT32_MAX};
}

int64_t SparseUpdateWriter::Append(uint32_t tensor,
                                   absl::Span<const uint32_t> indices,
                                   absl::Span<const float> values) {
  if (per_tensor_) return AppendSparseTensor(tensor, indices, values, update_);
  if (indices.empty()) return 0;
  const ValueEncoding encoding = update_->encoding();
  const int64_t offset = offsets_[tensor];
  const size_t begin = flat_.size();
  int scale_exponent = 0;
  if (!IsDeltaEncoding(encoding)) {
    for (uint32_t i : indices) flat_.push_back(static_cast<uint32_t>(offset + i));
    values_.append(reinterpret_cast<const char*>(values.data()),
                   values.size() * sizeof(float));
  } else {
    scale_exponent = encoding == FP16_DELTA ? Fp16ScaleExponent(values) : 0;
    QuantiseEntries(encoding, scale_exponent, indices, values, offset, &flat_, &values_);
  }
  if (flat_.size() > begin) runs_.push_back({tensor, begin, scale_exponent});
  return static_cast<int64_t>(flat_.size() - begin);
}

void SparseUpdateWriter::Finish() {
  if (flat_.empty()) return;
  const ValueEncoding encoding = update_->encoding();
  const size_t value_bytes = static_cast<size_t>(ValueBytes(encoding));
  SparseEntries sparse;
  sparse.set_count(static_cast<uint32_t>(flat_.size()));
  sparse.set_rice_bits(ChooseRiceBits(flat_));
  EncodeIndices(flat_, sparse.rice_bits(), sparse.mutable_indices());
  if (encoding == FP16_DELTA) {
    for (const Run& run : runs_) sparse.add_scale_exponents(run.scale_exponent);
  }
  // The same entries per tensor, as AppendSparseTensor writes them.
  std::vector<TensorUpdate> tensors(runs_.size());
  std::vector<uint32_t> local;
  size_t per_tensor_bytes = 0;
  for (size_t r = 0; r < runs_.size(); ++r) {
    const size_t begin = runs_[r].begin;
    const size_t end = r + 1 < runs_.size() ? runs_[r + 1].begin : flat_.size();
    const int64_t offset = offsets_[runs_[r].tensor];
    local.clear();
    for (size_t i = begin; i < end; ++i) {
      local.push_back(static_cast<uint32_t>(flat_[i] - offset));
    }
    TensorUpdate& t = tensors[r];
    t.set_tensor(runs_[r].tensor);
    t.set_count(static_cast<uint32_t>(local.size()));
    t.set_rice_bits(ChooseRiceBits(local));
    EncodeIndices(local, t.rice_bits(), t.mutable_indices());
    t.set_scale_exponent(runs_[r].scale_exponent);
    // The values are set only on the form that is sent.
    per_tensor_bytes += FieldBytes(t.ByteSizeLong() + FieldBytes((end - begin) * value_bytes));
  }
  // The smaller form goes out. Entries about as sparse in every tensor:
  // the model-wide form saves the per-tensor framing. Whole tensors beside
  // sparse ones (batch-norm statistics beside 0.1 % of the weights): one
  // Rice parameter fits neither, and the per-tensor form usually wins.
  if (FieldBytes(sparse.ByteSizeLong() + FieldBytes(values_.size())) <= per_tensor_bytes) {
    sparse.set_values(std::move(values_));
    *update_->mutable_sparse() = std::move(sparse);
  } else {
    for (size_t r = 0; r < runs_.size(); ++r) {
      const size_t begin = runs_[r].begin;
      const size_t end = r + 1 < runs_.size() ? runs_[r + 1].begin : flat_.size();
      tensors[r].set_values(values_.substr(begin * value_bytes, (end - begin) * value_bytes));
      *update_->add_tensors() = std::move(tensors[r]);
    }
  }
  flat_.clear();
  values_.clear();
  runs_.clear();
}

int64_t UpdateEntries(const Update& update) {
  int64_t entries = update.sparse().count();
  for (const TensorUpdate& t : update.tensors()) entries += t.count();
  return entries;
}

void AppendDenseTensor(uint32_t tensor, absl::Span<const float> values,
                       Update* update) {
  TensorUpdate* t = update->add_tensors();
  t->set_tensor(tensor);
  t->set_count(static_cast<uint32_t>(values.size()));
  t->set_dense(true);
  t->set_values(values.data(), values.size() * sizeof(float));
}

uint64_t PayloadChecksum(const Update& update) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, /*seed=*/0);
  HashU64(state, update.version());
  HashU64(state, update.base_version());
  HashU64(state, update.snapshot() ? 1 : 0);
  HashU64(state, update.fingerprint());
  HashU64(state, update.run());
  HashU64(state, static_cast<uint64_t>(update.encoding()));
  HashU64(state, update.tensors_size());
  for (const TensorUpdate& t : update.tensors()) {
    HashU64(state, t.tensor());
    HashU64(state, t.count());
    HashU64(state, t.dense() ? 1 : 0);
    HashU64(state, t.rice_bits());
    HashU64(state, static_cast<uint64_t>(static_cast<int64_t>(t.scale_exponent())));
    HashBytes(state, t.indices());
    HashBytes(state, t.values());
  }
  // Absent in the updates written before the section existed, whose
  // checksums must not change.
  if (update.has_sparse()) {
    const SparseEntries& sparse = update.sparse();
    HashU64(state, 1);
    HashU64(state, sparse.count());
    HashU64(state, sparse.rice_bits());
    HashBytes(state, sparse.indices());
    HashBytes(state, sparse.values());
    HashU64(state, sparse.scale_exponents_size());
    for (int32_t e : sparse.scale_exponents()) {
      HashU64(state, static_cast<uint64_t>(static_cast<int64_t>(e)));
    }
  }
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}

void SealUpdate(Update* update) { update->set_checksum(PayloadChecksum(*update)); }

absl::StatusOr<std::vector<DecodedTensor>> DecodeUpdate(const Update& update,
                                                        const ModelSpec& spec) {
  if (update.fingerprint() != spec.fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "update ", update.version(), " is for model fingerprint ",
        absl::Hex(update.fingerprint()), ", this model is ",
        absl::Hex(spec.fingerprint())));
  }
  const uint64_t checksum = PayloadChecksum(update);
  if (checksum != update.checksum()) {
    return absl::DataLossError(absl::StrCat(
        "update ", update.version(), " fails its checksum: computed ",
        absl::Hex(checksum), ", carried ", absl::Hex(update.checksum())));
  }
  const ValueEncoding encoding = update.encoding();
  if (encoding != FP32_ASSIGN && !IsDeltaEncoding(encoding)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " has unknown value encoding ",
        static_cast<int>(encoding)));
  }
  if (update.snapshot() && (update.tensors_size() != spec.tensors_size() ||
                            encoding != FP32_ASSIGN)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot ", update.version(), " carries ", update.tensors_size(),
        " tensors in encoding ", static_cast<int>(encoding), ", the model has ",
        spec.tensors_size(), " and snapshots are fp32"));
  }
  if (update.has_sparse()) {
    std::vector<DecodedTensor> decoded;
    const absl::Status status = DecodeSparseEntries(update, spec, &decoded);
    if (!status.ok()) return status;
    return decoded;
  }
  std::vector<DecodedTensor> decoded(update.tensors_size());
  for (int i = 0; i < update.tensors_size(); ++i) {
    const absl::Status status =
        DecodeTensor(update.tensors(i), encoding, spec, &decoded[i]);
    if (!status.ok()) return status;
    if (update.snapshot() &&
        (!decoded[i].dense || decoded[i].tensor != static_cast<uint32_t>(i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot ", update.version(), " entry ", i,
          " is not the dense tensor ", i));
    }
  }
  return decoded;
}

void ApplyDecoded(const std::vector<DecodedTensor>& decoded,
                  const TensorViews& model) {
  for (const DecodedTensor& t : decoded) {
    absl::Span<float> target = model[t.tensor];
    if (t.dense) {
      if (!t.values.empty()) {
        std::memcpy(target.data(), t.values.data(), t.values.size() * sizeof(float));
      }
    } else if (t.add) {
      for (size_t i = 0; i < t.indices.size(); ++i) {
        target[t.indices[i]] += t.values[i];
      }
    } else {
      for (size_t i = 0; i < t.indices.size(); ++i) {
        target[t.indices[i]] = t.values[i];
      }
    }
  }
}

absl::Status ApplyUpdate(const Update& update, const ModelSpec& spec,
                         const TensorViews& model) {
  absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(update, spec);
  if (!decoded.ok()) return decoded.status();
  ApplyDecoded(*decoded, model);
  return absl::OkStatus();
}

}  // namespace contrail
