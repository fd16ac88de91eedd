// What relays buy: bytes the trainer sends and freshness by tree depth.
//
// Runs the real trainer and servers (child processes on 127.0.0.1) twice on
// the same synthetic stream: four servers following the trainer directly,
// then two relays following it with two servers each. It prints the bytes
// the trainer sent to its subscribers (GetStatus bytes_sent, less what the
// probes below received), and the freshness of updates (receive time minus
// Update.publish_time_us) seen by a probe subscriber at depth 1 (following
// the trainer, as a server in the star or a relay does) and at depth 2
// (following a relay, as the servers below it do), p50 and p99.
//
//   bazel build //tests:relay_bench && bazel-bin/tests/relay_bench
//
// Flags: --stream_examples, --replay_rate, --model.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"

ABSL_FLAG(int64_t, stream_examples, 3000, "examples streamed after the initial 1000");
ABSL_FLAG(double, replay_rate, 500, "streamed examples per second");
ABSL_FLAG(std::string, model, "lenet5", "the trainer's model");

namespace contrail {
namespace {

using test::DaemonCluster;
using test::RunningDaemon;

constexpr absl::Duration kDeadline = absl::Seconds(300);

// A subscriber that only listens: it records, for every update after its
// first snapshot, how long after its publication it arrived.
class FreshnessProbe {
 public:
  explicit FreshnessProbe(const RunningDaemon& upstream) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    stub_ = UpdateService::NewStub(grpc::CreateCustomChannel(
        upstream.address(), grpc::InsecureChannelCredentials(), arguments));
    thread_ = std::thread([this] { Run(); });
  }
  ~FreshnessProbe() { Stop(); }

  void Stop() {
    context_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }

  // Microseconds, sorted.
  std::vector<int64_t> Freshness() {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> sorted = freshness_us_;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  uint64_t bytes() const { return bytes_.load(); }

 private:
  void Run() {
    SubscribeRequest request;
    request.set_subscriber("freshness-probe");
    std::unique_ptr<grpc::ClientReader<Update>> reader =
        stub_->SubscribeUpdates(&context_, request);
    Update update;
    while (reader->Read(&update)) {
      const int64_t now = absl::ToUnixMicros(absl::Now());
      bytes_ += update.ByteSizeLong();
      if (update.snapshot()) continue;
      absl::MutexLock lock(&mu_);
      freshness_us_.push_back(now - static_cast<int64_t>(update.publish_time_us()));
    }
    reader->Finish();
  }

  std::unique_ptr<UpdateService::Stub> stub_;
  grpc::ClientContext context_;
  std::thread thread_;
  std::atomic<uint64_t> bytes_{0};
  absl::Mutex mu_;
  std::vector<int64_t> freshness_us_ ABSL_GUARDED_BY(mu_);
};

double Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i] / 1000.0;
}

void PrintFreshness(const std::string& what, FreshnessProbe& probe) {
  const std::vector<int64_t> f = probe.Freshness();
  std::printf("  freshness %s: %zu updates, p50 %.2f ms, p99 %.2f ms\n", what.c_str(), f.size(),
              Percentile(f, 0.50), Percentile(f, 0.99));
}

class Bench {
 public:
  explicit Bench(std::string data_dir) : data_dir_(std::move(data_dir)) {}

  // One run: `relays` relays with `per_relay` servers each, or, with no
  // relays, `per_relay` servers on the trainer.
  absl::Status Run(int relays, int per_relay) {
    DaemonCluster cluster(test::TestTmpDir());
    absl::StatusOr<RunningDaemon> trainer = cluster.Start(
        "trainer", "trainer/trainer",
        {{"listen", "127.0.0.1:0"},
         {"data_dir", data_dir_},
         {"model", absl::GetFlag(FLAGS_model)},
         {"initial_examples", "1000"},
         {"initial_epochs", "1"},
         {"stream_examples", absl::StrCat(absl::GetFlag(FLAGS_stream_examples))},
         {"trigger_size", "8"},
         {"batch_size", "64"},
         {"sparsity", "topk"},
         {"ratio", "0.01"},
         {"replay_rate", absl::StrCat(absl::GetFlag(FLAGS_replay_rate))},
         {"threads", "1"}},
        absl::Seconds(120));
    if (!trainer.ok()) return trainer.status();
    std::vector<RunningDaemon> upstreams;
    for (int r = 0; r < relays; ++r) {
      absl::StatusOr<RunningDaemon> relay =
          cluster.Start("relay", "server/server",
                        {{"listen", "127.0.0.1:0"},
                         {"trainer", trainer->address()},
                         {"relay", "true"},
                         {"threads", "1"}});
      if (!relay.ok()) return relay.status();
      upstreams.push_back(*relay);
    }
    if (relays == 0) upstreams.push_back(*trainer);
    std::vector<RunningDaemon> servers;
    for (const RunningDaemon& upstream : upstreams) {
      for (int s = 0; s < per_relay; ++s) {
        absl::StatusOr<RunningDaemon> server = cluster.Start(
            "server", "server/server",
            {{"listen", "127.0.0.1:0"}, {"trainer", upstream.address()}, {"threads", "1"}});
        if (!server.ok()) return server.status();
        servers.push_back(*server);
      }
    }
    FreshnessProbe depth1(*trainer);
    std::unique_ptr<FreshnessProbe> depth2;
    if (relays > 0) depth2 = std::make_unique<FreshnessProbe>(upstreams[0]);
    absl::StatusOr<StatusResponse> done = test::WaitForDaemonStatus(
        trainer->port, "end of the stream",
        [](const StatusResponse& s) { return s.phase() == DONE || s.phase() == FAILED; },
        kDeadline);
    if (!done.ok()) return done.status();
    for (const RunningDaemon& server : servers) {
      absl::StatusOr<StatusResponse> held = test::WaitForDaemonStatus(
          server.port, "the trainer's model",
          [&](const StatusResponse& s) {
            return s.version() == done->version() && s.checksum() == done->checksum();
          },
          kDeadline);
      if (!held.ok()) return held.status();
    }
    depth1.Stop();
    if (depth2 != nullptr) depth2->Stop();
    absl::StatusOr<StatusResponse> sent = test::GetDaemonStatus(trainer->port);
    if (!sent.ok()) return sent.status();
    const uint64_t egress = sent->bytes_sent() - depth1.bytes();
    std::printf("%s: %zu servers, %llu versions, all bit-identical to the trainer\n",
                relays == 0 ? "star" : absl::StrCat(relays, " relays").c_str(), servers.size(),
                static_cast<unsigned long long>(done->version()));
    std::printf("  trainer egress to its %d subscribers: %llu bytes (%.1f KiB)\n",
                relays == 0 ? per_relay : relays, static_cast<unsigned long long>(egress),
                egress / 1024.0);
    PrintFreshness("depth 1 (trainer's subscribers)", depth1);
    if (depth2 != nullptr) PrintFreshness("depth 2 (relay's subscribers)", *depth2);
    std::fflush(stdout);
    cluster.StopAll();
    return absl::OkStatus();
  }

 private:
  const std::string data_dir_;
};

}  // namespace
}  // namespace contrail

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // The daemons are this binary's runfiles.
  setenv("TEST_SRCDIR", absl::StrCat(argv[0], ".runfiles").c_str(), /*overwrite=*/0);
  const std::string data_dir = contrail::test::TestTmpDir() + "/relay-bench-data";
  const absl::Status written = contrail::test::WriteSyntheticFashionMnist(
      data_dir, 1000 + absl::GetFlag(FLAGS_stream_examples), 100, /*seed=*/3);
  if (!written.ok()) {
    std::fprintf(stderr, "%s\n", written.ToString().c_str());
    return 1;
  }
  contrail::Bench bench(data_dir);
  for (const auto& [relays, per] : {std::pair<int, int>{0, 4}, {2, 2}}) {
    const absl::Status ran = bench.Run(relays, per);
    if (!ran.ok()) {
      std::fprintf(stderr, "%s\n", ran.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
