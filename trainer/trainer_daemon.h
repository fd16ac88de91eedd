// The trainer daemon as an object: everything trainer/main.cc runs, so that
// tests can run a whole trainer in-process.
//
// Create() resolves the training config (trainer/training_config.h), loads
// the model, opens the source and builds the publisher, the trainer and the
// gRPC services; nothing listens or trains yet. Start() listens and starts
// training; Shutdown() (or the destructor) stops training, ends every
// subscription and stops listening.
//
// Thread-safety: Create, Start and Shutdown are called by the owner thread;
// the accessors are thread-safe.
#ifndef CONTRAIL_TRAINER_TRAINER_DAEMON_H_
#define CONTRAIL_TRAINER_TRAINER_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/access_policy.h"
#include "common/grpc_request_metrics.h"
#include "common/health_service.h"
#include "common/idx_reader.h"
#include "common/monitoring_server.h"
#include "common/transport_security.h"
#include "prometheus/registry.h"
#include "proto/experiment.pb.h"
#include "trainer/stream_trainer.h"
#include "trainer/checkpoint_store.h"
#include "trainer/ingest_queue.h"
#include "trainer/ingest_service_impl.h"
#include "trainer/trainer_metrics.h"
#include "trainer/trainer_status_service_impl.h"
#include "trainer/training_config.h"
#include "trainer/update_log.h"
#include "trainer/update_publisher.h"
#include "trainer/update_service_impl.h"

namespace contrail {

class TrainerDaemon {
 public:
  struct Options {
    // host:port for SubscribeUpdates and GetStatus; port 0 picks a free
    // port (see port()).
    std::string listen = "127.0.0.1:50051";
    // Where examples come from: "replay" (the IDX data set in data_dir,
    // replayed), "ingest" (only what producers send over IngestService),
    // or "nats://HOST:PORT/STREAM/SUBJECT" (a JetStream stream; see
    // trainer/nats_source.h).
    std::string source = "replay";
    // Folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz,
    // which the replay source replays.
    std::string data_dir = kFashionMnistDir;
    // --source=ingest: examples that may wait for training; producers are
    // held back while that many wait.
    int64_t ingest_queue = 10000;
    // Where checkpoints and the update log live; empty = nothing survives
    // the process. A trainer started on a directory with a checkpoint
    // continues its run.
    std::string state_dir;
    absl::Duration checkpoint_every = absl::Seconds(30);
    // Update streams served at once; more are refused (RESOURCE_EXHAUSTED).
    uint64_t max_subscribers = 256;
    // How to train and deploy; unset fields take their defaults.
    TrainingConfig training;
    // TLS on the port, mutual: every client (servers, producers,
    // contrailctl) shows a certificate that tls.ca_file verifies, since the
    // port carries the update channel. Plaintext when not enabled().
    TlsOptions tls;
    // Bearer tokens and their roles (common/access_policy.h); empty lets
    // every caller do everything.
    std::string tokens_file;
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
  };

  // INVALID_ARGUMENT for a bad config (naming the field), NOT_FOUND or
  // INVALID_ARGUMENT for a model or data that cannot be read.
  static absl::StatusOr<std::unique_ptr<TrainerDaemon>> Create(const Options& options);

  ~TrainerDaemon();
  TrainerDaemon(const TrainerDaemon&) = delete;
  TrainerDaemon& operator=(const TrainerDaemon&) = delete;

  // Listens on options.listen, then starts training. UNAVAILABLE when the
  // address cannot be bound.
  absl::Status Start();

  // Stops training, ends every subscription and stops listening.
  // Idempotent.
  void Shutdown();

  // The bound port, once started.
  int port() const { return port_; }
  // The port of Options::metrics_listen once started; 0 before, or without
  // one.
  int metrics_port() const { return monitoring_ != nullptr ? monitoring_->port() : 0; }
  // The resolved config and the options it made.
  const TrainingPlan& plan() const { return plan_; }
  const ModelSpec& spec() const { return publisher_->spec(); }
  StreamTrainer& trainer() { return *trainer_; }
  const UpdatePublisher& publisher() const { return *publisher_; }

 private:
  TrainerDaemon(Options options, TrainingPlan plan);

  const Options options_;
  const TrainingPlan plan_;
  // Declared in dependency order: destroyed trainer first, publisher, then
  // the durable state.
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<UpdateLog> update_log_;
  std::unique_ptr<UpdatePublisher> publisher_;
  std::unique_ptr<StreamTrainer> trainer_;
  // The ingest source when options.source is "ingest" (owned by trainer_).
  IngestQueue* ingest_queue_ = nullptr;
  std::unique_ptr<IngestServiceImpl> ingest_service_;
  std::unique_ptr<UpdateServiceImpl> update_service_;
  std::unique_ptr<TrainerStatusServiceImpl> status_service_;
  // Who may call what; AccessPolicy::Open() without a tokens file.
  std::unique_ptr<AccessPolicy> tokens_;
  const AccessPolicy* access_ = &AccessPolicy::Open();
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  // SERVING while listening; the second serves --health_listen.
  std::unique_ptr<HealthServiceImpl> health_service_;
  std::unique_ptr<HealthServiceImpl> health_probe_service_;
  std::unique_ptr<grpc::Server> health_server_;
  // Metrics, with Options::metrics_listen only: request counts in
  // registry_, the trainer's collector, and the HTTP server of both and of
  // the status page.
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<GrpcRequestMetrics> request_metrics_;
  std::unique_ptr<TrainerMetrics> metrics_;
  std::unique_ptr<MonitoringServer> monitoring_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_TRAINER_DAEMON_H_
