// What both daemons (and their tests) need around a gRPC server: start it on
// a host:port with a clear error when that fails, publish the bound port to
// a file for callers that asked for port 0, and wait for SIGINT/SIGTERM.
// Free functions; BlockTerminationSignals() must run before any thread
// starts, the rest are thread-compatible.
#ifndef CONTRAIL_COMMON_DAEMON_H_
#define CONTRAIL_COMMON_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace contrail {

// Blocks SIGINT and SIGTERM in the calling thread and every thread it
// starts later, so that WaitForTerminationSignal() receives them.
void BlockTerminationSignals();

// Waits for SIGINT or SIGTERM; returns its number.
int WaitForTerminationSignal();

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the port actually bound
};

// OK when `listen` is "host:port" with a port in [0, 65535];
// INVALID_ARGUMENT quoting it otherwise. For daemons' Create(), so that a
// malformed --listen is refused before anything starts.
absl::Status CheckListenAddress(const std::string& listen);

// Builds and starts a gRPC server listening on `listen` ("host:port"; port 0
// picks a free one) with `services`. Port reuse is off, so a port in use is
// an error: UNAVAILABLE naming the address.
absl::StatusOr<StartedServer> StartGrpcServer(
    const std::string& listen, const std::vector<grpc::Service*>& services);

// Writes `port` and a newline to `path` atomically (write, then rename), so
// that a reader never sees a partial file. No-op for an empty path.
absl::Status WritePortFile(const std::string& path, int port);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_DAEMON_H_
