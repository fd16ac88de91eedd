// The server's durability and liveness, end to end: the real trainer and
// server binaries as child processes on 127.0.0.1 (ports picked by the
// daemons, read back from --port_file), on synthetic Fashion-MNIST-shaped
// data.
//
//  - A server killed with SIGKILL and restarted while its trainer is down
//    serves the version it saved in --state_dir within a second of
//    starting, then follows a trainer that comes up.
//  - A server notices a trainer that froze (SIGSTOP: the TCP connection
//    stays up, nothing answers) within seconds through its keepalive pings,
//    keeps serving, and follows the trainer again once it thaws; an idle
//    but live trainer keeps it connected.
//
// Every wait is a poll with a deadline; TearDown() resumes, stops and reaps
// every child, and on failure copies the daemons' logs into the test log.
#include <signal.h>

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using test::ChildProcess;
using test::ReadFileOrEmpty;
using test::TestTmpDir;

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
// From exec to the port file: loading LibTorch and reading the data.
constexpr absl::Duration kStartDeadline = absl::Seconds(30);
// For a stream to end, or a server to catch up.
constexpr absl::Duration kRunDeadline = absl::Seconds(60);
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
// Issue 9: a restarted server answers within a second of starting. What
// the server controls is the time beyond a bare start of the same binary
// (loading LibTorch and its 350 shared libraries: 0.6 s on an idle 2-core
// machine, several seconds on a loaded one), measured alongside.
constexpr absl::Duration kRestartBudget = absl::Seconds(1);
// With the default keepalive (a ping every 2 s, 2 s to answer) a frozen
// trainer is noticed within about 4 s; the rest is room for a loaded
// machine.
constexpr absl::Duration kDeadLinkBudget = absl::Seconds(8);
// Longer than gRPC's default allowance of two pings without data, and
// than the three strikes after which a trainer with gRPC's default ping
// policy would send GOAWAY: an idle link must stay up through it.
constexpr absl::Duration kIdleWindow = absl::Seconds(9);

using Flags = test::DaemonFlags;

struct Client {
  explicit Client(int port) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             grpc::InsecureChannelCredentials(), arguments);
    status = StatusService::NewStub(channel);
    prediction = PredictionService::NewStub(channel);
  }

  absl::StatusOr<StatusResponse> GetStatus() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    StatusResponse response;
    const grpc::Status rpc = status->GetStatus(&context, StatusRequest(), &response);
    if (!rpc.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(rpc.error_code()), rpc.error_message());
    }
    return response;
  }

  grpc::Status Predict(int64_t n, PredictResponse* response) {
    PredictRequest request;
    for (int64_t d : {n, int64_t{1}, int64_t{28}, int64_t{28}}) {
      request.mutable_inputs()->add_shape(d);
    }
    request.mutable_inputs()->mutable_values()->Resize(static_cast<int>(n * 28 * 28), 0.5f);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    return prediction->Predict(&context, request, response);
  }

  std::unique_ptr<StatusService::Stub> status;
  std::unique_ptr<PredictionService::Stub> prediction;
};

using Daemon = test::RunningDaemon;

class ServerDurabilityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new std::string(TestTmpDir() + "/fashion-mnist");
    const absl::Status written =
        test::WriteSyntheticFashionMnist(*data_dir_, /*train_count=*/3000,
                                         /*test_count=*/100, /*seed=*/11);
    ASSERT_TRUE(written.ok()) << written;
  }

  static void TearDownTestSuite() {
    delete data_dir_;
    data_dir_ = nullptr;
  }

  void TearDown() override {
    cluster_.StopAll();
    if (HasFailure()) std::fprintf(stderr, "%s", cluster_.Logs().c_str());
  }

  // 1000 examples of initial training, then 1500 streamed as fast as the
  // trainer goes.
  static Flags TrainerFlags() {
    return {
        {"listen", "127.0.0.1:0"},   {"data_dir", *data_dir_},
        {"model", "lenet5"},         {"initial_examples", "1000"},
        {"initial_epochs", "1"},     {"stream_examples", "1500"},
        {"trigger_size", "8"},       {"batch_size", "64"},
        {"sparsity", "topk"},        {"ratio", "0.01"},
        {"replay_rate", "0"},        {"threads", "1"},
    };
  }

  static Flags ServerFlags(const std::string& trainer) {
    return {{"listen", "127.0.0.1:0"}, {"trainer", trainer}, {"threads", "1"}};
  }

  // Starts `binary` (a runfile path) with `flags` and --port_file, and
  // waits until it listens.
  absl::StatusOr<Daemon> StartDaemon(const std::string& name, const std::string& binary,
                                     const Flags& flags) {
    return cluster_.Start(name, binary, flags, kStartDeadline);
  }

  absl::StatusOr<Daemon> StartTrainer(const Flags& flags) {
    return StartDaemon("trainer", "trainer/trainer", flags);
  }
  absl::StatusOr<Daemon> StartServer(const Flags& flags) {
    return StartDaemon("server", "server/server", flags);
  }

  // Polls `client` until `done` holds for its status, for up to `timeout`.
  template <typename Predicate>
  static absl::StatusOr<StatusResponse> WaitForStatus(Client& client, const std::string& what,
                                                      Predicate done,
                                                      absl::Duration timeout = kRunDeadline) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      absl::StatusOr<StatusResponse> status = client.GetStatus();
      if (!status.ok()) return status.status();
      if (done(*status)) return status;
      if (status->phase() == FAILED) {
        return absl::InternalError(absl::StrCat("failed while waiting for ", what));
      }
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no ", what, " in ", absl::FormatDuration(timeout),
            "; last status: ", status->ShortDebugString()));
      }
      absl::SleepFor(kPollInterval);
    }
  }

  static absl::StatusOr<StatusResponse> WaitUntilTrainerDone(Client& trainer) {
    return WaitForStatus(trainer, "end of the stream",
                         [](const StatusResponse& s) { return s.phase() == DONE; });
  }

  static absl::StatusOr<StatusResponse> WaitUntilServerHolds(Client& server,
                                                             const StatusResponse& trainer) {
    return WaitForStatus(server, "server holding the trainer's model",
                         [&trainer](const StatusResponse& s) {
                           return s.version() == trainer.version() &&
                                  s.checksum() == trainer.checksum();
                         });
  }

  static std::string* data_dir_;
  test::DaemonCluster cluster_{TestTmpDir()};
};

std::string* ServerDurabilityTest::data_dir_ = nullptr;

TEST_F(ServerDurabilityTest, KilledServerServesItsSavedVersionAtOnceWithTheTrainerDown) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  Flags server_flags = ServerFlags(trainer->address());
  server_flags["state_dir"] = TestTmpDir() + "/server-state";
  server_flags["save_every_s"] = "0.2";
  absl::StatusOr<Daemon> server = StartServer(server_flags);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<StatusResponse> trained;
  {
    Client trainer_client(trainer->port);
    trained = WaitUntilTrainerDone(trainer_client);
    ASSERT_TRUE(trained.ok()) << trained.status();
    ASSERT_GT(trained->version(), 1u);
  }
  {
    Client server_client(server->port);
    absl::StatusOr<StatusResponse> saved = WaitForStatus(
        server_client, "the trainer's last version saved", [&](const StatusResponse& s) {
          return s.saved_version() == trained->version() && s.checksum() == trained->checksum();
        });
    ASSERT_TRUE(saved.ok()) << saved.status();
  }

  server->process->Kill();
  trainer->process->Kill();

  // The same binary started bare (nothing saved, no trainer), for scale.
  absl::Duration bare_start;
  {
    Flags bare_flags = ServerFlags(trainer->address());
    bare_flags["state_dir"] = TestTmpDir() + "/bare-state";
    const absl::Time start = absl::Now();
    absl::StatusOr<Daemon> bare = StartServer(bare_flags);
    ASSERT_TRUE(bare.ok()) << bare.status();
    Client bare_client(bare->port);
    PredictResponse response;
    EXPECT_EQ(bare_client.Predict(4, &response).error_code(), grpc::StatusCode::UNAVAILABLE);
    bare_start = absl::Now() - start;
    bare->process->Kill();
  }

  // Restarted with no trainer to follow: it serves what it saved at once.
  const absl::Time start = absl::Now();
  absl::StatusOr<Daemon> restarted = StartServer(server_flags);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  Client restarted_client(restarted->port);
  PredictResponse response;
  const grpc::Status rpc = restarted_client.Predict(4, &response);
  const absl::Duration answered_after = absl::Now() - start;
  ASSERT_TRUE(rpc.ok()) << rpc.error_code() << ": " << rpc.error_message();
  EXPECT_EQ(response.version(), trained->version());
  EXPECT_EQ(response.predictions_size(), 4);
  EXPECT_LT(answered_after - bare_start, kRestartBudget)
      << "answered " << answered_after << " after its start; a bare start took "
      << bare_start;
  RecordProperty("restart_to_first_prediction_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(answered_after)));
  RecordProperty("bare_start_to_first_answer_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(bare_start)));
  std::fprintf(stderr,
               "restarted server answered with version %llu %s after its start "
               "(a bare start answered UNAVAILABLE after %s)\n",
               static_cast<unsigned long long>(response.version()),
               absl::FormatDuration(answered_after).c_str(),
               absl::FormatDuration(bare_start).c_str());

  absl::StatusOr<StatusResponse> orphan = restarted_client.GetStatus();
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  EXPECT_EQ(orphan->phase(), SERVING_DISCONNECTED);
  EXPECT_FALSE(orphan->connected());
  EXPECT_EQ(orphan->version(), trained->version());
  EXPECT_EQ(orphan->checksum(), trained->checksum());
  EXPECT_EQ(orphan->saved_version(), trained->version());
  // The age of the model: since the killed server applied it.
  EXPECT_GE(orphan->seconds_since_update(), absl::ToDoubleSeconds(answered_after) * 0.5);

  // A trainer comes up on the same address: the server follows it.
  Flags flags = TrainerFlags();
  flags["listen"] = trainer->address();
  flags["seed"] = "2";
  absl::StatusOr<Daemon> second = StartTrainer(flags);
  ASSERT_TRUE(second.ok()) << second.status();
  Client second_client(second->port);
  absl::StatusOr<StatusResponse> retrained = WaitUntilTrainerDone(second_client);
  ASSERT_TRUE(retrained.ok()) << retrained.status();
  absl::StatusOr<StatusResponse> following = WaitUntilServerHolds(restarted_client, *retrained);
  ASSERT_TRUE(following.ok()) << following.status();
  EXPECT_EQ(following->checksum(), retrained->trainer_checksum());
  EXPECT_TRUE(WaitForStatus(restarted_client, "connected",
                            [](const StatusResponse& s) { return s.connected(); })
                  .ok());
  // ... and saves what it follows: a clean stop leaves the last version.
  restarted->process->Signal(SIGTERM);
  EXPECT_EQ(restarted->process->WaitForExitCode(absl::Seconds(10)), 0);
  absl::StatusOr<Daemon> third = StartServer(server_flags);
  ASSERT_TRUE(third.ok()) << third.status();
  Client third_client(third->port);
  absl::StatusOr<StatusResponse> reloaded = third_client.GetStatus();
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->version(), retrained->version());
  EXPECT_EQ(reloaded->checksum(), retrained->checksum());
}

TEST_F(ServerDurabilityTest, FrozenTrainerIsNoticedWithinSecondsAndFollowedOnceItThaws) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  Client trainer_client(trainer->port);
  Client server_client(server->port);
  absl::StatusOr<StatusResponse> trained = WaitUntilTrainerDone(trainer_client);
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_TRUE(WaitUntilServerHolds(server_client, *trained).ok());

  // The trainer is idle and alive: pings go on without data, it accepts
  // them, and the subscription stays up.
  const absl::Time idle_until = absl::Now() + kIdleWindow;
  while (absl::Now() < idle_until) {
    absl::StatusOr<StatusResponse> status = server_client.GetStatus();
    ASSERT_TRUE(status.ok()) << status.status();
    ASSERT_TRUE(status->connected()) << status->ShortDebugString();
    ASSERT_EQ(status->phase(), SERVING);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(server->process->Stdout() + server->process->Stderr(),
              Not(HasSubstr("resubscribing")));

  // Frozen: its sockets stay open, nothing answers.
  trainer->process->Signal(SIGSTOP);
  const absl::Time frozen_at = absl::Now();
  absl::StatusOr<StatusResponse> noticed =
      WaitForStatus(server_client, "the frozen trainer noticed",
                    [](const StatusResponse& s) { return !s.connected(); });
  const absl::Duration noticed_after = absl::Now() - frozen_at;
  ASSERT_TRUE(noticed.ok()) << noticed.status();
  EXPECT_LT(noticed_after, kDeadLinkBudget);
  EXPECT_EQ(noticed->phase(), SERVING_DISCONNECTED);
  RecordProperty("dead_link_noticed_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(noticed_after)));
  std::fprintf(stderr, "frozen trainer noticed after %s\n",
               absl::FormatDuration(noticed_after).c_str());
  PredictResponse response;
  const grpc::Status rpc = server_client.Predict(2, &response);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(response.version(), trained->version());

  trainer->process->Signal(SIGCONT);
  absl::StatusOr<StatusResponse> back = WaitForStatus(
      server_client, "the thawed trainer followed again",
      [](const StatusResponse& s) { return s.connected() && s.phase() == SERVING; });
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->version(), trained->version());
  EXPECT_EQ(back->checksum(), trained->checksum());
}

}  // namespace
}  // namespace contrail
