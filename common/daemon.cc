#include "common/daemon.h"

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/transport_security.h"

namespace contrail {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// True when every address `listen` ("host:port", port not 0) resolves to
// is taken by a listening socket: gRPC's server would fail to bind, after
// logging a multi-line account of it to stderr. Binds as gRPC does
// (SO_REUSEADDR, no SO_REUSEPORT). False when unsure; gRPC then decides.
bool AddressInUse(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port == "0") return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints,
                  &addresses) != 0) {
    return false;
  }
  bool all_in_use = addresses != nullptr;
  for (const addrinfo* a = addresses; a != nullptr && all_in_use; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      all_in_use = false;
      break;
    }
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    all_in_use = bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(addresses);
  return all_in_use;
}

}  // namespace

void BlockTerminationSignals() {
  const sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  const sigset_t set = TerminationSignals();
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal;
}

absl::Status CheckListenAddress(const std::string& listen, const std::string& field) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be host:port with a port in [0, 65535], got \"", listen, "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckDaemonAddresses(const DaemonAddresses& addresses) {
  if (absl::Status form = CheckListenAddress(addresses.listen); !form.ok()) return form;
  // The other two are optional.
  for (const auto& [field, listen] :
       {std::pair<const char*, const std::string*>{"health_listen", &addresses.health_listen},
        {"metrics_listen", &addresses.metrics_listen}}) {
    if (listen->empty()) continue;
    if (absl::Status form = CheckListenAddress(*listen, field); !form.ok()) return form;
  }
  if (absl::Status exposed =
          CheckExposure("listen", addresses.listen, addresses.tls, addresses.insecure);
      !exposed.ok()) {
    return exposed;
  }
  if (addresses.metrics_listen.empty()) return absl::OkStatus();
  return CheckExposure("metrics_listen", addresses.metrics_listen, addresses.metrics_tls,
                       addresses.insecure);
}

absl::StatusOr<StartedServer> StartGrpcServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    const GrpcServerOptions& options) {
  if (AddressInUse(listen)) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, ": the address is in use"));
  }
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  StartedServer started;
  builder.AddListeningPort(
      listen,
      options.credentials != nullptr ? options.credentials : grpc::InsecureServerCredentials(),
      &started.port);
  // Without this, a second process could bind the same port and steal half
  // the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             kMinClientPingIntervalMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kServerPingIntervalMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kServerPingTimeoutMs);
  builder.SetMaxSendMessageSize(1 << 30);
  for (grpc::Service* service : services) builder.RegisterService(service);
  if (options.make_interceptors) {
    builder.experimental().SetInterceptorCreators(options.make_interceptors());
  }
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        ": the address is in use or not a valid host:port on this machine"));
  }
  return started;
}

absl::StatusOr<StartedServer> StartHealthServer(const std::string& listen,
                                                grpc::Service* health) {
  GrpcServerOptions options;
  options.reflection = false;
  options.max_receive_message_bytes = 64 << 10;
  return StartGrpcServer(listen, {health}, options);
}

absl::Status WritePortFile(const std::string& path, int port) {
  if (path.empty()) return absl::OkStatus();
  const std::string temporary = path + ".tmp";
  FILE* file = std::fopen(temporary.c_str(), "w");
  if (file == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot write ", temporary, ": ", std::strerror(errno)));
  }
  std::fprintf(file, "%d\n", port);
  std::fclose(file);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot rename ", temporary, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace contrail
