// The update path under network faults: a trainer and a server, in-process,
// with the project's fault-injecting TCP proxy between them. Delays, cut
// connections and corrupted bytes on the update stream must never leave the
// server with a model other than the trainer's at its version, nor move its
// version backwards; once the faults stop it ends bit-identical.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "server/server_daemon.h"
#include "tests/test_util/fault_proxy.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"
#include "trainer/trainer_daemon.h"

namespace contrail {
namespace {

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/fault_data";
    ASSERT_OK(test::WriteSyntheticFashionMnist(data_dir, /*train_count=*/1600,
                                               /*test_count=*/0, /*seed=*/4));
    TrainerDaemon::Options trainer;
    trainer.listen = "127.0.0.1:0";
    trainer.data_dir = data_dir;
    trainer.training.set_model("mlp");
    trainer.training.set_initial_examples(200);
    trainer.training.set_initial_epochs(1);
    trainer.training.set_stream_examples(1200);
    trainer.training.set_replay_rate(300);  // ~4 s of stream
    trainer.training.set_batch_size(32);
    trainer.training.set_ratio(0.01);
    absl::StatusOr<std::unique_ptr<TrainerDaemon>> created = TrainerDaemon::Create(trainer);
    ASSERT_OK(created);
    trainer_ = *std::move(created);
    ASSERT_OK(trainer_->Start());

    absl::StatusOr<std::unique_ptr<test::FaultProxy>> proxy =
        test::FaultProxy::Start(trainer_->port());
    ASSERT_OK(proxy);
    proxy_ = *std::move(proxy);

    ServerDaemon::Options server;
    server.listen = "127.0.0.1:0";
    server.trainer = proxy_->address();
    server.backoff.initial = absl::Milliseconds(50);
    server.backoff.max = absl::Milliseconds(200);
    absl::StatusOr<std::unique_ptr<ServerDaemon>> server_daemon = ServerDaemon::Create(server);
    ASSERT_OK(server_daemon);
    server_ = *std::move(server_daemon);
    ASSERT_OK(server_->Start());
    server_status_ = StatusService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    proxy_.reset();
    if (trainer_ != nullptr) trainer_->Shutdown();
  }

  // The server's status; fails the test when its version went backwards.
  StatusResponse ServerStatus() {
    StatusResponse status;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    EXPECT_TRUE(server_status_->GetStatus(&context, StatusRequest(), &status).ok());
    EXPECT_GE(status.version(), last_version_) << "the server's version went backwards";
    last_version_ = std::max(last_version_, status.version());
    return status;
  }

  // Polls the server for `duration`, checking its version at each poll.
  void Watch(absl::Duration duration) {
    const absl::Time end = absl::Now() + duration;
    while (absl::Now() < end) {
      ServerStatus();
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::unique_ptr<TrainerDaemon> trainer_;
  std::unique_ptr<test::FaultProxy> proxy_;
  std::unique_ptr<ServerDaemon> server_;
  std::unique_ptr<StatusService::Stub> server_status_;
  uint64_t last_version_ = 0;
};

TEST_F(FaultTest, DelaysCutsAndCorruptionNeverLeaveTheServerWrong) {
  ASSERT_TRUE(test::WaitUntil([&] { return ServerStatus().version() >= 2; },
                              absl::Seconds(60)));
  // A slow link.
  proxy_->SetDelay(absl::Milliseconds(30));
  Watch(absl::Milliseconds(500));
  proxy_->SetDelay(absl::ZeroDuration());
  // Corrupted bytes on the update stream: the server's checks reject what
  // they spoil (or gRPC's framing does), and it resubscribes.
  const int64_t connections_before_corruption = proxy_->connections();
  proxy_->CorruptNext(3);
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        // Rejected by its checksum (a resync on the same connection), or
        // by gRPC's framing (a new connection).
        return proxy_->corrupted() >= 1 &&
               (ServerStatus().resyncs() >= 1 ||
                proxy_->connections() > connections_before_corruption);
      },
      absl::Seconds(30)));
  // Cut connections, twice.
  const int64_t connections_before_cuts = proxy_->connections();
  proxy_->Cut();
  Watch(absl::Milliseconds(300));
  proxy_->Cut();
  // The server reconnects through the proxy each time.
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        ServerStatus();
        return proxy_->connections() >= connections_before_cuts + 2;
      },
      absl::Seconds(30)));

  ASSERT_OK(trainer_->trainer().WaitUntilFinished(absl::Seconds(120)));
  const uint64_t version = trainer_->publisher().version();
  const uint64_t checksum = trainer_->publisher().mirror_checksum();
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        const StatusResponse s = ServerStatus();
        return s.version() == version && s.checksum() == checksum;
      },
      absl::Seconds(60)))
      << "the server did not end with the trainer's model";
  EXPECT_GE(proxy_->connections(), 3);
  EXPECT_EQ(ServerStatus().phase(), SERVING);
}

// A half-open link: the proxy keeps the connection but passes nothing, as a
// dead peer behind a stateful firewall does. Keepalive pings notice within
// seconds; the server says it is disconnected, keeps serving, and follows
// again once the link carries traffic.
TEST_F(FaultTest, AHalfOpenLinkIsNoticedAndHealed) {
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        const StatusResponse s = ServerStatus();
        return s.connected() && s.version() >= 2;
      },
      absl::Seconds(60)));
  proxy_->SetBlackhole(true);
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(test::WaitUntil([&] { return !ServerStatus().connected(); },
                              absl::Seconds(20)))
      << "the server did not notice the dead link";
  const absl::Duration noticed = absl::Now() - cut;
  EXPECT_LT(noticed, absl::Seconds(10));
  std::printf("a half-open link was noticed in %.1f s\n", absl::ToDoubleSeconds(noticed));
  EXPECT_NE(ServerStatus().phase(), WAITING);  // still serving its last version
  proxy_->SetBlackhole(false);
  ASSERT_OK(trainer_->trainer().WaitUntilFinished(absl::Seconds(120)));
  const uint64_t version = trainer_->publisher().version();
  const uint64_t checksum = trainer_->publisher().mirror_checksum();
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        const StatusResponse s = ServerStatus();
        return s.connected() && s.version() == version && s.checksum() == checksum;
      },
      absl::Seconds(60)))
      << "the server did not follow again";
}

}  // namespace
}  // namespace contrail
