// End-to-end tests of contrail's daemons: the real trainer, server and
// contrailctl binaries run as child processes on 127.0.0.1 (ports picked by
// the daemons and read back from --port_file), on synthetic
// Fashion-MNIST-shaped data, and the test talks to them over gRPC.
//
// Every wait is a poll with a deadline; TearDown() stops and reaps every
// child, whatever happened, and on failure copies the daemons' logs into
// the test log.
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/idx_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// How often a wait re-checks its condition.
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
// From exec to the port file: loading LibTorch and reading the data.
constexpr absl::Duration kStartDeadline = absl::Seconds(30);
// From start to the end of a stream, and for a server to catch up.
constexpr absl::Duration kRunDeadline = absl::Seconds(60);
// Each RPC the test makes.
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);

constexpr int64_t kTrainCount = 3000;
constexpr int64_t kTestCount = 500;
constexpr int64_t kStreamExamples = 1500;
constexpr int64_t kExampleSize = 28 * 28;

using test::ChildProcess;
using test::ReadFileOrEmpty;
using test::Runfile;
using test::TestTmpDir;

std::vector<std::string> NonEmptyLines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipWhitespace());
}

// Stubs of one daemon's services.
struct Client {
  explicit Client(int port) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    // A daemon restarted on the same port is found again at once.
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             grpc::InsecureChannelCredentials(),
                                             arguments);
    status = StatusService::NewStub(channel);
    prediction = PredictionService::NewStub(channel);
  }

  absl::StatusOr<StatusResponse> GetStatus() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    StatusResponse response;
    const grpc::Status rpc = status->GetStatus(&context, StatusRequest(), &response);
    if (!rpc.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(rpc.error_code()),
                          rpc.error_message());
    }
    return response;
  }

  grpc::Status Predict(const PredictRequest& request, PredictResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    return prediction->Predict(&context, request, response);
  }

  std::unique_ptr<StatusService::Stub> status;
  std::unique_ptr<PredictionService::Stub> prediction;
};

// A request for examples [begin, begin + n) of `images`.
PredictRequest MakeRequest(const LabelledImages& images, int64_t begin, int64_t n) {
  PredictRequest request;
  Tensor* inputs = request.mutable_inputs();
  for (int64_t d : {n, int64_t{1}, images.rows, images.cols}) inputs->add_shape(d);
  inputs->mutable_values()->Add(
      images.pixels.begin() + begin * images.example_size(),
      images.pixels.begin() + (begin + n) * images.example_size());
  return request;
}

PredictRequest RequestOfShape(const std::vector<int64_t>& shape, int64_t values) {
  PredictRequest request;
  for (int64_t d : shape) request.mutable_inputs()->add_shape(d);
  for (int64_t i = 0; i < values; ++i) request.mutable_inputs()->add_values(0.5f);
  return request;
}

using Flags = test::DaemonFlags;
using Daemon = test::RunningDaemon;

class IntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new std::string(TestTmpDir() + "/fashion-mnist");
    const absl::Status written = test::WriteSyntheticFashionMnist(
        *data_dir_, kTrainCount, kTestCount, /*seed=*/11);
    ASSERT_TRUE(written.ok()) << written;
    absl::StatusOr<LabelledImages> test_set =
        ReadFashionMnist(*data_dir_, /*train=*/false);
    ASSERT_TRUE(test_set.ok()) << test_set.status();
    test_set_ = new LabelledImages(*std::move(test_set));
  }

  static void TearDownTestSuite() {
    delete test_set_;
    test_set_ = nullptr;
    delete data_dir_;
    data_dir_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(test_set_, nullptr); }

  void TearDown() override {
    cluster_.StopAll();
    if (HasFailure()) std::fprintf(stderr, "%s", cluster_.Logs().c_str());
  }

  // 1000 examples of initial training, then a stream of 1500 as fast as the
  // trainer goes, top-k at 1 %.
  static Flags TrainerFlags() {
    return {
        {"listen", "127.0.0.1:0"},
        {"data_dir", *data_dir_},
        {"model", "lenet5"},
        {"initial_examples", "1000"},
        {"initial_epochs", "1"},
        {"stream_examples", absl::StrCat(kStreamExamples)},
        {"trigger_size", "8"},
        {"batch_size", "64"},
        {"sparsity", "topk"},
        {"ratio", "0.01"},
        {"lr", "0.003"},
        {"replay_rate", "0"},
        {"threads", "1"},
    };
  }

  static Flags ServerFlags(const std::string& trainer_address) {
    return {
        {"listen", "127.0.0.1:0"},
        {"trainer", trainer_address},
        {"threads", "1"},
    };
  }

  // Starts `binary` (a runfile path) with `flags` and `positional`
  // arguments.
  ChildProcess* StartProcess(const std::string& name, const std::string& binary,
                             const Flags& flags,
                             const std::vector<std::string>& positional = {}) {
    return cluster_.StartProcess(name, binary, flags, positional);
  }

  // Starts a daemon with --port_file and waits until it listens.
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

  // Polls `client` until `done` holds for its status; the last status, or
  // an error on RPC failure or deadline.
  template <typename Predicate>
  static absl::StatusOr<StatusResponse> WaitForStatus(Client& client,
                                                      const std::string& what,
                                                      Predicate done) {
    const absl::Time deadline = absl::Now() + kRunDeadline;
    while (true) {
      absl::StatusOr<StatusResponse> status = client.GetStatus();
      if (!status.ok()) return status.status();
      if (done(*status)) return status;
      if (status->phase() == FAILED) {
        return absl::InternalError(absl::StrCat("failed while waiting for ", what));
      }
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no ", what, " in ", absl::FormatDuration(kRunDeadline),
            "; last status: ", status->ShortDebugString()));
      }
      absl::SleepFor(kPollInterval);
    }
  }

  static absl::StatusOr<StatusResponse> WaitUntilTrainerDone(Client& trainer) {
    return WaitForStatus(trainer, "end of the stream",
                         [](const StatusResponse& s) { return s.phase() == DONE; });
  }

  // Waits until the server holds the trainer's model, bit for bit; the
  // trainer must be done.
  static absl::StatusOr<StatusResponse> WaitUntilServerHolds(
      Client& server, const StatusResponse& trainer) {
    return WaitForStatus(server, "server holding the trainer's model",
                         [&trainer](const StatusResponse& s) {
                           return s.version() == trainer.version() &&
                                  s.checksum() == trainer.checksum();
                         });
  }

  // Fraction of the test set the server labels right.
  static double TestAccuracy(Client& server) {
    int64_t correct = 0;
    constexpr int64_t kBatch = 100;
    for (int64_t begin = 0; begin < test_set_->count; begin += kBatch) {
      PredictResponse response;
      const grpc::Status rpc = server.Predict(MakeRequest(*test_set_, begin, kBatch), &response);
      EXPECT_TRUE(rpc.ok()) << rpc.error_message();
      if (!rpc.ok()) return 0;
      for (int64_t i = 0; i < response.predictions_size(); ++i) {
        correct += response.predictions(i).label() == test_set_->labels[begin + i];
      }
    }
    return static_cast<double>(correct) / test_set_->count;
  }

  static std::string* data_dir_;
  static LabelledImages* test_set_;

  test::DaemonCluster cluster_{TestTmpDir()};
};

std::string* IntegrationTest::data_dir_ = nullptr;
LabelledImages* IntegrationTest::test_set_ = nullptr;

TEST_F(IntegrationTest, ServerFollowsStreamingTrainerToTheIdenticalModel) {
  Flags trainer_flags = TrainerFlags();
  trainer_flags["replay_rate"] = "500";  // 1500 examples: about 3 s of stream
  absl::StatusOr<Daemon> trainer = StartTrainer(trainer_flags);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  Client trainer_client(trainer->port);
  Client server_client(server->port);

  // Predict while the trainer streams: once the server has a model, every
  // call succeeds, and the versions it answers with never go down.
  uint64_t last_version = 0;
  std::set<uint64_t> versions;
  int64_t begin = 0;
  const absl::Time deadline = absl::Now() + kRunDeadline;
  absl::StatusOr<StatusResponse> trainer_status;
  while (true) {
    ASSERT_LT(absl::Now(), deadline) << "the stream did not end in time";
    const PredictRequest request = MakeRequest(*test_set_, begin, 16);
    begin = (begin + 16) % (test_set_->count - 16);
    PredictResponse response;
    const grpc::Status rpc = server_client.Predict(request, &response);
    trainer_status = trainer_client.GetStatus();
    ASSERT_TRUE(trainer_status.ok()) << trainer_status.status();
    if (versions.empty() && rpc.error_code() == grpc::StatusCode::UNAVAILABLE) {
      EXPECT_THAT(rpc.error_message(), HasSubstr("no model"));
    } else {
      ASSERT_TRUE(rpc.ok()) << rpc.error_code() << ": " << rpc.error_message();
      ASSERT_EQ(response.predictions_size(), 16);
      EXPECT_EQ(response.predictions(0).scores_size(), 10);
      EXPECT_GE(response.version(), 1u);
      EXPECT_GE(response.version(), last_version) << "the served version went back";
      // The server never runs ahead of what the trainer has published.
      EXPECT_LE(response.version(), trainer_status->version());
      last_version = response.version();
      versions.insert(response.version());
    }
    ASSERT_NE(trainer_status->phase(), FAILED);
    if (trainer_status->phase() == DONE) break;
    absl::SleepFor(kPollInterval);
  }
  // The server answered from several versions while the stream ran.
  EXPECT_GT(versions.size(), 1u);

  EXPECT_EQ(trainer_status->examples_seen(), static_cast<uint64_t>(kStreamExamples));
  EXPECT_EQ(trainer_status->updates_published(), trainer_status->version());
  // With sparse steps, every change the trainer made has been published.
  EXPECT_EQ(trainer_status->checksum(), trainer_status->trainer_checksum());
  EXPECT_GT(trainer_status->prequential_accuracy(), 0.3);

  absl::StatusOr<StatusResponse> server_status =
      WaitUntilServerHolds(server_client, *trainer_status);
  ASSERT_TRUE(server_status.ok()) << server_status.status();
  EXPECT_EQ(server_status->role(), "server");
  EXPECT_EQ(server_status->phase(), SERVING);
  EXPECT_EQ(server_status->version(), trainer_status->version());
  EXPECT_EQ(server_status->checksum(), trainer_status->checksum());
  EXPECT_EQ(server_status->checksum(), trainer_status->trainer_checksum());
  EXPECT_EQ(server_status->spec().fingerprint(), trainer_status->spec().fingerprint());
  EXPECT_EQ(server_status->resyncs(), 0u);
  EXPECT_GT(server_status->predictions(), 0u);

  const double test_accuracy = TestAccuracy(server_client);
  EXPECT_GT(test_accuracy, 0.3);
  RecordProperty("versions_answered", static_cast<int>(versions.size()));
  RecordProperty("final_version", static_cast<int>(trainer_status->version()));
  RecordProperty("prequential_accuracy",
                 absl::StrCat(trainer_status->prequential_accuracy()));
  RecordProperty("test_accuracy", absl::StrCat(test_accuracy));

  // Both daemons shut down cleanly on SIGTERM.
  server->process->Signal(SIGTERM);
  trainer->process->Signal(SIGTERM);
  EXPECT_EQ(server->process->WaitForExitCode(absl::Seconds(10)), 0);
  EXPECT_EQ(trainer->process->WaitForExitCode(absl::Seconds(10)), 0);
}

TEST_F(IntegrationTest, BadPredictInputsAreInvalidArgumentsAndServingGoesOn) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  Flags server_flags = ServerFlags(trainer->address());
  server_flags["max_batch"] = "8";
  absl::StatusOr<Daemon> server = StartServer(server_flags);
  ASSERT_TRUE(server.ok()) << server.status();
  Client server_client(server->port);
  ASSERT_TRUE(WaitForStatus(server_client, "model on the server",
                            [](const StatusResponse& s) { return s.version() > 0; })
                  .ok());

  PredictRequest nan = RequestOfShape({2, 1, 28, 28}, 2 * kExampleSize);
  nan.mutable_inputs()->set_values(kExampleSize + 3, std::nanf(""));
  PredictRequest infinity = RequestOfShape({1, 1, 28, 28}, kExampleSize);
  infinity.mutable_inputs()->set_values(0, std::numeric_limits<float>::infinity());
  const std::vector<std::pair<std::string, PredictRequest>> bad = {
      {"no inputs", PredictRequest()},
      {"no batch dimension", RequestOfShape({1, 28, 28}, kExampleSize)},
      {"three channels", RequestOfShape({1, 3, 28, 28}, 3 * kExampleSize)},
      {"27 columns", RequestOfShape({1, 1, 28, 27}, 28 * 27)},
      {"empty batch", RequestOfShape({0, 1, 28, 28}, 0)},
      {"negative batch", RequestOfShape({-1, 1, 28, 28}, 0)},
      {"too few values", RequestOfShape({2, 1, 28, 28}, 2 * kExampleSize - 1)},
      {"too many values", RequestOfShape({1, 1, 28, 28}, kExampleSize + 1)},
      {"NaN", nan},
      {"infinity", infinity},
      {"batch over --max_batch", RequestOfShape({9, 1, 28, 28}, 9 * kExampleSize)},
  };
  for (const auto& [what, request] : bad) {
    PredictResponse response;
    const grpc::Status rpc = server_client.Predict(request, &response);
    EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_FALSE(rpc.error_message().empty()) << what;
  }
  {
    PredictResponse response;
    const grpc::Status rpc = server_client.Predict(bad.back().second, &response);
    EXPECT_THAT(rpc.error_message(), HasSubstr("8"));
  }
  {
    PredictResponse response;
    const grpc::Status rpc = server_client.Predict(nan, &response);
    EXPECT_THAT(rpc.error_message(), HasSubstr("not finite"));
  }

  // The server is still up and answers a good request, the largest allowed.
  PredictResponse response;
  const grpc::Status rpc = server_client.Predict(MakeRequest(*test_set_, 0, 8), &response);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(response.predictions_size(), 8);
  EXPECT_TRUE(server->process->Running());
}

TEST_F(IntegrationTest, LateServerCatchesUpToTheIdenticalModel) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  Client trainer_client(trainer->port);
  absl::StatusOr<StatusResponse> trainer_status = WaitUntilTrainerDone(trainer_client);
  ASSERT_TRUE(trainer_status.ok()) << trainer_status.status();
  ASSERT_GT(trainer_status->version(), 1u);

  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  Client server_client(server->port);
  absl::StatusOr<StatusResponse> server_status =
      WaitUntilServerHolds(server_client, *trainer_status);
  ASSERT_TRUE(server_status.ok()) << server_status.status();
  EXPECT_EQ(server_status->checksum(), trainer_status->trainer_checksum());
  // One snapshot of the latest version, not the history.
  EXPECT_EQ(server_status->updates_applied(), 1u);
}

TEST_F(IntegrationTest, ServerOutlivesItsTrainerAndFollowsTheRestartedOne) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  Client server_client(server->port);
  absl::StatusOr<StatusResponse> first;
  {
    Client trainer_client(trainer->port);
    first = WaitUntilTrainerDone(trainer_client);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE(WaitUntilServerHolds(server_client, *first).ok());
  }

  trainer->process->Kill();
  absl::StatusOr<StatusResponse> orphaned = WaitForStatus(
      server_client, "server noticing its trainer is gone",
      [](const StatusResponse& s) { return s.phase() == SERVING_DISCONNECTED; });
  ASSERT_TRUE(orphaned.ok()) << orphaned.status();
  EXPECT_EQ(orphaned->version(), first->version());
  EXPECT_EQ(orphaned->checksum(), first->checksum());
  PredictResponse response;
  const grpc::Status rpc = server_client.Predict(MakeRequest(*test_set_, 0, 4), &response);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(response.version(), first->version());

  // A new run on the same port, with other weights.
  Flags flags = TrainerFlags();
  flags["listen"] = trainer->address();
  flags["seed"] = "2";
  absl::StatusOr<Daemon> restarted = StartTrainer(flags);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ(restarted->port, trainer->port);
  Client restarted_client(restarted->port);
  absl::StatusOr<StatusResponse> second = WaitUntilTrainerDone(restarted_client);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->checksum(), first->checksum());
  absl::StatusOr<StatusResponse> server_status =
      WaitUntilServerHolds(server_client, *second);
  ASSERT_TRUE(server_status.ok()) << server_status.status();
  EXPECT_EQ(server_status->checksum(), second->trainer_checksum());
  EXPECT_EQ(server_status->phase(), SERVING);
}

// kill -9 of the trainer at several points of a stream, with two servers
// following and a --state_dir: each restart continues the same run from
// its checkpoint and update log; no server's version ever goes backwards,
// the prequential counters carry on, and all end bit-identical.
TEST_F(IntegrationTest, TrainerKilledMidStreamContinuesItsRunEachTime) {
  Flags flags = TrainerFlags();
  flags["state_dir"] = TestTmpDir() + "/killed_trainer_state";
  flags["checkpoint_every_s"] = "0.3";
  flags["replay_rate"] = "400";  // the 1500 streamed examples take ~4 s
  absl::StatusOr<Daemon> trainer = StartTrainer(flags);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  flags["listen"] = trainer->address();
  std::vector<Daemon> servers;
  std::vector<std::unique_ptr<Client>> server_clients;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
    ASSERT_TRUE(server.ok()) << server.status();
    servers.push_back(*server);
    server_clients.push_back(std::make_unique<Client>(server->port));
  }
  // Every version each server reports, in order: never decreasing.
  std::vector<uint64_t> last_seen(servers.size(), 0);
  auto check_servers = [&] {
    for (size_t i = 0; i < servers.size(); ++i) {
      absl::StatusOr<StatusResponse> status = server_clients[i]->GetStatus();
      ASSERT_TRUE(status.ok()) << status.status();
      ASSERT_GE(status->version(), last_seen[i]) << "server " << i << " went backwards";
      last_seen[i] = status->version();
    }
  };

  // Kill points: after this many streamed examples, in one run each.
  for (int64_t kill_after : {300, 700, 1100}) {
    Client trainer_client(trainer->port);
    absl::StatusOr<StatusResponse> before = WaitForStatus(
        trainer_client, absl::StrCat(kill_after, " streamed examples"),
        [&](const StatusResponse& s) {
          check_servers();
          return s.examples_seen() >= static_cast<uint64_t>(kill_after);
        });
    ASSERT_TRUE(before.ok()) << before.status();
    trainer->process->Kill();
    check_servers();

    absl::StatusOr<Daemon> restarted = StartTrainer(flags);
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    trainer = restarted;
    Client restarted_client(trainer->port);
    absl::StatusOr<StatusResponse> resumed = restarted_client.GetStatus();
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    // It continues: versions are at least what any server got (each was
    // logged before it was published), and the stream and its prequential
    // counters are where a checkpoint left them, not back at zero.
    for (size_t i = 0; i < servers.size(); ++i) {
      EXPECT_GE(resumed->version(), last_seen[i]) << "after the kill at " << kill_after;
    }
    EXPECT_GT(resumed->examples_seen(), 0u);
    EXPECT_LE(resumed->examples_seen(), before->examples_seen() + 64);
    EXPECT_GE(resumed->examples_trained(), 1000u);
    check_servers();
  }

  Client trainer_client(trainer->port);
  absl::StatusOr<StatusResponse> done = WaitForStatus(
      trainer_client, "end of the stream", [&](const StatusResponse& s) {
        check_servers();
        return s.phase() == DONE;
      });
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->examples_seen(), static_cast<uint64_t>(kStreamExamples));
  EXPECT_EQ(done->checksum(), done->trainer_checksum());
  EXPECT_GT(done->prequential_accuracy(), 0.2);
  for (size_t i = 0; i < servers.size(); ++i) {
    absl::StatusOr<StatusResponse> held = WaitUntilServerHolds(*server_clients[i], *done);
    ASSERT_TRUE(held.ok()) << "server " << i << ": " << held.status();
    EXPECT_GE(held->version(), last_seen[i]);
  }
}

TEST_F(IntegrationTest, DaemonsGivenAPortInUseExitWithOneLine) {
  // A server whose trainer never answers still listens.
  absl::StatusOr<Daemon> holder = StartServer(ServerFlags("127.0.0.1:1"));
  ASSERT_TRUE(holder.ok()) << holder.status();

  Flags server_flags = ServerFlags("127.0.0.1:1");
  server_flags["listen"] = holder->address();
  Flags trainer_flags = TrainerFlags();
  trainer_flags["listen"] = holder->address();
  for (ChildProcess* child :
       {StartProcess("server-clash", "server/server", server_flags),
        StartProcess("trainer-clash", "trainer/trainer", trainer_flags)}) {
    ASSERT_NE(child, nullptr);
    SCOPED_TRACE(child->name());
    const std::optional<int> code = child->WaitForExitCode(kStartDeadline);
    ASSERT_TRUE(code.has_value()) << "still running, or killed by a signal";
    EXPECT_NE(*code, 0);
    const std::vector<std::string> lines = NonEmptyLines(child->Stderr());
    ASSERT_EQ(lines.size(), 1u) << child->Stderr();
    EXPECT_THAT(lines[0], HasSubstr(holder->address()));
  }
  EXPECT_TRUE(holder->process->Running());
}

TEST_F(IntegrationTest, TrainerWithAMissingDataDirExitsWithAClearLine) {
  Flags flags = TrainerFlags();
  const std::string missing = TestTmpDir() + "/no-such-folder";
  flags["data_dir"] = missing;
  ChildProcess* trainer = StartProcess("trainer-no-data", "trainer/trainer", flags);
  ASSERT_NE(trainer, nullptr);
  const std::optional<int> code = trainer->WaitForExitCode(kStartDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::vector<std::string> lines = NonEmptyLines(trainer->Stderr());
  ASSERT_EQ(lines.size(), 1u) << trainer->Stderr();
  EXPECT_THAT(lines[0], StartsWith("trainer: "));
  EXPECT_THAT(lines[0], HasSubstr(missing));
}

TEST_F(IntegrationTest, TrainerWithAnUnknownSparsityExits) {
  Flags flags = TrainerFlags();
  flags["sparsity"] = "sparsest";
  ChildProcess* trainer = StartProcess("trainer-bad-sparsity", "trainer/trainer", flags);
  ASSERT_NE(trainer, nullptr);
  const std::optional<int> code = trainer->WaitForExitCode(kStartDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  const std::vector<std::string> lines = NonEmptyLines(trainer->Stderr());
  ASSERT_EQ(lines.size(), 1u) << trainer->Stderr();
  EXPECT_THAT(lines[0], HasSubstr("--sparsity"));
  EXPECT_THAT(lines[0], HasSubstr("sparsest"));
}

TEST_F(IntegrationTest, ContrailctlCompareSaysIdenticalForAServerThatCaughtUp) {
  absl::StatusOr<Daemon> trainer = StartTrainer(TrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();

  ChildProcess* compare = StartProcess(
      "contrailctl", "server/contrailctl",
      {{"trainer", trainer->address()},
       {"server", server->address()},
       {"wait_s", absl::StrCat(absl::ToInt64Seconds(kRunDeadline))}},
      {"compare"});
  ASSERT_NE(compare, nullptr);
  const std::optional<int> code =
      compare->WaitForExitCode(kRunDeadline + absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << "contrailctl compare did not finish";
  EXPECT_EQ(*code, 0) << compare->Stdout() << compare->Stderr();
  EXPECT_THAT(compare->Stdout(), HasSubstr("identical"));
  EXPECT_THAT(compare->Stdout(), Not(HasSubstr("DIFFERENT")));
}

TEST_F(IntegrationTest, TorchScriptModelIsTrainedAndServedIdentically) {
  // tests/make_torchscript_model.py wrote this file with Debian's
  // python3-torch; the server receives the module inside the snapshot.
  Flags flags = TrainerFlags();
  flags["model"] = Runfile("tests/tiny_cnn.pt");
  flags["stream_examples"] = "400";
  absl::StatusOr<Daemon> trainer = StartTrainer(flags);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  Client trainer_client(trainer->port);
  absl::StatusOr<StatusResponse> trainer_status = WaitUntilTrainerDone(trainer_client);
  ASSERT_TRUE(trainer_status.ok()) << trainer_status.status();
  EXPECT_EQ(trainer_status->spec().architecture(), "torchscript:tiny_cnn.pt");
  bool has_buffer = false;
  for (const TensorSpec& t : trainer_status->spec().tensors()) has_buffer |= t.is_buffer();
  EXPECT_TRUE(has_buffer) << "batch-norm statistics travel as buffers";
  Client server_client(server->port);
  absl::StatusOr<StatusResponse> server_status =
      WaitUntilServerHolds(server_client, *trainer_status);
  ASSERT_TRUE(server_status.ok()) << server_status.status();
  EXPECT_EQ(server_status->checksum(), trainer_status->trainer_checksum());

  // The trainer's model, as a subscriber holding nothing receives it, must
  // predict exactly what the server answers.
  auto channel = grpc::CreateChannel(trainer->address(), grpc::InsecureChannelCredentials());
  std::unique_ptr<UpdateService::Stub> stub = UpdateService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::ClientReader<Update>> reader =
      stub->SubscribeUpdates(&context, SubscribeRequest());
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  context.TryCancel();
  ASSERT_TRUE(snapshot.snapshot());
  EXPECT_EQ(snapshot.version(), trainer_status->version());
  std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options{}).value();
  LiveModel& local = *live;
  ASSERT_TRUE(local.Apply(snapshot).ok());
  const PredictRequest request = MakeRequest(*test_set_, 0, 50);
  PredictResponse served;
  ASSERT_TRUE(server_client.Predict(request, &served).ok());
  absl::StatusOr<LiveModel::Predictions> expected =
      local.Predict(request.inputs().shape(), request.inputs().values());
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(served.predictions_size(), 50);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(served.predictions(i).label(), expected->labels[i]) << i;
    for (int c = 0; c < 10; ++c) {
      EXPECT_EQ(served.predictions(i).scores(c), expected->probabilities[i * 10 + c])
          << "example " << i << " class " << c;
    }
  }
}

TEST_F(IntegrationTest, LossyAndBudgetedUpdatesEndBitIdenticalOnceTheStreamEnds) {
  // fp16 differences from a sparse trainer, and bf16 differences within a
  // 1 % budget from a dense one: rounding errors and held-back entries stay
  // in trainer - mirror and go out when the stream ends.
  const std::vector<Flags> variants = {
      {{"update_values", "fp16"}},
      {{"update_values", "bf16"}, {"sparsity", "none"}, {"deploy_ratio", "0.01"}},
  };
  for (const Flags& variant : variants) {
    SCOPED_TRACE(variant.begin()->second);
    Flags flags = TrainerFlags();
    flags["stream_examples"] = "400";
    for (const auto& [flag, value] : variant) flags[flag] = value;
    absl::StatusOr<Daemon> trainer = StartTrainer(flags);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    absl::StatusOr<Daemon> server = StartServer(ServerFlags(trainer->address()));
    ASSERT_TRUE(server.ok()) << server.status();
    Client trainer_client(trainer->port);
    absl::StatusOr<StatusResponse> trainer_status = WaitUntilTrainerDone(trainer_client);
    ASSERT_TRUE(trainer_status.ok()) << trainer_status.status();
    EXPECT_EQ(trainer_status->checksum(), trainer_status->trainer_checksum())
        << "the mirror converged to the trainer";
    Client server_client(server->port);
    absl::StatusOr<StatusResponse> server_status =
        WaitUntilServerHolds(server_client, *trainer_status);
    ASSERT_TRUE(server_status.ok()) << server_status.status();
    EXPECT_EQ(server_status->checksum(), trainer_status->trainer_checksum());
    EXPECT_EQ(server_status->resyncs(), 0u);
  }
}

}  // namespace
}  // namespace contrail
