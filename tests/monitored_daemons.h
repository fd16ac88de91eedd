// A test fixture that runs the real trainer and server binaries with
// --metrics_listen=127.0.0.1:0 on synthetic Fashion-MNIST-shaped data, for
// the tests of what they serve over HTTP (metrics_integration_test,
// status_page_test). Ports are picked by the daemons and read back from
// --port_file and --metrics_port_file; every wait is a poll with a
// deadline; TearDown() stops and reaps every child and, on failure, copies
// their logs into the test log.
#ifndef CONTRAIL_TESTS_MONITORED_DAEMONS_H_
#define CONTRAIL_TESTS_MONITORED_DAEMONS_H_

#include <grpcpp/grpcpp.h>

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
#include "gtest/gtest.h"
#include "httplib.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"

namespace contrail {
namespace test {

inline constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
inline constexpr absl::Duration kStartDeadline = absl::Seconds(30);
inline constexpr absl::Duration kRunDeadline = absl::Seconds(60);
inline constexpr absl::Duration kRpcDeadline = absl::Seconds(10);

using Flags = std::map<std::string, std::string>;

// A started daemon: its gRPC port and its metrics port.
using MonitoredDaemon = RunningDaemon;

class MonitoredDaemonsTest : public ::testing::Test {
 protected:
  static constexpr int64_t kTrainCount = 3000;
  static constexpr int64_t kStreamExamples = 1500;

  static void SetUpTestSuite() {
    data_dir_ = new std::string(TestTmpDir() + "/fashion-mnist");
    const absl::Status written =
        WriteSyntheticFashionMnist(*data_dir_, kTrainCount, /*test_count=*/100, /*seed=*/5);
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

  // 1000 examples of initial training, then a stream of 1500 at 500 a
  // second (about 3 s), top-k at 1 %.
  static Flags TrainerFlags() {
    return {{"listen", "127.0.0.1:0"},   {"metrics_listen", "127.0.0.1:0"},
            {"data_dir", *data_dir_},     {"model", "lenet5"},
            {"initial_examples", "1000"}, {"initial_epochs", "1"},
            {"stream_examples", absl::StrCat(kStreamExamples)},
            {"trigger_size", "8"},        {"batch_size", "64"},
            {"sparsity", "topk"},         {"ratio", "0.01"},
            {"lr", "0.003"},              {"replay_rate", "500"},
            {"threads", "1"}};
  }

  static Flags ServerFlags(const std::string& trainer_address) {
    return {{"listen", "127.0.0.1:0"},
            {"metrics_listen", "127.0.0.1:0"},
            {"trainer", trainer_address},
            {"name", "server-a"},
            {"threads", "1"}};
  }

  // Starts a daemon and waits until both its ports are written.
  absl::StatusOr<MonitoredDaemon> StartDaemon(const std::string& name,
                                              const std::string& binary, const Flags& flags) {
    return cluster_.Start(name, binary, flags, kStartDeadline);
  }

  // Starts `binary` (a runfile path) with `positional` arguments.
  ChildProcess* StartProcess(const std::string& name, const std::string& binary,
                             const std::vector<std::string>& positional) {
    return cluster_.StartProcess(name, binary, {}, positional);
  }

  // Starts a trainer and a server following it, and waits until the
  // stream ended and the server holds the trainer's model.
  void StartAndFinishStream(MonitoredDaemon* trainer, MonitoredDaemon* server,
                            StatusResponse* trainer_status, StatusResponse* server_status) {
    absl::StatusOr<MonitoredDaemon> started_trainer =
        StartDaemon("trainer", "trainer/trainer", TrainerFlags());
    ASSERT_TRUE(started_trainer.ok()) << started_trainer.status();
    *trainer = *started_trainer;
    absl::StatusOr<MonitoredDaemon> started_server =
        StartDaemon("server", "server/server", ServerFlags(trainer->address()));
    ASSERT_TRUE(started_server.ok()) << started_server.status();
    *server = *started_server;
    absl::StatusOr<StatusResponse> done = WaitForDaemonStatus(
        trainer->port, "end of the stream",
        [](const StatusResponse& s) { return s.phase() == DONE; }, kRunDeadline);
    ASSERT_TRUE(done.ok()) << done.status();
    *trainer_status = *done;
    absl::StatusOr<StatusResponse> holds = WaitForDaemonStatus(
        server->port, "server holding the trainer's model",
        [&done](const StatusResponse& s) {
          return s.version() == done->version() && s.checksum() == done->checksum();
        },
        kRunDeadline);
    ASSERT_TRUE(holds.ok()) << holds.status();
    *server_status = *holds;
  }

  // GET http://127.0.0.1:`port``path`; the body, or an error.
  static absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5);
    client.set_read_timeout(10);
    httplib::Result result = client.Get(path.c_str());
    if (!result) {
      return absl::UnavailableError(absl::StrCat("GET ", path, " on port ", port, ": ",
                                                 httplib::to_string(result.error())));
    }
    if (result->status != 200) {
      return absl::UnavailableError(
          absl::StrCat("GET ", path, ": HTTP ", result->status, ": ", result->body));
    }
    return result->body;
  }

  static inline std::string* data_dir_ = nullptr;
  DaemonCluster cluster_{TestTmpDir()};
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_MONITORED_DAEMONS_H_
