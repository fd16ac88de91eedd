// A Clock in simulated time: SleepUntil() moves the time to the deadline at
// once, so that paced streams and backoff schedules run instantly and
// deterministically, and Advance() moves it by hand. Thread-safe.
#ifndef CONTRAIL_TESTS_TEST_UTIL_FAKE_CLOCK_H_
#define CONTRAIL_TESTS_TEST_UTIL_FAKE_CLOCK_H_

#include <algorithm>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace contrail {
namespace test {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  bool SleepUntil(absl::Time deadline, const absl::Notification* interrupt) override {
    if (interrupt != nullptr && interrupt->HasBeenNotified()) return true;
    absl::MutexLock lock(&mu_);
    sleeps_.push_back(deadline - now_);
    now_ = std::max(now_, deadline);
    return false;
  }

  void Advance(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    now_ += duration;
  }

  // Every sleep's length, in order.
  std::vector<absl::Duration> sleeps() const {
    absl::MutexLock lock(&mu_);
    return sleeps_;
  }

 private:
  // Protects the simulated time and the record of sleeps.
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_FAKE_CLOCK_H_
