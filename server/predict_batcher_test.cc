#include "server/predict_batcher.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/types/optional.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/live_model.h"
#include "tests/test_util/fake_trainer.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kPixels = 28 * 28;
const std::vector<int64_t> kOneImage = {1, 1, 28, 28};

std::vector<float> Image(uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<float> values(kPixels);
  for (float& v : values) v = pixel(rng);
  return values;
}

class PredictBatcherTest : public ::testing::Test {
 protected:
  PredictBatcherTest()
      : trainer_(/*seed=*/7), live_(LiveModel::Create(LiveModel::Options()).value()) {}
  void SetUp() override { ASSERT_TRUE(live_->Apply(trainer_.Snapshot()).ok()); }

  // Submits one request per entry of `values` (each of shape `shapes[i]`)
  // and returns every answer once all came.
  std::vector<absl::StatusOr<LiveModel::Predictions>> SubmitAll(
      PredictBatcher& batcher, const std::vector<std::vector<int64_t>>& shapes,
      const std::vector<std::vector<float>>& values) {
    std::vector<absl::StatusOr<LiveModel::Predictions>> answers(
        values.size(), absl::UnknownError("no answer"));
    absl::BlockingCounter answered(static_cast<int>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      batcher.Submit(shapes[i], values[i],
                     [&answers, &answered, i](absl::StatusOr<LiveModel::Predictions> p) {
                       answers[i] = std::move(p);
                       answered.DecrementCount();
                     });
    }
    answered.Wait();
    return answers;
  }

  // A batcher with one worker, merging up to `max_batch` examples when
  // `timeout` is set, running each request alone otherwise.
  std::unique_ptr<PredictBatcher> StartBatcher(absl::optional<absl::Duration> timeout,
                                               int64_t max_batch = 64) {
    PredictBatcher::Options options;
    options.threads = 1;
    options.dynamic_batching = timeout.has_value();
    if (timeout.has_value()) options.batch_timeout = *timeout;
    options.max_batch = max_batch;
    return PredictBatcher::Create(options, live_.get()).value();
  }

  // What the live model answers for one request alone.
  void ExpectAloneAnswer(const absl::StatusOr<LiveModel::Predictions>& answer,
                         const std::vector<float>& values) {
    ASSERT_TRUE(answer.ok()) << answer.status();
    const LiveModel::Predictions alone = live_->Predict(kOneImage, values).value();
    EXPECT_EQ(answer->version, alone.version);
    EXPECT_EQ(answer->labels, alone.labels);
    ASSERT_EQ(answer->probabilities.size(), alone.probabilities.size());
    for (size_t i = 0; i < alone.probabilities.size(); ++i) {
      EXPECT_NEAR(answer->probabilities[i], alone.probabilities[i], 1e-5) << i;
    }
  }

  test::FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
};

TEST_F(PredictBatcherTest, RefusesOptionsNamingTheFlag) {
  PredictBatcher::Options options;
  options.threads = -1;
  EXPECT_THAT(PredictBatcher::Create(options, live_.get()).status().message(),
              HasSubstr("predict_threads"));
  options = {};
  options.max_batch = 0;
  EXPECT_EQ(PredictBatcher::Create(options, live_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.batch_timeout = absl::Microseconds(-1);
  EXPECT_THAT(PredictBatcher::Create(options, live_.get()).status().message(),
              HasSubstr("batch_timeout_us"));
}

TEST_F(PredictBatcherTest, WithoutDynamicBatchingEachRequestRunsAlone) {
  std::unique_ptr<PredictBatcher> batcher = StartBatcher(absl::nullopt);
  std::vector<std::vector<float>> values;
  for (uint32_t i = 0; i < 6; ++i) values.push_back(Image(i));
  const auto answers =
      SubmitAll(*batcher, std::vector<std::vector<int64_t>>(values.size(), kOneImage), values);
  for (size_t i = 0; i < values.size(); ++i) ExpectAloneAnswer(answers[i], values[i]);
  EXPECT_EQ(batcher->batches_run(), 6u);
  EXPECT_EQ(batcher->requests_run(), 6u);
}

TEST_F(PredictBatcherTest, MergesWaitingRequestsIntoOneForwardPassAndSplitsTheAnswers) {
  // Long enough that the batch fills before it times out.
  std::unique_ptr<PredictBatcher> batcher = StartBatcher(absl::Seconds(30), 8);
  std::vector<std::vector<float>> values;
  for (uint32_t i = 0; i < 8; ++i) values.push_back(Image(i));
  const auto answers =
      SubmitAll(*batcher, std::vector<std::vector<int64_t>>(values.size(), kOneImage), values);
  for (size_t i = 0; i < values.size(); ++i) ExpectAloneAnswer(answers[i], values[i]);
  EXPECT_EQ(batcher->batches_run(), 1u);
  EXPECT_EQ(batcher->requests_run(), 8u);
}

TEST_F(PredictBatcherTest, TheTimeoutRunsABatchThatDidNotFill) {
  std::unique_ptr<PredictBatcher> batcher = StartBatcher(absl::Milliseconds(5), 64);
  const std::vector<std::vector<float>> values = {Image(1), Image(2), Image(3)};
  const auto answers = SubmitAll(*batcher, {kOneImage, kOneImage, kOneImage}, values);
  for (size_t i = 0; i < values.size(); ++i) ExpectAloneAnswer(answers[i], values[i]);
  EXPECT_EQ(batcher->requests_run(), 3u);
}

TEST_F(PredictBatcherTest, ABadRequestFailsAloneAndTheOthersAreAnswered) {
  std::unique_ptr<PredictBatcher> batcher = StartBatcher(absl::Seconds(30), 4);
  std::vector<float> not_finite = Image(2);
  not_finite[10] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> short_one = Image(4);
  short_one.pop_back();
  std::vector<float> long_one = Image(5);
  long_one.push_back(0.5f);
  // The first four fill a batch, which fails for the NaN. The short and
  // long requests together hold two images' floats: merged blindly they
  // would be answered with each other's rows.
  const std::vector<std::vector<float>> values = {Image(1), not_finite, Image(3), Image(6),
                                                  short_one, long_one};
  const auto answers = SubmitAll(*batcher, std::vector<std::vector<int64_t>>(6, kOneImage),
                                 values);
  ExpectAloneAnswer(answers[0], values[0]);
  EXPECT_EQ(answers[1].status().code(), absl::StatusCode::kInvalidArgument);
  ExpectAloneAnswer(answers[2], values[2]);
  ExpectAloneAnswer(answers[3], values[3]);
  EXPECT_EQ(answers[4].status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(answers[5].status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PredictBatcherTest, RequestsOfAnotherExampleShapeAreNotMerged) {
  std::unique_ptr<PredictBatcher> batcher = StartBatcher(absl::Milliseconds(50), 3);
  const std::vector<std::vector<float>> values = {Image(1), Image(2), Image(3)};
  const auto answers =
      SubmitAll(*batcher, {kOneImage, {1, 784}, kOneImage}, values);
  ExpectAloneAnswer(answers[0], values[0]);
  EXPECT_THAT(answers[1].status().message(), HasSubstr("got [1, 784]"));
  ExpectAloneAnswer(answers[2], values[2]);
}

}  // namespace
}  // namespace contrail
