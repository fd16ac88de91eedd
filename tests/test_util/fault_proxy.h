// A TCP proxy for fault tests: listens on a free loopback port and forwards
// every connection to a target, and on request cuts, delays, corrupts or
// swallows the traffic, as a flaky network would. Between a trainer and
// its servers it proves that the update path survives each fault.
//
// Thread-safe: the fault controls may be called from any thread while the
// proxy's own threads (one accepting, two per connection) forward.
#ifndef CONTRAIL_TESTS_TEST_UTIL_FAULT_PROXY_H_
#define CONTRAIL_TESTS_TEST_UTIL_FAULT_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace contrail {
namespace test {

class FaultProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`target_port`.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(int target_port);
  // Stops accepting and closes every connection.
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  std::string address() const;

  // Closes every open connection now (a network cut; new ones are accepted).
  void Cut() ABSL_LOCKS_EXCLUDED(mu_);
  // Holds each forwarded chunk back this long (zero: none).
  void SetDelay(absl::Duration delay) { delay_ns_ = absl::ToInt64Nanoseconds(delay); }
  // Flips one byte in each of the next `chunks` chunks sent from the target
  // back to the client (the trainer's updates, towards a server).
  void CorruptNext(int chunks) { corrupt_ += chunks; }
  // While set, nothing is forwarded and nothing read in either direction,
  // and connections stay open: a half-open link, which only keepalives
  // notice. New connections are accepted and swallowed too.
  void SetBlackhole(bool on) { blackhole_ = on; }

  int64_t connections() const { return connections_.load(); }
  int64_t corrupted() const { return corrupted_.load(); }

 private:
  struct Link;

  FaultProxy(int listen_fd, int port, int target_port);
  void AcceptLoop();
  // Copies from `from` to `to` until either closes or the link is cut;
  // `downstream` is target-to-client.
  void Pump(std::shared_ptr<Link> link, int from, int to, bool downstream);

  const int listen_fd_;
  const int port_;
  const int target_port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> delay_ns_{0};
  std::atomic<int> corrupt_{0};
  std::atomic<bool> blackhole_{false};
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> corrupted_{0};
  std::thread acceptor_;

  absl::Mutex mu_;
  std::vector<std::shared_ptr<Link>> links_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_FAULT_PROXY_H_
