#include "server/server_status_service_impl.h"

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/served_model_saver.h"
#include "server/served_model_store.h"
#include "server/update_subscriber.h"
#include "tests/test_util/fake_clock.h"
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
  {
    // The prediction service answers through gRPC's callback API.
    grpc::ServerBuilder builder;
    builder.RegisterService(&predictions_);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    std::unique_ptr<PredictionService::Stub> stub =
        PredictionService::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
    grpc::ClientContext context;
    const grpc::Status predicted = stub->Predict(&context, request, &response);
    server->Shutdown();
    ASSERT_TRUE(predicted.ok()) << predicted.error_message();
  }

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
  EXPECT_TRUE(serving.connected());
  EXPECT_GE(serving.seconds_since_update(), 0.0);
  EXPECT_LT(serving.seconds_since_update(), absl::ToDoubleSeconds(kDeadline));
  EXPECT_EQ(serving.saved_version(), 0u);  // no state directory

  fake_->Stop();
  ASSERT_TRUE(WaitForPhase(SERVING_DISCONNECTED));
  const StatusResponse disconnected = GetStatus();
  EXPECT_EQ(disconnected.version(), 2u);
  EXPECT_EQ(disconnected.checksum(), trainer_.model().Checksum());
  EXPECT_EQ(disconnected.updates_applied(), 2u);
  EXPECT_FALSE(disconnected.connected());
}

TEST(ServerStatusServiceImplStateTest, ReportsTheAgeOfTheModelAndTheVersionSaved) {
  test::FakeClock clock(absl::FromUnixSeconds(1700000000));
  LiveModel::Options live_options;
  live_options.clock = &clock;
  std::unique_ptr<LiveModel> live = LiveModel::Create(live_options).value();
  PredictionServiceImpl predictions(live.get());
  // A subscriber that is never started: the trainer is down.
  std::unique_ptr<UpdateSubscriber> subscriber =
      UpdateSubscriber::Create(UpdateSubscriber::Options(),
                               UpdateSubscriber::MakeChannel("127.0.0.1:1"), live.get())
          .value();
  const char* tmp = std::getenv("TEST_TMPDIR");
  ServedModelStore::Options store_options;
  store_options.dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/status-state");
  std::unique_ptr<ServedModelStore> store = ServedModelStore::Create(store_options).value();
  std::unique_ptr<ServedModelSaver> saver =
      ServedModelSaver::Create(ServedModelSaver::Options(), live.get(), store.get()).value();
  ServerStatusServiceImpl service(live.get(), subscriber.get(), &predictions, saver.get());
  auto get_status = [&service] {
    StatusRequest request;
    StatusResponse response;
    EXPECT_TRUE(service.GetStatus(nullptr, &request, &response).ok());
    return response;
  };
  StatusResponse status = get_status();
  EXPECT_EQ(status.phase(), WAITING);
  EXPECT_FALSE(status.connected());
  EXPECT_EQ(status.seconds_since_update(), 0.0);
  EXPECT_EQ(status.saved_version(), 0u);

  // A model saved 90 s ago by the process before this one.
  test::FakeTrainer trainer(/*seed=*/7);
  ASSERT_TRUE(live->Restore(trainer.Snapshot(), clock.Now() - absl::Seconds(90)).ok());
  saver->MarkSaved(test::FakeTrainer::kRun, 1);
  clock.Advance(absl::Seconds(10));
  status = get_status();
  EXPECT_EQ(status.phase(), SERVING_DISCONNECTED);
  EXPECT_FALSE(status.connected());
  EXPECT_EQ(status.version(), 1u);
  EXPECT_EQ(status.seconds_since_update(), 100.0);
  EXPECT_EQ(status.saved_version(), 1u);

  ASSERT_TRUE(live->Apply(trainer.Step()).ok());
  ASSERT_TRUE(saver->SaveIfChanged().ok());
  clock.Advance(absl::Milliseconds(1500));
  status = get_status();
  EXPECT_EQ(status.seconds_since_update(), 1.5);
  EXPECT_EQ(status.saved_version(), 2u);
}

}  // namespace
}  // namespace contrail
