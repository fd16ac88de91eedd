// How long a server waits before it tries the trainer again: exponential
// backoff with jitter. The nominal wait starts at `initial`, doubles after
// every wait up to `max`, and starts over after Reset() (once an attempt
// succeeded). Each wait is drawn at random from
// [(1 - jitter) * nominal, nominal], so that servers that lost the same
// trainer at the same moment do not all come back at the same moment; the
// draw is seeded, so that a given seed always gives the same waits.
//
// Not thread-safe; owned by the thread that waits (the subscriber's apply
// thread).
#ifndef CONTRAIL_SERVER_BACKOFF_H_
#define CONTRAIL_SERVER_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace contrail {

class Backoff {
 public:
  struct Options {
    // The first nominal wait, and the one after Reset().
    absl::Duration initial = absl::Milliseconds(100);
    // The nominal wait doubles up to this.
    absl::Duration max = absl::Seconds(5);
    // The fraction of the nominal wait that is random, in [0, 1): 0.2 waits
    // between 80 % and 100 % of it.
    double jitter = 0.2;
    // Seeds the jitter; 0 seeds it from std::random_device, so that
    // replicas started alike still spread out.
    uint64_t seed = 0;
  };

  // INVALID_ARGUMENT naming the field when `options` are out of range:
  // initial > 0, max >= initial, 0 <= jitter < 1.
  static absl::StatusOr<Backoff> Create(const Options& options);

  // The wait before the next attempt; then doubles the nominal wait, up to
  // Options::max.
  absl::Duration Next();

  // Back to Options::initial, after an attempt that succeeded.
  void Reset() { nominal_ = options_.initial; }

 private:
  explicit Backoff(const Options& options);

  Options options_;
  absl::Duration nominal_;
  std::mt19937_64 rng_;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_BACKOFF_H_
