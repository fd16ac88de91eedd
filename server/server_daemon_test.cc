#include "server/server_daemon.h"

#include <grpcpp/grpcpp.h>

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/fake_update_service.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using test::FakeUpdateService;
using test::WaitUntil;

constexpr absl::Duration kDeadline = absl::Seconds(30);
// What "promptly" means for Shutdown(): well under the gRPC grace period
// when nothing is in flight, with room for a loaded machine.
constexpr absl::Duration kPrompt = absl::Seconds(5);

// A fresh directory under the test's temporary directory.
std::string StateDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-XXXXXX");
  return ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
}

PredictRequest RequestOfBatch(int64_t n) {
  PredictRequest request;
  for (int64_t d : {n, int64_t{1}, int64_t{28}, int64_t{28}}) {
    request.mutable_inputs()->add_shape(d);
  }
  request.mutable_inputs()->mutable_values()->Resize(static_cast<int>(n * 28 * 28), 0.25f);
  return request;
}

ServerDaemon::Options DaemonOptions(const std::string& trainer) {
  ServerDaemon::Options options;
  options.listen = "127.0.0.1:0";
  options.trainer = trainer;
  options.backoff.initial = absl::Milliseconds(5);
  options.backoff.max = absl::Milliseconds(20);
  return options;
}

// A client of a daemon's services over a real channel, with deadlines.
class Client {
 public:
  explicit Client(int port)
      : channel_(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials())),
        predict_(PredictionService::NewStub(channel_)),
        status_(StatusService::NewStub(channel_)) {}

  grpc::Status GetStatus(StatusResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return status_->GetStatus(&context, StatusRequest(), response);
  }

  grpc::Status Predict(const PredictRequest& request, PredictResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return predict_->Predict(&context, request, response);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<PredictionService::Stub> predict_;
  std::unique_ptr<StatusService::Stub> status_;
};

TEST(ServerDaemonTest, CreateRejectsBadOptionsNamingTheField) {
  struct Case {
    const char* field;
    void (*spoil)(ServerDaemon::Options*);
  };
  const Case cases[] = {
      {"listen", [](ServerDaemon::Options* o) { o->listen = "localhost"; }},
      {"listen", [](ServerDaemon::Options* o) { o->listen = "127.0.0.1:70000"; }},
      {"trainer", [](ServerDaemon::Options* o) { o->trainer.clear(); }},
      {"max_batch", [](ServerDaemon::Options* o) { o->max_batch = 0; }},
      {"backoff initial",
       [](ServerDaemon::Options* o) { o->backoff.initial = absl::ZeroDuration(); }},
      {"shutdown_grace",
       [](ServerDaemon::Options* o) { o->shutdown_grace = absl::Seconds(-1); }},
      {"max_example_floats", [](ServerDaemon::Options* o) { o->max_example_floats = 0; }},
      {"model_name", [](ServerDaemon::Options* o) { o->model_name.clear(); }},
      {"model_name", [](ServerDaemon::Options* o) { o->model_name = "a/b"; }},
      {"gRPC's limit",
       [](ServerDaemon::Options* o) {
         o->max_batch = 1 << 20;
         o->max_example_floats = 1 << 10;
       }},
      {"--keepalive_s",
       [](ServerDaemon::Options* o) { o->keepalive.interval = absl::Milliseconds(500); }},
      {"--keepalive_timeout_s",
       [](ServerDaemon::Options* o) { o->keepalive.timeout = absl::ZeroDuration(); }},
      {"metrics_listen", [](ServerDaemon::Options* o) { o->metrics_listen = "nonsense"; }},
      {"--max_spare_versions", [](ServerDaemon::Options* o) { o->max_spare_versions = 0; }},
      {"predict_threads", [](ServerDaemon::Options* o) { o->predict_threads = -1; }},
      {"batch_timeout_us",
       [](ServerDaemon::Options* o) { o->batch_timeout = absl::Microseconds(-5); }},
      {"--save_every_s",
       [](ServerDaemon::Options* o) {
         o->state_dir = StateDir("bad-save-every");
         o->save_every = absl::ZeroDuration();
       }},
  };
  for (const Case& c : cases) {
    ServerDaemon::Options options = DaemonOptions("127.0.0.1:1");
    c.spoil(&options);
    EXPECT_THAT(ServerDaemon::Create(options),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.field;
  }
}

TEST(ServerDaemonTest, ServesPredictionsOnceTheSnapshotArrivedAndShutsDownPromptly) {
  test::FakeTrainer trainer(/*seed=*/7);
  FakeUpdateService::Stream stream;
  stream.updates = {trainer.Snapshot(), trainer.Step()};
  absl::StatusOr<std::unique_ptr<FakeUpdateService>> fake =
      FakeUpdateService::Start("127.0.0.1:0", {stream});
  ASSERT_OK(fake);
  absl::StatusOr<std::unique_ptr<ServerDaemon>> daemon =
      ServerDaemon::Create(DaemonOptions((*fake)->address()));
  ASSERT_OK(daemon);
  EXPECT_EQ((*daemon)->port(), 0);

  ASSERT_OK((*daemon)->Start());
  ASSERT_GT((*daemon)->port(), 0);
  EXPECT_THAT((*daemon)->Start(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("already started")));
  Client client((*daemon)->port());
  StatusResponse status;
  ASSERT_TRUE(WaitUntil(
      [&] { return client.GetStatus(&status).ok() && status.version() == 2; }, kDeadline))
      << status.ShortDebugString();
  EXPECT_EQ(status.phase(), SERVING);
  EXPECT_EQ(status.checksum(), trainer.model().Checksum());

  PredictRequest request;
  for (int64_t d : {2, 1, 28, 28}) request.mutable_inputs()->add_shape(d);
  request.mutable_inputs()->mutable_values()->Resize(2 * 28 * 28, 0.25f);
  PredictResponse response;
  const grpc::Status predicted = client.Predict(request, &response);
  ASSERT_TRUE(predicted.ok()) << predicted.error_message();
  EXPECT_EQ(response.version(), 2u);
  EXPECT_EQ(response.predictions_size(), 2);
  const std::vector<SubscribeRequest> requests = (*fake)->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].subscriber(), "server@127.0.0.1:0");

  const absl::Time begin = absl::Now();
  (*daemon)->Shutdown();
  EXPECT_LT(absl::Now() - begin, kPrompt);
  (*daemon)->Shutdown();  // idempotent
  EXPECT_FALSE(client.GetStatus(&status).ok()) << "still serving after Shutdown()";
  EXPECT_THAT((*daemon)->Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("shut down")));
}

TEST(ServerDaemonTest, StateDirThatCannotBeCreatedIsRefused) {
  ServerDaemon::Options options = DaemonOptions("127.0.0.1:1");
  const std::string dir = StateDir("parent");
  ASSERT_FALSE(dir.empty());
  const std::string file = dir + "/a-file";
  std::FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  options.state_dir = file + "/state";
  EXPECT_THAT(ServerDaemon::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(options.state_dir)));
}

TEST(ServerDaemonTest, RestartedDaemonServesItsSavedVersionBeforeAnyTrainerAnswers) {
  const std::string state_dir = StateDir("state");
  ASSERT_FALSE(state_dir.empty());
  test::FakeTrainer trainer(/*seed=*/7);
  FakeUpdateService::Stream stream;
  stream.updates = {trainer.Snapshot(), trainer.Step(), trainer.Step()};
  absl::StatusOr<std::unique_ptr<FakeUpdateService>> fake =
      FakeUpdateService::Start("127.0.0.1:0", {stream});
  ASSERT_OK(fake);
  ServerDaemon::Options options = DaemonOptions((*fake)->address());
  options.state_dir = state_dir;
  options.save_every = absl::Hours(1);  // only the save at shutdown
  {
    std::unique_ptr<ServerDaemon> daemon = ServerDaemon::Create(options).value();
    ASSERT_OK(daemon->Start());
    Client client(daemon->port());
    StatusResponse status;
    ASSERT_TRUE(WaitUntil(
        [&] { return client.GetStatus(&status).ok() && status.version() == 3; }, kDeadline));
    EXPECT_EQ(status.saved_version(), 0u);
    daemon->Shutdown();
  }
  const std::string address = (*fake)->address();
  fake->reset();  // the trainer is gone

  std::unique_ptr<ServerDaemon> restarted = ServerDaemon::Create(options).value();
  ASSERT_OK(restarted->Start());
  Client client(restarted->port());
  PredictResponse response;
  const grpc::Status predicted = client.Predict(RequestOfBatch(2), &response);
  ASSERT_TRUE(predicted.ok()) << predicted.error_message();
  EXPECT_EQ(response.version(), 3u);
  StatusResponse status;
  ASSERT_TRUE(client.GetStatus(&status).ok());
  EXPECT_EQ(status.phase(), SERVING_DISCONNECTED);
  EXPECT_FALSE(status.connected());
  EXPECT_EQ(status.version(), 3u);
  EXPECT_EQ(status.checksum(), trainer.model().Checksum());
  EXPECT_EQ(status.saved_version(), 3u);

  // The trainer comes back: the server subscribes from version 3 and takes
  // the deltas after it.
  FakeUpdateService::Stream more;
  more.updates = {trainer.Step()};
  absl::StatusOr<std::unique_ptr<FakeUpdateService>> back =
      FakeUpdateService::Start(address, {more});
  ASSERT_OK(back);
  ASSERT_TRUE(WaitUntil(
      [&] { return client.GetStatus(&status).ok() && status.version() == 4; }, kDeadline));
  EXPECT_TRUE(status.connected());
  EXPECT_EQ(status.checksum(), trainer.model().Checksum());
  const std::vector<SubscribeRequest> requests = (*back)->requests();
  ASSERT_GE(requests.size(), 1u);
  EXPECT_EQ(requests[0].have_version(), 3u);
  EXPECT_EQ(requests[0].have_run(), test::FakeTrainer::kRun);
}

TEST(ServerDaemonTest, PredictRequestsAreBoundedByMaxBatchOnTheWire) {
  test::FakeTrainer trainer(/*seed=*/7);
  FakeUpdateService::Stream stream;
  stream.updates = {trainer.Snapshot()};
  absl::StatusOr<std::unique_ptr<FakeUpdateService>> fake =
      FakeUpdateService::Start("127.0.0.1:0", {stream});
  ASSERT_OK(fake);
  ServerDaemon::Options options = DaemonOptions((*fake)->address());
  options.max_batch = 2;
  std::unique_ptr<ServerDaemon> daemon = ServerDaemon::Create(options).value();
  ASSERT_OK(daemon->Start());
  Client client(daemon->port());
  StatusResponse status;
  ASSERT_TRUE(WaitUntil(
      [&] { return client.GetStatus(&status).ok() && status.version() == 1; }, kDeadline));

  PredictResponse response;
  EXPECT_TRUE(client.Predict(RequestOfBatch(2), &response).ok());
  // Within the message limit (2 x 784 floats and a margin), over max_batch.
  EXPECT_EQ(client.Predict(RequestOfBatch(3), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Over the message limit: refused before it is parsed.
  const grpc::Status oversized = client.Predict(RequestOfBatch(8), &response);
  EXPECT_EQ(oversized.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << oversized.error_message();
  EXPECT_EQ(ServerDaemon::MaxPredictRequestBytes(options), 2 * 784 * 4 + 4096);
  EXPECT_TRUE(client.Predict(RequestOfBatch(1), &response).ok());
}

TEST(ServerDaemonTest, StartFailsOnAnAddressInUseAndNamesIt) {
  absl::StatusOr<std::unique_ptr<ServerDaemon>> holder =
      ServerDaemon::Create(DaemonOptions("127.0.0.1:1"));
  ASSERT_OK(holder);
  ASSERT_OK((*holder)->Start());
  const std::string address = absl::StrCat("127.0.0.1:", (*holder)->port());
  ServerDaemon::Options options = DaemonOptions("127.0.0.1:1");
  options.listen = address;
  absl::StatusOr<std::unique_ptr<ServerDaemon>> clash = ServerDaemon::Create(options);
  ASSERT_OK(clash);
  EXPECT_THAT((*clash)->Start(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
  EXPECT_EQ((*clash)->port(), 0);
}

TEST(ServerDaemonTest, StartFailsOnAMetricsAddressInUseAndNamesTheFlag) {
  ServerDaemon::Options holder_options = DaemonOptions("127.0.0.1:1");
  holder_options.metrics_listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<ServerDaemon>> holder = ServerDaemon::Create(holder_options);
  ASSERT_OK(holder);
  ASSERT_OK((*holder)->Start());
  ASSERT_GT((*holder)->metrics_port(), 0);
  const std::string address = absl::StrCat("127.0.0.1:", (*holder)->metrics_port());
  ServerDaemon::Options options = DaemonOptions("127.0.0.1:1");
  options.metrics_listen = address;
  absl::StatusOr<std::unique_ptr<ServerDaemon>> clash = ServerDaemon::Create(options);
  ASSERT_OK(clash);
  EXPECT_THAT((*clash)->Start(),
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AllOf(HasSubstr("--metrics_listen"), HasSubstr(address))));
  EXPECT_EQ((*clash)->port(), 0);
}

}  // namespace
}  // namespace contrail
