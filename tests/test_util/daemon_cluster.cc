#include "tests/test_util/daemon_cluster.h"

#include <netinet/in.h>
#include <signal.h>
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

// The port in `path` (written by a daemon's --port_file), once it is there.
bool ReadPort(const std::string& path, int* port) {
  return absl::SimpleAtoi(absl::StripSuffix(ReadFileOrEmpty(path), "\n"), port) && *port > 0;
}

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

std::string RunningDaemon::address() const { return absl::StrCat("127.0.0.1:", port); }

absl::StatusOr<StatusResponse> GetDaemonStatus(int port, absl::Duration deadline) {
  // One channel per port for the life of the process: polls reuse it.
  static auto* channels = new std::map<int, std::shared_ptr<grpc::Channel>>();
  std::shared_ptr<grpc::Channel>& channel = (*channels)[port];
  if (channel == nullptr) {
    grpc::ChannelArguments arguments;
    // A daemon restarted on the same port is found again at once.
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                        grpc::InsecureChannelCredentials(), arguments);
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  StatusResponse response;
  const grpc::Status rpc =
      StatusService::NewStub(channel)->GetStatus(&context, StatusRequest(), &response);
  if (!rpc.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(rpc.error_code()),
                        absl::StrCat("GetStatus of port ", port, ": ", rpc.error_message()));
  }
  return response;
}

absl::StatusOr<StatusResponse> WaitForDaemonStatus(
    int port, const std::string& what, const std::function<bool(const StatusResponse&)>& done,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<StatusResponse> status = GetDaemonStatus(port);
    if (!status.ok()) return status.status();
    if (done(*status)) return status;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no ", what, " on port ", port, " in ",
                                                      absl::FormatDuration(timeout),
                                                      "; last status: ",
                                                      status->ShortDebugString()));
    }
    absl::SleepFor(kPollInterval);
  }
}

ChildProcess* DaemonCluster::StartProcess(const std::string& name, const std::string& binary,
                                          const DaemonFlags& flags,
                                          const std::vector<std::string>& positional) {
  std::vector<std::string> args = positional;
  for (const auto& [flag, value] : flags) args.push_back(absl::StrCat("--", flag, "=", value));
  const std::string prefix = absl::StrCat(dir_, "/", name, "-", children_.size());
  std::unique_ptr<ChildProcess> child = ChildProcess::Start(
      name, binary.front() == '/' ? binary : Runfile(binary), args, prefix);
  if (child == nullptr) return nullptr;
  children_.push_back(std::move(child));
  return children_.back().get();
}

absl::StatusOr<RunningDaemon> DaemonCluster::Start(const std::string& name,
                                                   const std::string& binary,
                                                   DaemonFlags flags, absl::Duration timeout) {
  const std::string prefix = absl::StrCat(dir_, "/", name, "-", children_.size());
  const std::string port_file = prefix + ".port";
  const std::string metrics_port_file = prefix + ".metrics_port";
  const bool metrics = flags.count("metrics_listen") > 0;
  std::remove(port_file.c_str());
  std::remove(metrics_port_file.c_str());
  flags["port_file"] = port_file;
  if (metrics) flags["metrics_port_file"] = metrics_port_file;
  RunningDaemon daemon;
  daemon.process = StartProcess(name, binary, flags);
  if (daemon.process == nullptr) return absl::InternalError(absl::StrCat("cannot start ", name));
  const absl::Time deadline = absl::Now() + timeout;
  while (!(ReadPort(port_file, &daemon.port) &&
           (!metrics || ReadPort(metrics_port_file, &daemon.metrics_port)))) {
    if (std::optional<int> status = daemon.process->WaitForExit(absl::ZeroDuration())) {
      return absl::InternalError(absl::StrCat(name, " exited with wait status ", *status,
                                              " before listening: ",
                                              daemon.process->Stderr()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(name, " wrote no port file in ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPollInterval);
  }
  return daemon;
}

void DaemonCluster::StopAll() {
  for (const std::unique_ptr<ChildProcess>& child : children_) {
    if (!child->Running()) continue;
    // A test may have frozen it (SIGSTOP): it must run to exit cleanly.
    child->Signal(SIGCONT);
    child->Stop(absl::Seconds(5));
  }
}

std::string DaemonCluster::Logs() const {
  std::string logs;
  for (const std::unique_ptr<ChildProcess>& child : children_) {
    absl::StrAppend(&logs, "---- ", child->name(), " stdout ----\n", child->Stdout(), "---- ",
                    child->name(), " stderr ----\n", child->Stderr());
  }
  return logs;
}

}  // namespace test
}  // namespace contrail
