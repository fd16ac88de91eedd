#include "tests/test_util/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/time/clock.h"

namespace contrail {
namespace test {

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::string TestTmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::string& name,
                                                  const std::string& binary,
                                                  const std::vector<std::string>& args,
                                                  const std::string& log_prefix) {
  auto child = std::unique_ptr<ChildProcess>(
      new ChildProcess(name, log_prefix + ".stdout", log_prefix + ".stderr"));
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls are allowed in a multi-threaded parent.
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return nullptr;
  if (pid == 0) {
    // Dies with the test, should the test itself be killed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int out = open(child->stdout_path_.c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = open(child->stderr_path_.c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || err < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(err, STDERR_FILENO) < 0) {
      _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  child->pid_ = pid;
  return child;
}

std::optional<int> ChildProcess::WaitForExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!status_.has_value()) {
    int status = 0;
    const pid_t reaped = waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_) {
      status_ = status;
      break;
    }
    if (reaped < 0 && errno != EINTR) {
      status_ = -1;  // not our child any more; nothing to reap
      break;
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return status_;
}

std::optional<int> ChildProcess::WaitForExitCode(absl::Duration timeout) {
  const std::optional<int> status = WaitForExit(timeout);
  if (!status.has_value() || !WIFEXITED(*status)) return std::nullopt;
  return WEXITSTATUS(*status);
}

void ChildProcess::Signal(int signal) {
  if (Running()) kill(pid_, signal);
}

void ChildProcess::Stop(absl::Duration grace) {
  Signal(SIGTERM);
  if (!WaitForExit(grace).has_value()) Kill();
}

void ChildProcess::Kill() {
  Signal(SIGKILL);
  WaitForExit(absl::InfiniteDuration());
}

std::string ChildProcess::Stdout() const { return ReadFileOrEmpty(stdout_path_); }
std::string ChildProcess::Stderr() const { return ReadFileOrEmpty(stderr_path_); }

}  // namespace test
}  // namespace contrail
