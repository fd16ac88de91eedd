#include "trainer/quality_guard.h"

#include <cstdint>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

// Windows of 100 examples, arrivals of 10, drop 0.1.
class QualityGuardTest : public ::testing::Test {
 protected:
  static QualityGuard::Options GuardOptions() {
    QualityGuard::Options options;
    options.drop = 0.1;
    options.window = 100;
    options.memory_windows = 3;
    return options;
  }

  // `windows` windows of arrivals of 10 examples, the trainer and the
  // served model right on the given fraction; the last verdict, and
  // whether any verdict asked for a rollback or marked the model good.
  QualityGuard::Verdict Feed(double trainer, double served, int windows = 1) {
    QualityGuard::Verdict last;
    rolled_back_ = false;
    good_ = false;
    for (int i = 0; i < windows * 10; ++i) {
      last = guard_.Observe(10, static_cast<int64_t>(trainer * 10 + 0.5),
                            static_cast<int64_t>(served * 10 + 0.5));
      rolled_back_ |= last.roll_back;
      good_ |= last.good;
    }
    return last;
  }

  QualityGuard guard_ = QualityGuard::Create(GuardOptions()).value();
  bool rolled_back_ = false;
  bool good_ = false;
};

TEST(QualityGuardCreateTest, RefusesOutOfRangeOptionsNamingTheFlag) {
  QualityGuard::Options options;
  options.drop = 1.5;
  EXPECT_THAT(QualityGuard::Create(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("guard_drop")));
  options.drop = 0.1;
  options.window = 0;
  EXPECT_THAT(QualityGuard::Create(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("guard_window")));
}

TEST(QualityGuardCreateTest, DropZeroIsOffAndAlwaysDeploys) {
  QualityGuard guard = QualityGuard::Create(QualityGuard::Options()).value();
  EXPECT_FALSE(guard.enabled());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(guard.Observe(10, 9, 9).deploy);
  for (int i = 0; i < 500; ++i) {
    const QualityGuard::Verdict verdict = guard.Observe(10, 0, 0);
    EXPECT_TRUE(verdict.deploy);
    EXPECT_FALSE(verdict.roll_back);
  }
  EXPECT_EQ(guard.state(), QualityGuard::State::kOff);
}

TEST_F(QualityGuardTest, DeploysWhileTheTrainerKeepsUp) {
  EXPECT_TRUE(Feed(0.8, 0.8, 3).deploy);
  EXPECT_TRUE(good_);
  EXPECT_NEAR(guard_.best_served_accuracy(), 0.8, 1e-9);
  // Within the drop: still deploying.
  EXPECT_TRUE(Feed(0.75, 0.8).deploy);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kDeploying);
  EXPECT_EQ(guard_.holds(), 0);
}

TEST_F(QualityGuardTest, HoldsWhenTheTrainerFallsBelowBestServedMinusDrop) {
  Feed(0.8, 0.8, 2);
  // Half a window at 0.4 takes the trainer's window to 0.6 < 0.8 - 0.1.
  QualityGuard::Verdict verdict;
  for (int i = 0; i < 5; ++i) verdict = guard_.Observe(10, 4, 8);
  EXPECT_FALSE(verdict.deploy);
  EXPECT_FALSE(verdict.roll_back);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kHolding);
  EXPECT_EQ(guard_.holds(), 1);
  EXPECT_NEAR(guard_.trainer_accuracy(), 0.6, 1e-9);
}

TEST_F(QualityGuardTest, RollsBackOnceWhenTheServedModelHasFallenToo) {
  Feed(0.8, 0.8, 2);
  Feed(0.3, 0.3);
  EXPECT_TRUE(rolled_back_);
  EXPECT_EQ(guard_.rollbacks(), 1);
  // Still bad: no second rollback within the same hold.
  Feed(0.3, 0.3);
  EXPECT_FALSE(rolled_back_);
  EXPECT_EQ(guard_.rollbacks(), 1);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kHolding);
}

TEST_F(QualityGuardTest, ResumesOnceTheTrainerRecovers) {
  Feed(0.8, 0.8, 2);
  Feed(0.3, 0.8);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kHolding);
  EXPECT_FALSE(rolled_back_);  // the served model held its quality
  const QualityGuard::Verdict verdict = Feed(0.78, 0.8);
  EXPECT_TRUE(verdict.deploy);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kDeploying);
}

TEST_F(QualityGuardTest, NothingIsMarkedGoodWhileHolding) {
  Feed(0.8, 0.8, 2);
  Feed(0.2, 0.8, 2);
  EXPECT_FALSE(good_);
}

TEST_F(QualityGuardTest, ALastingChangeEndsTheHoldOnceOldRecordsAgeOut) {
  Feed(0.9, 0.9, 2);
  // Every model scores 0.5 on the new stream: the best served record of
  // 0.9 ages out after memory_windows windows, and deployment resumes.
  Feed(0.5, 0.5, 2);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kHolding);
  EXPECT_TRUE(Feed(0.5, 0.5, 3).deploy);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kDeploying);
  EXPECT_NEAR(guard_.best_served_accuracy(), 0.5, 1e-9);
}

TEST_F(QualityGuardTest, NoVerdictBeforeTheFirstWindowEnds) {
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(guard_.Observe(10, 0, 10).deploy);
  EXPECT_EQ(guard_.state(), QualityGuard::State::kDeploying);
}

}  // namespace
}  // namespace contrail
