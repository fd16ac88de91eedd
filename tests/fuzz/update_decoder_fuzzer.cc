// libFuzzer target for the update decoder (common/update_codec.h): arbitrary
// bytes, parsed as a serialized Update, go through DecodeUpdate and
// ApplyUpdate against a small model replica (fuzz_model.h), as a server
// runs them on what arrives from the network.
//
// The first input byte holds InputFlags: the fuzzer may ask for the
// replica's fingerprint and a fresh payload checksum, so that it explores
// the decoder behind those checks rather than only the checks. Beyond
// what the sanitizers catch, the target aborts when the decoder breaks
// its contract: an update it accepts must name existing tensors, carry
// strictly increasing in-range indices, as many values as indices (every
// entry of a dense tensor) and only finite values, in one form (per-tensor
// or model-wide); one it refuses must say
// INVALID_ARGUMENT, DATA_LOSS or FAILED_PRECONDITION and leave the replica
// untouched.
//
// Built with clang's -fsanitize=fuzzer,address,undefined by build_fuzzer.sh
// (the //tests/fuzz:update_decoder_fuzzer genrule); see README.md, "Fuzzing".
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_spec.h"
#include "common/update_codec.h"
#include "proto/contrail.pb.h"
#include "tests/fuzz/fuzz_model.h"

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "update decoder contract broken: %s\n", what);
    std::abort();
  }
}

void CheckDecoded(const contrail::Update& update, const contrail::ModelSpec& spec,
                  const std::vector<contrail::DecodedTensor>& decoded) {
  if (update.has_sparse()) {
    Check(update.tensors_size() == 0 && !update.snapshot(), "one form only");
    uint64_t entries = 0;
    for (size_t i = 0; i < decoded.size(); ++i) {
      Check(!decoded[i].dense && !decoded[i].indices.empty(),
            "model-wide entries decode to sparse, non-empty tensors");
      Check(i == 0 || decoded[i].tensor > decoded[i - 1].tensor,
            "model-wide tensors strictly increasing");
      entries += decoded[i].indices.size();
    }
    Check(entries == update.sparse().count(), "as many entries as the section's count");
  } else {
    Check(decoded.size() == static_cast<size_t>(update.tensors_size()),
          "one decoded tensor per TensorUpdate");
  }
  for (const contrail::DecodedTensor& t : decoded) {
    Check(t.tensor < static_cast<uint32_t>(spec.tensors_size()), "tensor in range");
    const int64_t size = contrail::TensorSize(spec.tensors(static_cast<int>(t.tensor)));
    for (float v : t.values) Check(std::isfinite(v), "finite values");
    if (t.dense) {
      Check(t.indices.empty(), "no indices when dense");
      Check(static_cast<int64_t>(t.values.size()) == size, "dense covers the tensor");
      continue;
    }
    Check(t.indices.size() == t.values.size(), "one value per index");
    for (size_t i = 0; i < t.indices.size(); ++i) {
      Check(static_cast<int64_t>(t.indices[i]) < size, "index in range");
      Check(i == 0 || t.indices[i] > t.indices[i - 1], "indices strictly increasing");
    }
  }
}

}  // namespace

// Protobuf logs every string field of invalid UTF-8 it parses (there are
// many in random bytes); the fuzzer's output is for crashes.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const contrail::ModelSpec* const spec =
      new contrail::ModelSpec(contrail::fuzz::FuzzSpec());
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  contrail::Update update;
  if (!update.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  if (flags & contrail::fuzz::kMatchFingerprint) update.set_fingerprint(spec->fingerprint());
  if (flags & contrail::fuzz::kReseal) contrail::SealUpdate(&update);

  const absl::StatusOr<std::vector<contrail::DecodedTensor>> decoded =
      contrail::DecodeUpdate(update, *spec);
  contrail::fuzz::Replica replica(*spec);
  const uint64_t before = replica.Checksum();
  const absl::Status applied = contrail::ApplyUpdate(update, *spec, replica.Views());
  Check(applied.ok() == decoded.ok(), "DecodeUpdate and ApplyUpdate agree");
  if (decoded.ok()) {
    CheckDecoded(update, *spec, *decoded);
  } else {
    const absl::StatusCode code = applied.code();
    Check(code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kDataLoss ||
              code == absl::StatusCode::kFailedPrecondition,
          "a refusal is INVALID_ARGUMENT, DATA_LOSS or FAILED_PRECONDITION");
    Check(!applied.message().empty(), "a refusal says why");
    Check(replica.Checksum() == before, "a refused update leaves the replica untouched");
  }
  return 0;
}
