// A std::mt19937_64's state as text, for checkpoints. Stateless;
// thread-safe.
#ifndef CONTRAIL_COMMON_RNG_STATE_H_
#define CONTRAIL_COMMON_RNG_STATE_H_

#include <random>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace contrail {

inline std::string RngState(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

// DATA_LOSS naming `what` when `state` is not one RngState() wrote.
inline absl::Status RestoreRng(const std::string& state, absl::string_view what,
                               std::mt19937_64* rng) {
  std::istringstream in(state);
  std::mt19937_64 restored;
  in >> restored;
  if (in.fail()) return absl::DataLossError(absl::StrCat(what, ": not a generator state"));
  *rng = restored;
  return absl::OkStatus();
}

}  // namespace contrail

#endif  // CONTRAIL_COMMON_RNG_STATE_H_
