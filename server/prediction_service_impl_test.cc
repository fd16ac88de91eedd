#include "server/prediction_service_impl.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
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

// The service behind an in-process gRPC server, called through a stub.
class ServedPredictions {
 public:
  ServedPredictions(LiveModel* live, const PredictBatcher::Options& batching = {})
      : service_(live, &AccessPolicy::Open(), batching) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = PredictionService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  ~ServedPredictions() { server_->Shutdown(); }

  grpc::Status Predict(const PredictRequest& request, PredictResponse* response) {
    grpc::ClientContext context;
    return stub_->Predict(&context, request, response);
  }
  const PredictionServiceImpl& service() const { return service_; }

 private:
  PredictionServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<PredictionService::Stub> stub_;
};

// Each test runs without and with dynamic batching.
class PredictionServiceImplTest : public ::testing::TestWithParam<bool> {
 protected:
  PredictionServiceImplTest()
      : trainer_(/*seed=*/7), live_(LiveModel::Create(LiveModel::Options()).value()) {
    PredictBatcher::Options batching;
    batching.dynamic_batching = GetParam();
    served_ = std::make_unique<ServedPredictions>(live_.get(), batching);
  }

  void SetUp() override { ASSERT_TRUE(live_->Apply(trainer_.Snapshot()).ok()); }

  grpc::Status Predict(const PredictRequest& request, PredictResponse* response) {
    return served_->Predict(request, response);
  }
  const PredictionServiceImpl& service() const { return served_->service(); }

  test::FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<ServedPredictions> served_;
};

INSTANTIATE_TEST_SUITE_P(Batching, PredictionServiceImplTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Dynamic" : "None";
                         });

TEST_P(PredictionServiceImplTest, MissingInputsAreAnInvalidArgument) {
  PredictResponse response;
  const grpc::Status status = Predict(PredictRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("inputs is missing"));
  EXPECT_EQ(service().predictions(), 0u);
}

TEST_P(PredictionServiceImplTest, AWrongShapeIsAnInvalidArgumentNamingTheExpectedShape) {
  PredictResponse response;
  const grpc::Status status = Predict(Request({2, kPixels}, 2 * kPixels), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("[N, 1, 28, 28]"));
  EXPECT_THAT(status.error_message(), HasSubstr("got [2, 784]"));
  EXPECT_EQ(response.predictions_size(), 0);
  EXPECT_EQ(service().predictions(), 0u);
}

TEST_P(PredictionServiceImplTest, AnswersEachExampleWithTheVersionThatPredictedIt) {
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
  EXPECT_EQ(service().predictions(), 3u);

  ASSERT_TRUE(live_->Apply(trainer_.Step()).ok());
  PredictResponse after;
  ASSERT_TRUE(Predict(Request({1, 1, 28, 28}, kPixels), &after).ok());
  EXPECT_EQ(after.version(), 2u);
  EXPECT_EQ(service().predictions(), 4u);
}

TEST(PredictionServiceImplBeforeAModelTest, IsUnavailable) {
  std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options()).value();
  ServedPredictions served(live.get());
  PredictResponse response;
  const grpc::Status status = served.Predict(Request({1, 1, 28, 28}, kPixels), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("snapshot"));
}

}  // namespace
}  // namespace contrail
