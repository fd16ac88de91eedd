// A small HTTP server for what operators and scrapers read from a daemon:
// GET routes answered by handlers (the Prometheus text exposition, the
// status page and its JSON), on its own "host:port" next to the daemon's
// gRPC port. Built on cpp-httplib; plain HTTP, or HTTPS when Options names a
// certificate and key.
//
// Lifecycle: Create() checks the options; Handle() adds routes; Start()
// binds (a port in use is an error, never shared: SO_REUSEPORT is off) and
// serves on a thread the server owns; Shutdown() (or the destructor) stops
// it and joins. Handlers run on the server's worker threads, several at
// once, and must be thread-safe.
//
// Handle() and Start() are called by the owner before serving; port() and
// Shutdown() are thread-safe.
#ifndef CONTRAIL_COMMON_HTTP_SERVER_H_
#define CONTRAIL_COMMON_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace contrail {

class HttpServer {
 public:
  struct Options {
    // host:port to listen on; port 0 picks a free port (see port()). The
    // daemons fill it from --metrics_listen.
    std::string listen = "127.0.0.1:0";
    // PEM files of a certificate and its private key: both set serves
    // HTTPS, both empty plain HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
    // Worker threads answering requests.
    int threads = 2;
  };

  // A response: the body and its Content-Type.
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  // INVALID_ARGUMENT naming the field (listen, tls_cert_file, ...) when the
  // options are malformed; NOT_FOUND when a TLS file is missing.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(const Options& options);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Answers GET `path` (exact match) with `handler`. Before Start().
  void Handle(const std::string& path, Handler handler);

  // Binds Options::listen and starts serving. UNAVAILABLE naming the
  // address when it cannot bind (in use, or not an address of this
  // machine); FAILED_PRECONDITION when called twice or after Shutdown().
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // The port bound by Start(); 0 before.
  int port() const ABSL_LOCKS_EXCLUDED(mu_);

  // Stops serving and joins the server's thread. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  HttpServer(const Options& options, std::unique_ptr<httplib::Server> server);

  // Constant after construction.
  const Options options_;
  const std::unique_ptr<httplib::Server> server_;

  // Protects the lifecycle.
  mutable absl::Mutex mu_;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the server's thread when its accept loop has returned.
  std::atomic<bool> listening_ended_{false};
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_HTTP_SERVER_H_
