// The server daemon as one object: a LiveModel that an UpdateSubscriber
// keeps up to date with a trainer, served over gRPC by the prediction,
// Open Inference Protocol (KServe v2) and status services, and, with a
// state directory, saved there so that a restart serves at once.
// server/main.cc turns flags into Options and runs one; tests run one
// in-process on port 0.
//
// Lifecycle: Create() checks the options, restores the model saved in the
// state directory (if any: see server/served_model_store.h) and builds
// everything without touching the network; Start() listens, serving the
// restored version at once, and starts following the trainer from it and
// saving; Shutdown() (or the destructor) stops following it, saves a last
// time and stops serving. The daemon owns every part; the services, the
// subscriber and the saver hold pointers to the LiveModel, which outlives
// them.
//
// With Options::relay the daemon also serves UpdateService on its listen
// port: what it applies it passes on unchanged to servers that follow it
// (server/update_relay.h), so that servers form a tree below the trainer.
//
// This class is thread-safe.
#ifndef CONTRAIL_SERVER_SERVER_DAEMON_H_
#define CONTRAIL_SERVER_SERVER_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/clock.h"
#include "common/health_service.h"
#include "common/transport_security.h"
#include "common/grpc_request_metrics.h"
#include "common/monitoring_server.h"
#include "prometheus/registry.h"
#include "server/backoff.h"
#include "server/inference_service_impl.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/served_model_saver.h"
#include "server/served_model_store.h"
#include "server/server_metrics.h"
#include "server/server_status_service_impl.h"
#include "server/update_relay.h"
#include "server/update_subscriber.h"
#include "trainer/update_service_impl.h"

namespace contrail {

class ServerDaemon {
 public:
  struct Options {
    // host:port to serve Predict and GetStatus on; port 0 picks a free port
    // (see port()).
    std::string listen = "127.0.0.1:50052";
    // host:port (or any gRPC target) of the trainer to follow.
    std::string trainer = "127.0.0.1:50051";
    // How this server names itself in the trainer's logs; empty gives
    // "server@<listen>".
    std::string name;
    // Largest batch one Predict (or ModelInfer) may carry, and the largest
    // batch dynamic batching forms.
    int64_t max_batch = 1024;
    // Retired versions of the model kept for updates to reuse (each a copy
    // of the model in memory; LiveModel::Options::max_spare_versions).
    int max_spare_versions = 3;
    // Threads running Predict's forward passes; 0: one per core.
    int predict_threads = 0;
    // Merge the Predict requests that wait into one forward pass
    // (server/predict_batcher.h), waiting up to batch_timeout after the
    // oldest for more to join.
    bool dynamic_batching = false;
    absl::Duration batch_timeout = absl::Microseconds(500);
    // The name Open Inference Protocol clients address the model by.
    std::string model_name = "contrail";
    // Floats per example of the largest input a Predict may carry (784 for
    // the 28x28 images of the built-in models). With max_batch it bounds a
    // Predict request on the wire, which gRPC refuses (RESOURCE_EXHAUSTED)
    // before parsing it: see MaxPredictRequestBytes().
    int64_t max_example_floats = 28 * 28;
    // Where to keep the model served across restarts; empty keeps nothing.
    std::string state_dir;
    // How often to save the model there when its version moved (and once
    // more at Shutdown()).
    absl::Duration save_every = absl::Seconds(5);
    // Pings that notice a dead link to the trainer.
    UpdateSubscriber::Keepalive keepalive;
    // Waits before each resubscription to the trainer: after a rejected
    // update, a stream that ended, or a trainer that could not be reached.
    Backoff::Options backoff;
    // The clock those waits run on; must outlive the daemon.
    Clock* clock = Clock::Real();
    // How long Shutdown() lets RPCs in flight finish before cancelling them.
    absl::Duration shutdown_grace = absl::Seconds(2);
    // TLS, both ways: the port serves TLS with tls.cert_file and key_file
    // (client certificates are verified when shown), and the link to the
    // trainer verifies it against tls.ca_file and shows the same
    // certificate. Plaintext when not enabled().
    TlsOptions tls;
    // Bearer tokens and their roles for this server's port
    // (common/access_policy.h); empty lets every caller do everything.
    std::string tokens_file;
    // A file holding the token this server sends the trainer (with the
    // subscribe role there); empty sends none.
    std::string trainer_token_file;
    // Serve plaintext beyond loopback (common/transport_security.h).
    bool insecure = false;
    // host:port of a second, plaintext port that serves only
    // grpc.health.v1, for probes that speak no TLS (Kubernetes' gRPC
    // probes); it tells nothing but the serving status, so it may listen
    // beyond loopback. Empty: none.
    std::string health_listen;
    // host:port for Prometheus metrics (/metrics) and the live status page
    // (/status, /status.json) over HTTP; port 0 picks a free port (see
    // metrics_port()); empty serves neither (common/monitoring_server.h).
    std::string metrics_listen;
    // PEM certificate and private key: serve metrics_listen over HTTPS.
    // Both or neither.
    std::string metrics_tls_cert_file;
    std::string metrics_tls_key_file;
    // Also serve UpdateService, passing on every update applied, so that
    // other servers can follow this one (--relay).
    bool relay = false;
    // With relay: the updates kept for servers that follow this one.
    UpdateRelay::Options relay_options;
    // With relay: subscriptions served at once; more are refused with
    // RESOURCE_EXHAUSTED (--relay_max_subscribers).
    uint64_t relay_max_subscribers = 64;
  };

  // Checks `options` (INVALID_ARGUMENT naming the field, which is also the
  // flag's name) and builds the daemon. Neither listens nor connects.
  static absl::StatusOr<std::unique_ptr<ServerDaemon>> Create(const Options& options);

  // Shutdown().
  ~ServerDaemon();
  ServerDaemon(const ServerDaemon&) = delete;
  ServerDaemon& operator=(const ServerDaemon&) = delete;

  // Listens on Options::listen, then starts following the trainer.
  // UNAVAILABLE naming the address when it cannot listen (nothing is
  // started then); FAILED_PRECONDITION when called a second time or after
  // Shutdown().
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // The largest Predict request `options` let through: max_batch examples
  // of max_example_floats floats (4 bytes each, packed) and a margin for the
  // shape and the framing.
  static int64_t MaxPredictRequestBytes(const Options& options);

  // The port Start() bound; 0 before.
  int port() const ABSL_LOCKS_EXCLUDED(mu_);
  // The port of Options::metrics_listen once started; 0 before, or without
  // one.
  int metrics_port() const;

  // Stops following the trainer, then stops serving: RPCs in flight get
  // Options::shutdown_grace to finish. Idempotent; a concurrent second call
  // returns once the first has finished.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ServerDaemon(const Options& options, std::unique_ptr<LiveModel> live,
               std::unique_ptr<UpdateRelay> relay,
               std::unique_ptr<UpdateSubscriber> subscriber,
               std::unique_ptr<ServedModelStore> store,
               std::unique_ptr<ServedModelSaver> saver, std::unique_ptr<AccessPolicy> tokens,
               std::shared_ptr<grpc::ServerCredentials> credentials,
               std::shared_ptr<prometheus::Registry> registry,
               std::unique_ptr<ServerMetrics> metrics);

  const AccessPolicy* access() const {
    return tokens_ != nullptr ? tokens_.get() : &AccessPolicy::Open();
  }

  // GetStatus, in-process: what /metrics and the status page show.
  StatusResponse Status();

  // Constant after construction. Declared in dependency order: the
  // services and the subscriber point into live_.
  const Options options_;
  const std::unique_ptr<LiveModel> live_;
  // Null unless Options::relay; the subscriber applies through it.
  const std::unique_ptr<UpdateRelay> relay_;
  const std::unique_ptr<UpdateSubscriber> subscriber_;
  // Null without a state directory.
  const std::unique_ptr<ServedModelStore> store_;
  const std::unique_ptr<ServedModelSaver> saver_;
  // Who may call what; AccessPolicy::Open() without a tokens file.
  const std::unique_ptr<AccessPolicy> tokens_;
  const std::shared_ptr<grpc::ServerCredentials> credentials_;
  PredictionServiceImpl prediction_service_;
  // Null unless Options::relay.
  const std::unique_ptr<UpdateServiceImpl> update_service_;
  ServerStatusServiceImpl status_service_;
  // SERVING while a model is held; the second serves health_listen.
  HealthServiceImpl health_service_;
  HealthServiceImpl health_probe_service_;
  InferenceServiceImpl inference_service_;
  // Metrics: the registry holds the request counts and the subscriber's
  // histograms (ServerMetrics, its observer); monitoring_ serves them and
  // the status page. Null without Options::metrics_listen.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<GrpcRequestMetrics> request_metrics_;
  std::unique_ptr<MonitoringServer> monitoring_;

  // Protects the lifecycle: held through Start() and Shutdown(), so that
  // they never interleave.
  mutable absl::Mutex mu_;
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> health_server_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVER_DAEMON_H_
