// What both daemons (and their tests) need around a gRPC server: start it on
// a host:port with a clear error when that fails, publish the bound port to
// a file for callers that asked for port 0, and wait for SIGINT/SIGTERM.
// Free functions; BlockTerminationSignals() must run before any thread
// starts, the rest are thread-compatible.
#ifndef CONTRAIL_COMMON_DAEMON_H_
#define CONTRAIL_COMMON_DAEMON_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <functional>
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
// INVALID_ARGUMENT naming `field` and quoting it otherwise. For daemons' Create(), so that a
// malformed --listen is refused before anything starts.
absl::Status CheckListenAddress(const std::string& listen,
                                const std::string& field = "listen");

// The addresses a daemon listens on, as its options give them.
struct DaemonAddresses {
  std::string listen;  // the gRPC port
  bool tls = false;  // it serves TLS
  std::string health_listen;  // plaintext health checks; empty: none
  std::string metrics_listen;  // metrics and the status page; empty: none
  bool metrics_tls = false;  // they are served over HTTPS
  bool insecure = false;  // plaintext beyond loopback is allowed
};

// What both daemons' Create() check of their addresses: INVALID_ARGUMENT
// naming the field (listen, health_listen, metrics_listen) for one that is
// not host:port, then CheckExposure() (common/transport_security.h) for the
// gRPC and metrics ports.
absl::Status CheckDaemonAddresses(const DaemonAddresses& addresses);

struct GrpcServerOptions {
  // The largest request message; gRPC answers a larger one with
  // RESOURCE_EXHAUSTED before it is parsed.
  int max_receive_message_bytes = 64 << 20;
  // How the port is secured (common/transport_security.h); null serves
  // plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Server reflection (grpc.reflection.v1alpha), so that grpcurl and
  // grpc_cli can list and call the services without their .proto files.
  // gRPC turns it on for the whole process: once a server has it, every
  // server built later has it too.
  bool reflection = true;
  // Server interceptors, made once per server started (gRPC takes
  // ownership), e.g. GrpcRequestMetrics' request counts
  // (common/grpc_request_metrics.h). Empty: none.
  std::function<std::vector<std::unique_ptr<
      grpc::experimental::ServerInterceptorFactoryInterface>>()>
      make_interceptors;
};

// Keepalive, as every contrail server runs it. It accepts HTTP/2 pings from
// clients down to one per kMinClientPingInterval, also on a stream that has
// nothing to send (a server's subscription to an idle trainer pings it
// every few seconds to notice a dead link: server/update_subscriber.h),
// where gRPC's default policy answers more than one ping in 5 minutes with
// GOAWAY ("too_many_pings"). It pings its own clients every
// kServerPingInterval and drops a connection whose ping goes unanswered for
// kServerPingTimeout, so that a subscriber whose machine vanished does not
// hold a stream open until TCP gives up.
inline constexpr int kMinClientPingIntervalMs = 1000;
inline constexpr int kServerPingIntervalMs = 10000;
inline constexpr int kServerPingTimeoutMs = 5000;

// Builds and starts a gRPC server listening on `listen` ("host:port"; port 0
// picks a free one) with `services`, the keepalive above and `options`.
// Port reuse is off, so a port in use is an error: UNAVAILABLE naming the
// address.
absl::StatusOr<StartedServer> StartGrpcServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    const GrpcServerOptions& options = GrpcServerOptions());

// A plaintext server on `listen` with only `health` (a grpc.health.v1
// service) on it, without reflection: what --health_listen serves.
absl::StatusOr<StartedServer> StartHealthServer(const std::string& listen,
                                                grpc::Service* health);

// Writes `port` and a newline to `path` atomically (write, then rename), so
// that a reader never sees a partial file. No-op for an empty path.
absl::Status WritePortFile(const std::string& path, int port);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_DAEMON_H_
