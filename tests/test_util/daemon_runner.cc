#include "tests/test_util/daemon_runner.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/test_util/runfiles.h"

namespace contrail {
namespace test {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

}  // namespace

int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

std::string Daemon::address() const { return absl::StrCat("127.0.0.1:", port); }

ChildProcess* DaemonRunner::StartProcess(const std::string& name, const std::string& binary,
                                         const Flags& flags,
                                         const std::vector<std::string>& positional) {
  std::vector<std::string> args = positional;
  for (const auto& [flag, value] : flags) args.push_back(absl::StrCat("--", flag, "=", value));
  const std::string child_name = absl::StrCat(name, "-", ++started_);
  std::unique_ptr<ChildProcess> child = ChildProcess::Start(
      child_name, Runfile(binary), args, absl::StrCat(TestTmpDir(), "/", child_name));
  if (child == nullptr) return nullptr;
  children_.push_back(std::move(child));
  return children_.back().get();
}

absl::StatusOr<Daemon> DaemonRunner::StartDaemon(const std::string& name,
                                                 const std::string& binary, Flags flags) {
  const std::string port_file = absl::StrCat(TestTmpDir(), "/", name, "-", started_ + 1, ".port");
  std::remove(port_file.c_str());
  flags["port_file"] = port_file;
  Daemon daemon;
  daemon.process = StartProcess(name, binary, flags);
  if (daemon.process == nullptr) return absl::InternalError("fork failed");
  const absl::Time deadline = absl::Now() + kStartDeadline;
  while (true) {
    const std::string contents = ReadFileOrEmpty(port_file);
    if (absl::SimpleAtoi(absl::StripSuffix(contents, "\n"), &daemon.port) && daemon.port > 0) {
      return daemon;
    }
    if (std::optional<int> status = daemon.process->WaitForExit(absl::ZeroDuration())) {
      return absl::InternalError(absl::StrCat(name, " exited with wait status ", *status,
                                              " before listening: ",
                                              daemon.process->Stderr()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(name, " wrote no port file in ", absl::FormatDuration(kStartDeadline)));
    }
    absl::SleepFor(kPollInterval);
  }
}

void DaemonRunner::StopAll() {
  for (const std::unique_ptr<ChildProcess>& child : children_) child->Stop(absl::Seconds(5));
}

std::string DaemonRunner::Logs() const {
  std::string logs;
  for (const std::unique_ptr<ChildProcess>& child : children_) {
    absl::StrAppend(&logs, "---- ", child->name(), " stdout ----\n", child->Stdout(), "---- ",
                    child->name(), " stderr ----\n", child->Stderr());
  }
  return logs;
}

}  // namespace test
}  // namespace contrail
