// Time as contrail's loops see it, behind a small interface (leveldb's Env
// idea): pacing, waiting and backoff read and wait on a Clock, so that tests
// run a paced stream or a backoff schedule in simulated time.
//
// Clock::Real() is the process's clock; tests use FakeClock
// (tests/test_util/fake_clock.h). Implementations are thread-safe.
#ifndef CONTRAIL_COMMON_CLOCK_H_
#define CONTRAIL_COMMON_CLOCK_H_

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace contrail {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // Returns at `deadline`, or earlier once `interrupt` (may be null) is
  // notified; true when interrupted.
  virtual bool SleepUntil(absl::Time deadline, const absl::Notification* interrupt) = 0;

  // The real clock; never destroyed.
  static Clock* Real();
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_CLOCK_H_
