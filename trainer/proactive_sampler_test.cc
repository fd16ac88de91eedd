#include "trainer/proactive_sampler.h"

#include <cstdint>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace {

using ::testing::Each;
using ::testing::ElementsAreArray;
using ::testing::Ge;
using ::testing::Lt;
using ::testing::UnorderedElementsAreArray;

// New examples carry ids far outside any history range used below, so that a
// history draw can never be mistaken for one of them.
const std::vector<int64_t> kNewExamples = {1000, 1001, 1002};

class ProactiveSamplerTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSeed = 42;
  ProactiveSampler sampler_{kSeed};
};

TEST_F(ProactiveSamplerTest, PutsNewExamplesFirstThenDistinctHistory) {
  constexpr int64_t kHistory = 100;
  constexpr int64_t kBatch = 10;
  for (int round = 0; round < 50; ++round) {
    const std::vector<int64_t> batch =
        sampler_.FormBatch(kNewExamples, kHistory, kBatch);
    ASSERT_EQ(batch.size(), kBatch);
    EXPECT_THAT(std::vector<int64_t>(batch.begin(), batch.begin() + 3),
                ElementsAreArray(kNewExamples));
    const std::vector<int64_t> drawn(batch.begin() + 3, batch.end());
    EXPECT_THAT(drawn, Each(Ge(0)));
    EXPECT_THAT(drawn, Each(Lt(kHistory)));
    EXPECT_EQ(std::set<int64_t>(drawn.begin(), drawn.end()).size(),
              drawn.size())
        << "history examples repeat within one batch";
  }
}

TEST_F(ProactiveSamplerTest, TakesAllOfASmallHistoryOnce) {
  // b - t = 7 wanted, only 4 in the history.
  const std::vector<int64_t> batch =
      sampler_.FormBatch(kNewExamples, /*history_size=*/4, /*batch_size=*/10);
  ASSERT_EQ(batch.size(), 7u);
  EXPECT_THAT(std::vector<int64_t>(batch.begin(), batch.begin() + 3),
              ElementsAreArray(kNewExamples));
  EXPECT_THAT(std::vector<int64_t>(batch.begin() + 3, batch.end()),
              UnorderedElementsAreArray({0, 1, 2, 3}));
}

TEST_F(ProactiveSamplerTest, HistoryExactlyTheWantedSizeIsTakenWhole) {
  const std::vector<int64_t> batch =
      sampler_.FormBatch(kNewExamples, /*history_size=*/5, /*batch_size=*/8);
  ASSERT_EQ(batch.size(), 8u);
  EXPECT_THAT(std::vector<int64_t>(batch.begin() + 3, batch.end()),
              UnorderedElementsAreArray({0, 1, 2, 3, 4}));
}

TEST_F(ProactiveSamplerTest, EmptyHistoryGivesOnlyTheNewExamples) {
  EXPECT_THAT(sampler_.FormBatch(kNewExamples, /*history_size=*/0,
                                 /*batch_size=*/10),
              ElementsAreArray(kNewExamples));
}

TEST_F(ProactiveSamplerTest, TriggerEqualToBatchIsOnlineTraining) {
  EXPECT_THAT(sampler_.FormBatch(kNewExamples, /*history_size=*/100,
                                 /*batch_size=*/3),
              ElementsAreArray(kNewExamples));
}

TEST_F(ProactiveSamplerTest, TriggerAboveBatchIsOnlineTraining) {
  EXPECT_THAT(sampler_.FormBatch(kNewExamples, /*history_size=*/100,
                                 /*batch_size=*/2),
              ElementsAreArray(kNewExamples));
}

TEST_F(ProactiveSamplerTest, NoNewExamplesIsMiniBatchOverHistory) {
  const std::vector<int64_t> batch =
      sampler_.FormBatch({}, /*history_size=*/50, /*batch_size=*/6);
  ASSERT_EQ(batch.size(), 6u);
  EXPECT_THAT(batch, Each(Ge(0)));
  EXPECT_THAT(batch, Each(Lt(50)));
  EXPECT_EQ(std::set<int64_t>(batch.begin(), batch.end()).size(), 6u);
}

TEST_F(ProactiveSamplerTest, ABoundedHistoryDrawsOnlyFromItsWindow) {
  const std::vector<int64_t> batch = sampler_.FormBatch(
      kNewExamples, /*history_begin=*/5000, /*history_end=*/5010, /*batch_size=*/12);
  ASSERT_EQ(batch.size(), 12u);
  const std::vector<int64_t> drawn(batch.begin() + kNewExamples.size(), batch.end());
  EXPECT_THAT(drawn, Each(Ge(5000)));
  EXPECT_THAT(drawn, Each(Lt(5010)));
  EXPECT_EQ(std::set<int64_t>(drawn.begin(), drawn.end()).size(), drawn.size());
}

TEST(ProactiveSamplerSeedTest, AWindowFromZeroDrawsAsTheUnboundedHistory) {
  ProactiveSampler a(7);
  ProactiveSampler b(7);
  EXPECT_EQ(a.FormBatch(kNewExamples, 1000, 32), b.FormBatch(kNewExamples, 0, 1000, 32));
}

TEST(ProactiveSamplerSeedTest, SameSeedGivesSameBatches) {
  ProactiveSampler a(7);
  ProactiveSampler b(7);
  for (int round = 0; round < 20; ++round) {
    EXPECT_EQ(a.FormBatch(kNewExamples, 1000, 32),
              b.FormBatch(kNewExamples, 1000, 32))
        << "round " << round;
  }
}

TEST(ProactiveSamplerSeedTest, DifferentSeedsGiveDifferentBatches) {
  ProactiveSampler a(7);
  ProactiveSampler b(8);
  bool any_differs = false;
  for (int round = 0; round < 20; ++round) {
    if (a.FormBatch(kNewExamples, 1000, 32) !=
        b.FormBatch(kNewExamples, 1000, 32)) {
      any_differs = true;
    }
  }
  EXPECT_TRUE(any_differs);
}

TEST_F(ProactiveSamplerTest, DrawsHistoryRoughlyUniformly) {
  constexpr int64_t kHistory = 20;
  constexpr int64_t kBatch = 8;  // 5 history draws per batch
  constexpr int kRounds = 4000;  // 20000 draws: 1000 expected per example
  std::vector<int> counts(kHistory, 0);
  for (int round = 0; round < kRounds; ++round) {
    const std::vector<int64_t> batch =
        sampler_.FormBatch(kNewExamples, kHistory, kBatch);
    ASSERT_EQ(batch.size(), kBatch);
    for (size_t i = kNewExamples.size(); i < batch.size(); ++i) {
      ++counts[batch[i]];
    }
  }
  // The standard deviation of each count is about 28; a 20 % band is over
  // 7 sigma wide, yet catches any real bias towards the ends of the range.
  for (int64_t i = 0; i < kHistory; ++i) {
    EXPECT_GT(counts[i], 800) << "history example " << i;
    EXPECT_LT(counts[i], 1200) << "history example " << i;
  }
}

}  // namespace
}  // namespace contrail
