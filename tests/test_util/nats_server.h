// A NATS server with JetStream for tests: Debian's nats-server run as a
// child process on 127.0.0.1, on a port it picks itself (-p -1, read back
// from its ports file: no fixed port, no race for a free one), storing its
// streams in a fresh temporary directory. Start() returns once it accepts
// connections; the destructor kills it and removes the directory.
//
// Not thread-safe.
#ifndef CONTRAIL_TESTS_TEST_UTIL_NATS_SERVER_H_
#define CONTRAIL_TESTS_TEST_UTIL_NATS_SERVER_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/test_util/child_process.h"

namespace contrail {
namespace test {

class NatsServer {
 public:
  // NOT_FOUND when nats-server is not installed; otherwise the server's
  // own complaint when it does not come up within 10 s.
  static absl::StatusOr<std::unique_ptr<NatsServer>> Start();

  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  int port() const { return port_; }
  // "nats://127.0.0.1:PORT/STREAM/SUBJECT"
  std::string Url(const std::string& stream, const std::string& subject) const;

  // Stops the server (SIGTERM: it stores its streams' and consumers' state
  // and exits) and starts it again on the same port and store.
  absl::Status Restart();
  // Kills it (SIGKILL); Restart() brings it back.
  void Kill();

  // Its stdout and stderr, for a failing test's log.
  std::string Logs() const;

 private:
  NatsServer(std::string binary, std::string dir) : binary_(std::move(binary)), dir_(std::move(dir)) {}

  // Runs nats-server on `port` (-1: a port of its choice) and waits until
  // it accepts connections.
  absl::Status Run(int port);

  const std::string binary_;
  const std::string dir_;  // the store and the ports file
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  int runs_ = 0;
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_NATS_SERVER_H_
