// A set of contrail daemons (the real trainer and server binaries) run as
// child processes on 127.0.0.1 for multi-process tests and benchmarks: each
// listens on a port it picks (--listen=127.0.0.1:0) and reports in
// --port_file (and --metrics_port_file when it has --metrics_listen), which
// Start() waits for. Other binaries (contrailctl) run through StartProcess().
// The cluster stops and reaps every child when destroyed, and can dump
// their logs.
//
// Not thread-safe; owned by the test's thread.
#ifndef CONTRAIL_TESTS_TEST_UTIL_DAEMON_CLUSTER_H_
#define CONTRAIL_TESTS_TEST_UTIL_DAEMON_CLUSTER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/child_process.h"

namespace contrail {
namespace test {

// Flag name (without "--") to value.
using DaemonFlags = std::map<std::string, std::string>;

// One started daemon: its process and the ports it listens on.
struct RunningDaemon {
  ChildProcess* process = nullptr;
  int port = 0;
  int metrics_port = 0;  // with --metrics_listen only
  std::string address() const;
};

// GetStatus of the daemon on `port`, with a deadline.
absl::StatusOr<StatusResponse> GetDaemonStatus(int port,
                                               absl::Duration deadline = absl::Seconds(10));

// Polls GetStatus of the daemon on `port` every 20 ms until `done` holds
// (its last status), DEADLINE_EXCEEDED quoting the last status after
// `timeout`, or the RPC's error.
absl::StatusOr<StatusResponse> WaitForDaemonStatus(
    int port, const std::string& what, const std::function<bool(const StatusResponse&)>& done,
    absl::Duration timeout);

// A loopback port that was free a moment ago (bound to 0 and closed), for
// a daemon flag that has no port file; 0 when none could be bound.
int PickFreePort();

class DaemonCluster {
 public:
  // Logs and port files go under `dir`.
  explicit DaemonCluster(std::string dir) : dir_(std::move(dir)) {}
  // Stop()s every daemon.
  ~DaemonCluster() { StopAll(); }
  DaemonCluster(const DaemonCluster&) = delete;
  DaemonCluster& operator=(const DaemonCluster&) = delete;

  // Starts `binary` (a runfile path such as "server/server") with `flags`
  // and --port_file (and --metrics_port_file with --metrics_listen), and
  // waits up to `timeout` until it listens. INTERNAL with its stderr when
  // it exits first.
  absl::StatusOr<RunningDaemon> Start(const std::string& name, const std::string& binary,
                                      DaemonFlags flags,
                                      absl::Duration timeout = absl::Seconds(30));

  // Starts `binary` (a runfile path, or an absolute path for a system
  // binary) with `positional` arguments, then `flags`; for commands such
  // as contrailctl, prometheus or chromium. Null when fork fails.
  ChildProcess* StartProcess(const std::string& name, const std::string& binary,
                             const DaemonFlags& flags,
                             const std::vector<std::string>& positional = {});

  // SIGCONT (in case a test froze it), then SIGTERM (then SIGKILL after
  // 5 s) to every daemon still running.
  void StopAll();
  // Every daemon's stdout and stderr, for a failed test's log.
  std::string Logs() const;

 private:
  const std::string dir_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_DAEMON_CLUSTER_H_
