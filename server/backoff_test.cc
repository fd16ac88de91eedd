#include "server/backoff.h"

#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

Backoff::Options TestOptions() {
  Backoff::Options options;
  options.initial = absl::Milliseconds(100);
  options.max = absl::Milliseconds(800);
  options.jitter = 0.2;
  options.seed = 42;
  return options;
}

std::vector<absl::Duration> Waits(Backoff& backoff, int count) {
  std::vector<absl::Duration> waits;
  for (int i = 0; i < count; ++i) waits.push_back(backoff.Next());
  return waits;
}

TEST(BackoffTest, WaitsDoubleUpToTheMaxWithinTheJitter) {
  Backoff backoff = Backoff::Create(TestOptions()).value();
  const std::vector<absl::Duration> waits = Waits(backoff, 6);
  const std::vector<int> nominal_ms = {100, 200, 400, 800, 800, 800};
  for (size_t i = 0; i < waits.size(); ++i) {
    const absl::Duration nominal = absl::Milliseconds(nominal_ms[i]);
    EXPECT_LE(waits[i], nominal) << "wait " << i;
    EXPECT_GE(waits[i], nominal * 0.8) << "wait " << i;
  }
}

TEST(BackoffTest, ResetStartsOverAtTheInitialWait) {
  Backoff backoff = Backoff::Create(TestOptions()).value();
  Waits(backoff, 4);
  backoff.Reset();
  const absl::Duration wait = backoff.Next();
  EXPECT_LE(wait, absl::Milliseconds(100));
  EXPECT_GE(wait, absl::Milliseconds(80));
}

TEST(BackoffTest, TheSameSeedGivesTheSameWaitsAndAnotherSeedOthers) {
  Backoff first = Backoff::Create(TestOptions()).value();
  Backoff second = Backoff::Create(TestOptions()).value();
  Backoff::Options other_seed = TestOptions();
  other_seed.seed = 43;
  Backoff third = Backoff::Create(other_seed).value();
  const std::vector<absl::Duration> waits = Waits(first, 5);
  EXPECT_EQ(Waits(second, 5), waits);
  EXPECT_NE(Waits(third, 5), waits);
}

TEST(BackoffTest, NoJitterWaitsExactlyTheNominalWait) {
  Backoff::Options options = TestOptions();
  options.jitter = 0;
  Backoff backoff = Backoff::Create(options).value();
  EXPECT_EQ(Waits(backoff, 3),
            (std::vector<absl::Duration>{absl::Milliseconds(100), absl::Milliseconds(200),
                                         absl::Milliseconds(400)}));
}

TEST(BackoffTest, CreateRejectsOptionsOutOfRange) {
  Backoff::Options zero_initial = TestOptions();
  zero_initial.initial = absl::ZeroDuration();
  EXPECT_THAT(Backoff::Create(zero_initial),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("initial")));
  Backoff::Options max_below_initial = TestOptions();
  max_below_initial.max = absl::Milliseconds(50);
  EXPECT_THAT(Backoff::Create(max_below_initial),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backoff max")));
  for (double jitter : {-0.1, 1.0}) {
    Backoff::Options bad_jitter = TestOptions();
    bad_jitter.jitter = jitter;
    EXPECT_THAT(Backoff::Create(bad_jitter),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("jitter")))
        << jitter;
  }
}

}  // namespace
}  // namespace contrail
