#include "common/http_server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "httplib.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a
// second daemon on the same port would silently share it.
void ExclusiveSocketOptions(socket_t sock) {
  const int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

bool FileExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// "host:port" split; brackets of an IPv6 host dropped, an empty host is
// every address. The caller checked the form with CheckListenAddress().
std::pair<std::string, int> SplitListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  return {host, std::stoi(listen.substr(colon + 1))};
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(const Options& options) {
  if (absl::Status listen = CheckListenAddress(options.listen); !listen.ok()) return listen;
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 1, got ", options.threads));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file and tls_key_file must be given together (HTTPS) or not at all");
  }
  std::unique_ptr<httplib::Server> server;
  if (!options.tls_cert_file.empty()) {
    for (const std::string* file : {&options.tls_cert_file, &options.tls_key_file}) {
      if (!FileExists(*file)) {
        return absl::NotFoundError(absl::StrCat(
            file == &options.tls_cert_file ? "tls_cert_file" : "tls_key_file", " ", *file,
            " does not exist"));
      }
    }
    auto tls = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str());
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tls_cert_file ", options.tls_cert_file, " and tls_key_file ",
          options.tls_key_file, " are not a PEM certificate and its private key"));
    }
    server = std::move(tls);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  server->set_socket_options(ExclusiveSocketOptions);
  const int threads = options.threads;
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  return std::unique_ptr<HttpServer>(new HttpServer(options, std::move(server)));
}

HttpServer::HttpServer(const Options& options, std::unique_ptr<httplib::Server> server)
    : options_(options), server_(std::move(server)) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Handle(const std::string& path, Handler handler) {
  server_->Get(path, [handler = std::move(handler)](const httplib::Request&,
                                                    httplib::Response& response) {
    Response answer = handler();
    response.status = answer.status;
    response.set_header("Cache-Control", "no-store");
    response.set_content(std::move(answer.body), answer.content_type.c_str());
  });
}

absl::Status HttpServer::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || shut_down_) {
    return absl::FailedPreconditionError(shut_down_ ? "the HTTP server was shut down"
                                                    : "the HTTP server already started");
  }
  const auto [host, port] = SplitListen(options_.listen);
  const int bound = port == 0 ? server_->bind_to_any_port(host)
                              : (server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options_.listen,
        ": the address is in use or not an address of this machine"));
  }
  port_ = bound;
  started_ = true;
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listening_ended_ = true;
  });
  // stop() is a no-op until the accept loop runs: wait for it, so that a
  // Shutdown() right after Start() cannot leave the thread unjoinable.
  while (!server_->is_running() && !listening_ended_) absl::SleepFor(absl::Milliseconds(1));
  return absl::OkStatus();
}

int HttpServer::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

void HttpServer::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  server_->stop();
  thread_.join();
}

}  // namespace contrail
