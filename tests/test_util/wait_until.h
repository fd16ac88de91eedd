// Waiting in tests for what another thread or process does: poll a
// condition until it holds or a deadline passes, never a fixed sleep.
#ifndef CONTRAIL_TESTS_TEST_UTIL_WAIT_UNTIL_H_
#define CONTRAIL_TESTS_TEST_UTIL_WAIT_UNTIL_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace contrail {
namespace test {

// Calls `condition` every millisecond until it returns true (then true) or
// `timeout` has passed (then false).
template <typename Condition>
bool WaitUntil(Condition condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_WAIT_UNTIL_H_
