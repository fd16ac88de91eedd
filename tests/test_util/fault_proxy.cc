#include "tests/test_util/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace contrail {
namespace test {

// One proxied connection: the client's socket and the target's.
struct FaultProxy::Link {
  int client = -1;
  int target = -1;
  std::atomic<bool> closed{false};

  void Close() {
    if (closed.exchange(true)) return;
    shutdown(client, SHUT_RDWR);
    shutdown(target, SHUT_RDWR);
  }
  ~Link() {
    if (client >= 0) close(client);
    if (target >= 0) close(target);
  }
};

namespace {

constexpr int kPollMs = 50;

// Takes one from `count` when it is above zero.
bool TakeOne(std::atomic<int>& count) {
  int value = count.load();
  while (value > 0) {
    if (count.compare_exchange_weak(value, value - 1)) return true;
  }
  return false;
}

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(int target_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("cannot listen: ", error));
  }
  return std::unique_ptr<FaultProxy>(new FaultProxy(fd, ntohs(address.sin_port), target_port));
}

FaultProxy::FaultProxy(int listen_fd, int port, int target_port)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  acceptor_.join();
  close(listen_fd_);
  Cut();
  std::vector<std::thread> pumps;
  {
    absl::MutexLock lock(&mu_);
    pumps.swap(pumps_);
  }
  for (std::thread& pump : pumps) pump.join();
}

std::string FaultProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void FaultProxy::Cut() {
  absl::MutexLock lock(&mu_);
  for (const std::shared_ptr<Link>& link : links_) link->Close();
  links_.clear();
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd ready{listen_fd_, POLLIN, 0};
    if (poll(&ready, 1, kPollMs) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto link = std::make_shared<Link>();
    link->client = client;
    link->target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in target = Loopback(target_port_);
    if (link->target < 0 ||
        connect(link->target, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
      continue;  // the target is down: the client sees its connection close
    }
    ++connections_;
    absl::MutexLock lock(&mu_);
    links_.push_back(link);
    pumps_.emplace_back([this, link] { Pump(link, link->client, link->target, false); });
    pumps_.emplace_back([this, link] { Pump(link, link->target, link->client, true); });
  }
}

void FaultProxy::Pump(std::shared_ptr<Link> link, int from, int to, bool downstream) {
  char buffer[16384];
  while (!stopping_ && !link->closed) {
    if (blackhole_) {
      absl::SleepFor(absl::Milliseconds(kPollMs));
      continue;
    }
    pollfd ready{from, POLLIN, 0};
    if (poll(&ready, 1, kPollMs) <= 0) continue;
    const ssize_t n = read(from, buffer, sizeof(buffer));
    if (n <= 0) break;
    if (const int64_t delay = delay_ns_.load(); delay > 0) {
      absl::SleepFor(absl::Nanoseconds(delay));
    }
    if (downstream && TakeOne(corrupt_)) {
      buffer[n / 2] ^= 0x20;
      ++corrupted_;
    }
    for (ssize_t sent = 0; sent < n;) {
      // MSG_NOSIGNAL: a peer that went away is an error here, not SIGPIPE.
      const ssize_t w = send(to, buffer + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
      if (w <= 0) {
        link->Close();
        return;
      }
      sent += w;
    }
  }
  link->Close();
}

}  // namespace test
}  // namespace contrail
