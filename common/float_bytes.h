// Floats to and from the little-endian bytes that checkpoints and saved
// models store (this code runs on little-endian machines only, as
// common/update_codec.h does). Stateless; thread-safe.
#ifndef CONTRAIL_COMMON_FLOAT_BYTES_H_
#define CONTRAIL_COMMON_FLOAT_BYTES_H_

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace contrail {

inline std::string FloatsToBytes(absl::Span<const float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

// DATA_LOSS naming `what` unless `bytes` holds exactly out.size() floats.
inline absl::Status BytesToFloats(absl::string_view bytes, absl::Span<float> out,
                                  absl::string_view what) {
  if (bytes.size() != out.size() * sizeof(float)) {
    return absl::DataLossError(absl::StrCat(what, ": ", bytes.size(), " bytes for ",
                                            out.size(), " floats"));
  }
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return absl::OkStatus();
}

}  // namespace contrail

#endif  // CONTRAIL_COMMON_FLOAT_BYTES_H_
