#include "server/server_status_service_impl.h"

#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/update_subscriber.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/fake_update_service.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using test::FakeUpdateService;
using test::WaitUntil;

constexpr absl::Duration kDeadline = absl::Seconds(30);

// A server's parts without its gRPC server: a live model, a subscriber
// following an in-process fake trainer, and the services called directly.
class ServerStatusServiceImplTest : public ::testing::Test {
 protected:
  ServerStatusServiceImplTest()
      : trainer_(/*seed=*/7),
        live_(LiveModel::Create(LiveModel::Options()).value()),
        predictions_(live_.get()) {}

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeUpdateService>> fake = FakeUpdateService::Start();
    ASSERT_TRUE(fake.ok()) << fake.status();
    fake_ = *std::move(fake);
    UpdateSubscriber::Options options;
    options.trainer = fake_->address();
    options.backoff.initial = absl::Milliseconds(5);
    options.backoff.max = absl::Milliseconds(20);
    absl::StatusOr<std::unique_ptr<UpdateSubscriber>> subscriber = UpdateSubscriber::Create(
        options, UpdateSubscriber::MakeChannel(fake_->address()), live_.get());
    ASSERT_TRUE(subscriber.ok()) << subscriber.status();
    subscriber_ = *std::move(subscriber);
    service_ = std::make_unique<ServerStatusServiceImpl>(live_.get(), subscriber_.get(),
                                                         &predictions_);
  }

  StatusResponse GetStatus() {
    StatusRequest request;
    StatusResponse response;
    const grpc::Status rpc = service_->GetStatus(/*context=*/nullptr, &request, &response);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    return response;
  }

  bool WaitForPhase(Phase phase) {
    return WaitUntil([&] { return GetStatus().phase() == phase; }, kDeadline);
  }

  test::FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  PredictionServiceImpl predictions_;
  std::unique_ptr<FakeUpdateService> fake_;
  std::unique_ptr<UpdateSubscriber> subscriber_;
  std::unique_ptr<ServerStatusServiceImpl> service_;
};

TEST_F(ServerStatusServiceImplTest, IsWaitingBeforeAnyModel) {
  const StatusResponse status = GetStatus();
  EXPECT_EQ(status.role(), "server");
  EXPECT_EQ(status.phase(), WAITING);
  EXPECT_EQ(status.version(), 0u);
  EXPECT_FALSE(status.has_spec());
  EXPECT_EQ(status.updates_applied(), 0u);
  EXPECT_EQ(status.predictions(), 0u);
}

TEST_F(ServerStatusServiceImplTest, ServesWhileFollowingAndServesDisconnectedOnceTheTrainerLeaves) {
  const Update snapshot = trainer_.Snapshot();
  const Update second = trainer_.Step();
  FakeUpdateService::Stream stream;
  stream.updates = {snapshot, second};
  fake_->AddStream(stream);
  subscriber_->Start();
  ASSERT_TRUE(WaitUntil([&] { return GetStatus().version() == 2; }, kDeadline));

  PredictRequest request;
  for (int64_t d : {2, 1, 28, 28}) request.mutable_inputs()->add_shape(d);
  request.mutable_inputs()->mutable_values()->Resize(2 * 28 * 28, 0.5f);
  PredictResponse response;
  ASSERT_TRUE(predictions_.Predict(nullptr, &request, &response).ok());

  const StatusResponse serving = GetStatus();
  EXPECT_EQ(serving.phase(), SERVING);
  EXPECT_EQ(serving.version(), 2u);
  EXPECT_EQ(serving.checksum(), trainer_.model().Checksum());
  EXPECT_EQ(serving.spec().fingerprint(), trainer_.model().spec().fingerprint());
  EXPECT_EQ(serving.parameters(), static_cast<uint64_t>(ModelSize(trainer_.model().spec())));
  EXPECT_EQ(serving.updates_applied(), 2u);
  EXPECT_EQ(serving.bytes_received(), snapshot.ByteSizeLong() + second.ByteSizeLong());
  EXPECT_EQ(serving.resyncs(), 0u);
  EXPECT_EQ(serving.predictions(), 2u);

  fake_->Stop();
  ASSERT_TRUE(WaitForPhase(SERVING_DISCONNECTED));
  const StatusResponse disconnected = GetStatus();
  EXPECT_EQ(disconnected.version(), 2u);
  EXPECT_EQ(disconnected.checksum(), trainer_.model().Checksum());
  EXPECT_EQ(disconnected.updates_applied(), 2u);
}

}  // namespace
}  // namespace contrail
