#include "common/update_codec.h"

#include <xxhash.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/model_spec.h"

namespace contrail {
namespace {

static_assert(sizeof(float) == 4, "fp32 values are 4 bytes on the wire");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec writes values in host order and assumes little-endian hosts"
#endif

void AppendVarint(uint32_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads one varint from [*p, end); false when truncated or over 32 bits.
bool ReadVarint(const uint8_t** p, const uint8_t* end, uint32_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (*p == end) return false;
    const uint8_t byte = *(*p)++;
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      if (result > UINT32_MAX) return false;
      *v = static_cast<uint32_t>(result);
      return true;
    }
  }
  return false;
}

void HashU64(XXH64_state_t* state, uint64_t v) {
  XXH64_update(state, &v, sizeof(v));
}

void HashBytes(XXH64_state_t* state, const std::string& bytes) {
  HashU64(state, bytes.size());
  XXH64_update(state, bytes.data(), bytes.size());
}

absl::Status DecodeTensor(const TensorUpdate& t, const ModelSpec& spec,
                          DecodedTensor* out) {
  if (t.tensor() >= static_cast<uint32_t>(spec.tensors_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("update names tensor ", t.tensor(), " but the model has ",
                     spec.tensors_size()));
  }
  const TensorSpec& ts = spec.tensors(t.tensor());
  const int64_t size = TensorSize(ts);
  out->tensor = t.tensor();
  out->dense = t.dense();
  if (t.dense() && t.count() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense update of ", ts.name(), " has ", t.count(),
                     " entries, the tensor has ", size));
  }
  if (t.count() > size) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), " has ", t.count(),
                     " entries, the tensor has only ", size));
  }
  if (t.values().size() != static_cast<size_t>(t.count()) * sizeof(float)) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), " declares ", t.count(),
                     " entries but carries ", t.values().size(),
                     " value bytes, expected ", t.count() * sizeof(float)));
  }
  out->values.resize(t.count());
  std::memcpy(out->values.data(), t.values().data(), t.values().size());
  out->indices.clear();
  if (t.dense()) {
    if (!t.indices().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dense update of ", ts.name(), " carries indices"));
    }
    return absl::OkStatus();
  }
  out->indices.resize(t.count());
  const auto* p = reinterpret_cast<const uint8_t*>(t.indices().data());
  const uint8_t* end = p + t.indices().size();
  int64_t previous = -1;
  for (uint32_t i = 0; i < t.count(); ++i) {
    uint32_t gap;
    if (!ReadVarint(&p, end, &gap)) {
      return absl::InvalidArgumentError(
          absl::StrCat("update of ", ts.name(), ": index ", i, " of ",
                       t.count(), " is a truncated or overlong varint"));
    }
    const int64_t index = previous + 1 + static_cast<int64_t>(gap);
    if (index >= size) {
      return absl::InvalidArgumentError(
          absl::StrCat("update of ", ts.name(), ": index ", index,
                       " out of range [0, ", size, ")"));
    }
    out->indices[i] = static_cast<uint32_t>(index);
    previous = index;
  }
  if (p != end) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", ts.name(), ": ", end - p,
                     " bytes after the last index"));
  }
  return absl::OkStatus();
}

}  // namespace

void AppendSparseTensor(uint32_t tensor, absl::Span<const uint32_t> indices,
                        absl::Span<const float> values, Update* update) {
  TensorUpdate* t = update->add_tensors();
  t->set_tensor(tensor);
  t->set_count(static_cast<uint32_t>(indices.size()));
  std::string* index_bytes = t->mutable_indices();
  index_bytes->reserve(indices.size() * 2);
  int64_t previous = -1;
  for (uint32_t index : indices) {
    AppendVarint(static_cast<uint32_t>(index - previous - 1), index_bytes);
    previous = index;
  }
  t->set_values(values.data(), values.size() * sizeof(float));
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
    HashBytes(state, t.indices());
    HashBytes(state, t.values());
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
  if (update.encoding() != FP32_ASSIGN) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " has unknown value encoding ",
        static_cast<int>(update.encoding())));
  }
  if (update.snapshot() && update.tensors_size() != spec.tensors_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot ", update.version(), " carries ", update.tensors_size(),
        " tensors, the model has ", spec.tensors_size()));
  }
  std::vector<DecodedTensor> decoded(update.tensors_size());
  for (int i = 0; i < update.tensors_size(); ++i) {
    const absl::Status status = DecodeTensor(update.tensors(i), spec, &decoded[i]);
    if (!status.ok()) return status;
    if (update.snapshot() && (!decoded[i].dense || decoded[i].tensor != static_cast<uint32_t>(i))) {
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
      std::memcpy(target.data(), t.values.data(), t.values.size() * sizeof(float));
      continue;
    }
    for (size_t i = 0; i < t.indices.size(); ++i) {
      target[t.indices[i]] = t.values[i];
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
