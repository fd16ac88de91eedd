// Runs contrail's daemons for end-to-end tests: each binary (a runfile
// path) starts as a ChildProcess with --flag=value arguments and
// --port_file, and StartDaemon() waits until it listens. The destructor
// stops and reaps every child; Logs() gathers their output for a failing
// test's log.
//
// Not thread-safe.
#ifndef CONTRAIL_TESTS_TEST_UTIL_DAEMON_RUNNER_H_
#define CONTRAIL_TESTS_TEST_UTIL_DAEMON_RUNNER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/test_util/child_process.h"

namespace contrail {
namespace test {

// --flag=value arguments, by flag name.
using Flags = std::map<std::string, std::string>;

// A started daemon and the port it listens on.
struct Daemon {
  ChildProcess* process = nullptr;
  int port = 0;
  std::string address() const;
};

// A loopback port that was free a moment ago (bound to 0 and closed), for
// a daemon flag that has no port file; 0 when none could be bound.
int PickFreePort();

class DaemonRunner {
 public:
  // From exec to the port file: loading LibTorch and reading the data.
  static constexpr absl::Duration kStartDeadline = absl::Seconds(30);

  DaemonRunner() = default;
  ~DaemonRunner() { StopAll(); }
  DaemonRunner(const DaemonRunner&) = delete;
  DaemonRunner& operator=(const DaemonRunner&) = delete;

  // Starts `binary` (a runfile path, e.g. "server/server") with `flags` and
  // `positional` arguments first; its logs are named after `name` and a
  // counter in TestTmpDir(). Null when fork fails.
  ChildProcess* StartProcess(const std::string& name, const std::string& binary,
                             const Flags& flags,
                             const std::vector<std::string>& positional = {});

  // StartProcess() with --port_file, then waits until the port is written.
  // INTERNAL with the child's stderr when it exits first, DEADLINE_EXCEEDED
  // after kStartDeadline.
  absl::StatusOr<Daemon> StartDaemon(const std::string& name, const std::string& binary,
                                     Flags flags);

  // Stops every child (SIGTERM, then SIGKILL after a grace period).
  void StopAll();

  // Every child's stdout and stderr, labelled.
  std::string Logs() const;

 private:
  std::vector<std::unique_ptr<ChildProcess>> children_;
  int started_ = 0;
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_DAEMON_RUNNER_H_
