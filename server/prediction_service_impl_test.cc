#include "server/prediction_service_impl.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "tests/test_util/fake_trainer.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kPixels = 28 * 28;
constexpr int kClasses = 10;

// A request of `shape` with `count` seeded pixel values in [0, 1).
PredictRequest Request(const std::vector<int64_t>& shape, int64_t count) {
  PredictRequest request;
  Tensor* inputs = request.mutable_inputs();
  inputs->mutable_shape()->Add(shape.begin(), shape.end());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (int64_t i = 0; i < count; ++i) inputs->add_values(pixel(rng));
  return request;
}

class PredictionServiceImplTest : public ::testing::Test {
 protected:
  PredictionServiceImplTest()
      : trainer_(/*seed=*/7),
        live_(LiveModel::Create(LiveModel::Options()).value()),
        service_(live_.get()) {}

  void SetUp() override { ASSERT_TRUE(live_->Apply(trainer_.Snapshot()).ok()); }

  grpc::Status Predict(const PredictRequest& request, PredictResponse* response) {
    return service_.Predict(/*context=*/nullptr, &request, response);
  }

  test::FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  PredictionServiceImpl service_;
};

TEST_F(PredictionServiceImplTest, MissingInputsAreAnInvalidArgument) {
  PredictResponse response;
  const grpc::Status status = Predict(PredictRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("inputs is missing"));
  EXPECT_EQ(service_.predictions(), 0u);
}

TEST_F(PredictionServiceImplTest, AWrongShapeIsAnInvalidArgumentNamingTheExpectedShape) {
  PredictResponse response;
  const grpc::Status status = Predict(Request({2, kPixels}, 2 * kPixels), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("[N, 1, 28, 28]"));
  EXPECT_THAT(status.error_message(), HasSubstr("got [2, 784]"));
  EXPECT_EQ(response.predictions_size(), 0);
  EXPECT_EQ(service_.predictions(), 0u);
}

TEST_F(PredictionServiceImplTest, AnswersEachExampleWithTheVersionThatPredictedIt) {
  PredictResponse response;
  const grpc::Status status = Predict(Request({3, 1, 28, 28}, 3 * kPixels), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.version(), 1u);
  ASSERT_EQ(response.predictions_size(), 3);
  for (const Prediction& prediction : response.predictions()) {
    ASSERT_EQ(prediction.scores_size(), kClasses);
    double sum = 0;
    for (float score : prediction.scores()) sum += score;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    const auto best = std::max_element(prediction.scores().begin(), prediction.scores().end());
    EXPECT_EQ(prediction.label(), best - prediction.scores().begin());
  }
  EXPECT_EQ(service_.predictions(), 3u);

  ASSERT_TRUE(live_->Apply(trainer_.Step()).ok());
  PredictResponse after;
  ASSERT_TRUE(Predict(Request({1, 1, 28, 28}, kPixels), &after).ok());
  EXPECT_EQ(after.version(), 2u);
  EXPECT_EQ(service_.predictions(), 4u);
}

TEST(PredictionServiceImplBeforeAModelTest, IsUnavailable) {
  std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options()).value();
  PredictionServiceImpl service(live.get());
  const PredictRequest request = Request({1, 1, 28, 28}, kPixels);
  PredictResponse response;
  const grpc::Status status = service.Predict(nullptr, &request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("snapshot"));
}

}  // namespace
}  // namespace contrail
