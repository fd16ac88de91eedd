// Relay fan-out end to end: the real trainer, two servers run with --relay
// that follow it, and four servers that follow the relays (two each), as
// child processes on 127.0.0.1. Every daemon must end with the trainer's
// version and model checksum, also when a relay restarts mid-stream.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"

namespace contrail {
namespace {

using test::DaemonCluster;
using test::DaemonFlags;
using test::RunningDaemon;
using test::WaitForDaemonStatus;

// From start to the end of the stream, and for the tree to settle.
constexpr absl::Duration kRunDeadline = absl::Seconds(90);

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = test::TestTmpDir() + "/relay-fashion-mnist";
    const absl::Status written = test::WriteSyntheticFashionMnist(
        data_dir_, /*train_count=*/2500, /*test_count=*/100, /*seed=*/5);
    ASSERT_TRUE(written.ok()) << written;
  }

  void TearDown() override {
    cluster_.StopAll();
    if (HasFailure()) std::fprintf(stderr, "%s", cluster_.Logs().c_str());
  }

  // 1000 examples of initial training, then 1500 streamed at `rate` per
  // second, top-k at 1 %.
  absl::StatusOr<RunningDaemon> StartTrainer(int rate) {
    return cluster_.Start("trainer", "trainer/trainer",
                          {{"listen", "127.0.0.1:0"},
                           {"data_dir", data_dir_},
                           {"model", "lenet5"},
                           {"initial_examples", "1000"},
                           {"initial_epochs", "1"},
                           {"stream_examples", "1500"},
                           {"trigger_size", "8"},
                           {"batch_size", "64"},
                           {"sparsity", "topk"},
                           {"ratio", "0.01"},
                           {"replay_rate", absl::StrCat(rate)},
                           {"threads", "1"}});
  }

  // A server following `upstream` (a trainer or a relay); a relay itself
  // when `relay`. `listen` picks its address.
  absl::StatusOr<RunningDaemon> StartServer(const RunningDaemon& upstream, bool relay,
                                            const std::string& listen = "127.0.0.1:0") {
    DaemonFlags flags = {{"listen", listen},
                         {"trainer", upstream.address()},
                         {"threads", "1"}};
    if (relay) flags["relay"] = "true";
    return cluster_.Start(relay ? "relay" : "server", "server/server", flags);
  }

  // Waits until the trainer finished its stream; its final status.
  static absl::StatusOr<StatusResponse> WaitUntilDone(const RunningDaemon& trainer) {
    return WaitForDaemonStatus(
        trainer.port, "end of the stream",
        [](const StatusResponse& s) { return s.phase() == DONE || s.phase() == FAILED; },
        kRunDeadline);
  }

  // Expects `daemon` to come to hold the trainer's final model, bit for bit.
  static void ExpectHolds(const RunningDaemon& daemon, const StatusResponse& trainer,
                          const std::string& what) {
    const absl::StatusOr<StatusResponse> status = WaitForDaemonStatus(
        daemon.port, what + " holding the trainer's model",
        [&trainer](const StatusResponse& s) {
          return s.version() == trainer.version() && s.checksum() == trainer.checksum();
        },
        kRunDeadline);
    ASSERT_TRUE(status.ok()) << status.status();
  }

  std::string data_dir_;
  DaemonCluster cluster_{test::TestTmpDir()};
};

TEST_F(RelayTest, TreeOfRelaysEndsBitIdenticalToTheTrainer) {
  const absl::StatusOr<RunningDaemon> trainer = StartTrainer(/*rate=*/150);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::vector<RunningDaemon> relays;
  std::vector<RunningDaemon> servers;
  for (int r = 0; r < 2; ++r) {
    absl::StatusOr<RunningDaemon> relay = StartServer(*trainer, /*relay=*/true);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relays.push_back(*relay);
    for (int s = 0; s < 2; ++s) {
      absl::StatusOr<RunningDaemon> server = StartServer(*relay, /*relay=*/false);
      ASSERT_TRUE(server.ok()) << server.status();
      servers.push_back(*server);
    }
  }
  const absl::StatusOr<StatusResponse> done = WaitUntilDone(*trainer);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->phase(), DONE) << done->ShortDebugString();
  ASSERT_GT(done->version(), 10u);
  for (size_t r = 0; r < relays.size(); ++r) {
    ExpectHolds(relays[r], *done, absl::StrCat("relay ", r));
  }
  uint64_t deltas = 0;
  for (size_t s = 0; s < servers.size(); ++s) {
    ExpectHolds(servers[s], *done, absl::StrCat("server ", s));
    const absl::StatusOr<StatusResponse> status = test::GetDaemonStatus(servers[s].port);
    ASSERT_TRUE(status.ok()) << status.status();
    deltas += status->updates_applied() - 1;  // all but the first snapshot
  }
  // Updates, not only final snapshots, came down the tree (a server that
  // started after the stream ended on a loaded machine gets one snapshot).
  EXPECT_GT(deltas, 0u);
  // Only the relays follow the trainer; each relay serves its two servers.
  const absl::StatusOr<StatusResponse> trainer_status = test::GetDaemonStatus(trainer->port);
  ASSERT_TRUE(trainer_status.ok()) << trainer_status.status();
  EXPECT_EQ(trainer_status->subscribers(), 2u);
  for (const RunningDaemon& relay : relays) {
    const absl::StatusOr<StatusResponse> status = test::GetDaemonStatus(relay.port);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->subscribers(), 2u);
    EXPECT_GT(status->bytes_sent(), 0u);
  }
  // A plain server does not serve UpdateService.
  const absl::StatusOr<StatusResponse> leaf = test::GetDaemonStatus(servers[0].port);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_EQ(leaf->subscribers(), 0u);
}

TEST_F(RelayTest, ServersBelowARestartedRelayEndIdentical) {
  const absl::StatusOr<RunningDaemon> trainer = StartTrainer(/*rate=*/250);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<RunningDaemon> relay = StartServer(*trainer, /*relay=*/true);
  ASSERT_TRUE(relay.ok()) << relay.status();
  std::vector<RunningDaemon> servers;
  for (int s = 0; s < 2; ++s) {
    absl::StatusOr<RunningDaemon> server = StartServer(*relay, /*relay=*/false);
    ASSERT_TRUE(server.ok()) << server.status();
    servers.push_back(*server);
  }
  // Mid-stream: the servers below follow the relay.
  const absl::StatusOr<StatusResponse> following = WaitForDaemonStatus(
      servers[1].port, "server past version 5",
      [](const StatusResponse& s) { return s.version() > 5; }, kRunDeadline);
  ASSERT_TRUE(following.ok()) << following.status();
  const absl::StatusOr<StatusResponse> trainer_before = test::GetDaemonStatus(trainer->port);
  ASSERT_TRUE(trainer_before.ok()) << trainer_before.status();
  ASSERT_NE(trainer_before->phase(), DONE) << "the stream ended before the restart";

  relay->process->Kill();
  const absl::StatusOr<RunningDaemon> restarted =
      StartServer(*trainer, /*relay=*/true, relay->address());
  ASSERT_TRUE(restarted.ok()) << restarted.status();

  const absl::StatusOr<StatusResponse> done = WaitUntilDone(*trainer);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->phase(), DONE) << done->ShortDebugString();
  ExpectHolds(*restarted, *done, "restarted relay");
  for (size_t s = 0; s < servers.size(); ++s) {
    ExpectHolds(servers[s], *done, absl::StrCat("server ", s));
    const absl::StatusOr<StatusResponse> status = test::GetDaemonStatus(servers[s].port);
    ASSERT_TRUE(status.ok()) << status.status();
    // The version never went backwards and the link was re-established.
    EXPECT_TRUE(status->connected());
  }
}

}  // namespace
}  // namespace contrail
