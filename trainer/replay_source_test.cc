#include "trainer/replay_source.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/fake_clock.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/drift.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kClasses = 3;

// `count` 2x2 examples: example i has every pixel equal to i and label
// i % 3.
LabelledImages Data(int64_t count) {
  LabelledImages data;
  data.count = count;
  data.rows = 2;
  data.cols = 2;
  for (int64_t i = 0; i < count; ++i) {
    for (int p = 0; p < 4; ++p) data.pixels.push_back(static_cast<float>(i));
    data.labels.push_back(static_cast<int32_t>(i % kClasses));
  }
  return data;
}

std::unique_ptr<ReplaySource> MakeSource(const ReplaySource::Options& options,
                                         int64_t count = 10) {
  absl::StatusOr<std::unique_ptr<ReplaySource>> source =
      ReplaySource::Create(options, Data(count), kClasses);
  EXPECT_OK(source);
  return source.ok() ? *std::move(source) : nullptr;
}

TEST(ReplaySourceTest, ReplaysInFileOrderAndEndsAfterCount) {
  ReplaySource::Options options;
  options.count = 6;
  std::unique_ptr<ReplaySource> source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(source->input_shape(), ElementsAre(1, 2, 2));

  Examples out;
  absl::StatusOr<ExampleSource::ReadResult> read =
      source->Read(4, absl::InfiniteFuture(), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 4);
  EXPECT_FALSE(read->end_of_stream);
  EXPECT_THAT(out.labels, ElementsAre(0, 1, 2, 0));
  EXPECT_EQ(out.inputs.size(), 16u);
  EXPECT_EQ(out.inputs[12], 3.0f);

  read = source->Read(4, absl::InfiniteFuture(), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 2);
  EXPECT_TRUE(read->end_of_stream);
  EXPECT_THAT(out.labels, ElementsAre(0, 1, 2, 0, 1, 2));

  read = source->Read(4, absl::InfiniteFuture(), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 0);
  EXPECT_TRUE(read->end_of_stream);
}

TEST(ReplaySourceTest, RejectsACountBeyondTheData) {
  ReplaySource::Options options;
  options.count = 11;
  EXPECT_THAT(ReplaySource::Create(options, Data(10), kClasses),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot replay 11 examples: the data has 10")));
}

TEST(ReplaySourceTest, RejectsALabelOutsideTheModelsClasses) {
  LabelledImages data = Data(10);
  data.labels[7] = 5;
  EXPECT_THAT(ReplaySource::Create(ReplaySource::Options(), data, kClasses),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("example 7 has label 5, outside the model's 3 classes")));
}

TEST(ReplaySourceTest, RejectsANegativeRate) {
  ReplaySource::Options options;
  options.rate = -1;
  EXPECT_THAT(ReplaySource::Create(options, Data(10), kClasses),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("replay_rate")));
}

// 10 examples per second after 4 unpaced ones: example 4 + k arrives k/10
// s after the first read past the head.
TEST(ReplaySourceTest, PacesArrivalsAfterTheUnpacedHead) {
  test::FakeClock clock;
  ReplaySource::Options options;
  options.unpaced_examples = 4;
  options.rate = 10;
  options.clock = &clock;
  std::unique_ptr<ReplaySource> source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(4, absl::InfiniteFuture(), &out));
  EXPECT_EQ(out.count(), 4);
  EXPECT_TRUE(clock.sleeps().empty()) << "the head must not wait";

  const absl::Time start = clock.Now();
  absl::StatusOr<ExampleSource::ReadResult> read =
      source->Read(2, absl::InfiniteFuture(), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 2);
  EXPECT_EQ(clock.Now() - start, absl::Milliseconds(200));

  // Nothing more has arrived yet: a read with a deadline of now returns
  // at once with nothing.
  read = source->Read(3, clock.Now(), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 0);
  EXPECT_EQ(clock.Now() - start, absl::Milliseconds(200));

  // By a deadline 150 ms on, one more has arrived.
  read = source->Read(3, clock.Now() + absl::Milliseconds(150), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 1);
  EXPECT_EQ(out.count(), 7);
  EXPECT_EQ(source->position(), 7);
}

TEST(ReplaySourceTest, DriftsLabelsFromDriftBeginOn) {
  ReplaySource::Options options;
  options.drift = Drift::kPermuteLabels;
  options.drift_begin = 5;
  options.drift_seed = 9;
  std::unique_ptr<ReplaySource> source = MakeSource(options);
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(10, absl::InfiniteFuture(), &out));
  const std::vector<int32_t> permutation = LabelPermutation(kClasses, 9);
  for (int64_t i = 0; i < 10; ++i) {
    const int64_t original = i % kClasses;
    EXPECT_EQ(out.labels[i], i < 5 ? original : permutation[original]) << "example " << i;
  }
}

}  // namespace
}  // namespace contrail
