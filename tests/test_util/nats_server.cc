#include "tests/test_util/nats_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace contrail {
namespace test {
namespace {

constexpr absl::Duration kStartDeadline = absl::Seconds(10);
constexpr absl::Duration kPollInterval = absl::Milliseconds(10);

// Debian installs it in /usr/sbin, which a test's PATH may not hold.
std::string FindNatsServer() {
  for (const char* path : {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                           "/usr/local/bin/nats-server"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

bool AcceptsConnections(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected =
      connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return connected;
}

// The client port in a ports file: {"nats":["nats://127.0.0.1:PORT"],...}.
int PortFromPortsFile(const std::string& contents) {
  const std::string prefix = "nats://127.0.0.1:";
  const size_t at = contents.find(prefix);
  if (at == std::string::npos) return 0;
  const size_t begin = at + prefix.size();
  const size_t end = contents.find('"', begin);
  int port = 0;
  if (end == std::string::npos || !absl::SimpleAtoi(contents.substr(begin, end - begin), &port)) {
    return 0;
  }
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NatsServer>> NatsServer::Start() {
  std::string binary = FindNatsServer();
  if (binary.empty()) {
    return absl::NotFoundError("nats-server is not installed (deploy/setup.sh installs it)");
  }
  std::string dir = TestTmpDir() + "/nats-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", dir, " failed"));
  }
  std::unique_ptr<NatsServer> server(new NatsServer(std::move(binary), std::move(dir)));
  if (absl::Status run = server->Run(-1); !run.ok()) return run;
  return server;
}

NatsServer::~NatsServer() {
  Kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string NatsServer::Url(const std::string& stream, const std::string& subject) const {
  return absl::StrCat("nats://127.0.0.1:", port_, "/", stream, "/", subject);
}

void NatsServer::Kill() {
  if (process_ != nullptr) process_->Kill();
}

absl::Status NatsServer::Restart() {
  if (process_ != nullptr) process_->Stop(kStartDeadline);
  return Run(port_);
}

std::string NatsServer::Logs() const {
  if (process_ == nullptr) return "";
  return absl::StrCat("---- nats-server stdout ----\n", process_->Stdout(),
                      "---- nats-server stderr ----\n", process_->Stderr());
}

absl::Status NatsServer::Run(int port) {
  ++runs_;
  const std::string ports_dir = absl::StrCat(dir_, "/ports-", runs_);
  std::filesystem::create_directories(ports_dir);
  process_ = ChildProcess::Start(
      "nats-server", binary_,
      {"-js", "-sd", dir_ + "/store", "-a", "127.0.0.1", "-p", absl::StrCat(port),
       "--ports_file_dir", ports_dir},
      absl::StrCat(dir_, "/nats-server-", runs_));
  if (process_ == nullptr) return absl::InternalError("fork failed");
  const std::string ports_file =
      absl::StrCat(ports_dir, "/nats-server_", process_->pid(), ".ports");
  const absl::Time deadline = absl::Now() + kStartDeadline;
  while (true) {
    const int listening = PortFromPortsFile(ReadFileOrEmpty(ports_file));
    if (listening > 0 && AcceptsConnections(listening)) {
      port_ = listening;
      return absl::OkStatus();
    }
    if (!process_->Running()) {
      return absl::InternalError(
          absl::StrCat("nats-server exited before listening: ", process_->Stderr()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "nats-server did not listen within ", absl::FormatDuration(kStartDeadline), ": ",
          process_->Stderr()));
    }
    absl::SleepFor(kPollInterval);
  }
}

}  // namespace test
}  // namespace contrail
