#include "common/clock.h"

#include "absl/time/clock.h"

namespace contrail {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }

  bool SleepUntil(absl::Time deadline, const absl::Notification* interrupt) override {
    if (interrupt == nullptr) {
      absl::SleepFor(deadline - absl::Now());
      return false;
    }
    return interrupt->WaitForNotificationWithDeadline(deadline);
  }
};

}  // namespace

Clock* Clock::Real() {
  static Clock* const clock = new RealClock;
  return clock;
}

}  // namespace contrail
