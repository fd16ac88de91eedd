#include "server/backoff.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace contrail {

absl::StatusOr<Backoff> Backoff::Create(const Options& options) {
  if (options.initial <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backoff initial must be > 0, got ", absl::FormatDuration(options.initial)));
  }
  if (options.max < options.initial) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backoff max (", absl::FormatDuration(options.max),
        ") must be >= backoff initial (", absl::FormatDuration(options.initial), ")"));
  }
  if (!(options.jitter >= 0 && options.jitter < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("backoff jitter must be in [0, 1), got ", options.jitter));
  }
  return Backoff(options);
}

Backoff::Backoff(const Options& options)
    : options_(options),
      nominal_(options.initial),
      rng_(options.seed != 0 ? options.seed : std::random_device()()) {}

absl::Duration Backoff::Next() {
  const double random = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  const absl::Duration wait = nominal_ * (1.0 - options_.jitter * random);
  nominal_ = std::min(nominal_ * 2, options_.max);
  return wait;
}

}  // namespace contrail
