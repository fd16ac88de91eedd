// A child process for tests: a binary run with its stdout and stderr sent
// to files, killed (SIGKILL) and reaped by the destructor, and killed too
// should the test process itself die. The same shape as the one in
// tests/integration_test.cc, shared by the tests that start nats-server and
// the daemons.
//
// Not thread-safe.
#ifndef CONTRAIL_TESTS_TEST_UTIL_CHILD_PROCESS_H_
#define CONTRAIL_TESTS_TEST_UTIL_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace contrail {
namespace test {

class ChildProcess {
 public:
  // Starts `binary` (a path) with `args` (without argv[0]); its output
  // goes to `log_prefix` + ".stdout" / ".stderr". nullptr when fork fails.
  static std::unique_ptr<ChildProcess> Start(const std::string& name,
                                             const std::string& binary,
                                             const std::vector<std::string>& args,
                                             const std::string& log_prefix);

  ~ChildProcess() { Kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The wait status once the process has exited, waiting up to `timeout`;
  // nullopt while it runs.
  std::optional<int> WaitForExit(absl::Duration timeout);
  // The exit code once it has exited normally within `timeout`; nullopt
  // while it runs or when a signal killed it.
  std::optional<int> WaitForExitCode(absl::Duration timeout);
  bool Running() { return !WaitForExit(absl::ZeroDuration()).has_value(); }

  void Signal(int signal);
  // SIGTERM, then SIGKILL if it still runs after `grace`; reaps it.
  void Stop(absl::Duration grace);
  // SIGKILL, and reaps it.
  void Kill();

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  ChildProcess(std::string name, std::string stdout_path, std::string stderr_path)
      : name_(std::move(name)),
        stdout_path_(std::move(stdout_path)),
        stderr_path_(std::move(stderr_path)) {}

  const std::string name_;
  const std::string stdout_path_;
  const std::string stderr_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;  // set once reaped
};

// The whole file at `path`; empty when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// $TEST_TMPDIR, or /tmp outside Bazel.
std::string TestTmpDir();

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_CHILD_PROCESS_H_
