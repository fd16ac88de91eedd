#include "server/server_daemon.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// gRPC's message sizes are ints.
constexpr int64_t kMaxMessageBytes = std::numeric_limits<int32_t>::max();
// Beyond the packed floats of a Predict request: the tags and lengths of
// the inputs and their values, and a shape of a few varints.
constexpr int64_t kFramingBytes = 4096;

InferenceServiceImpl::Options InferenceOptions(const ServerDaemon::Options& options) {
  InferenceServiceImpl::Options inference_options;
  inference_options.model_name = options.model_name;
  inference_options.max_batch = options.max_batch;
  return inference_options;
}

PredictBatcher::Options BatcherOptions(const ServerDaemon::Options& options,
                                       PredictBatcher::Observer* observer = nullptr) {
  PredictBatcher::Options batching;
  batching.observer = observer;
  batching.threads = options.predict_threads;
  batching.dynamic_batching = options.dynamic_batching;
  batching.batch_timeout = options.batch_timeout;
  batching.max_batch = options.max_batch;
  return batching;
}

// What the health services answer: SERVING once `live` holds a model.
std::function<bool()> HoldsModel(const LiveModel* live) {
  return [live] { return live->Current() != nullptr; };
}

// The services a health check may name.
std::vector<std::string> HealthServices() {
  return {PredictionService::service_full_name(), StatusService::service_full_name(),
          inference::GRPCInferenceService::service_full_name()};
}

DaemonAddresses Addresses(const ServerDaemon::Options& options) {
  DaemonAddresses addresses;
  addresses.listen = options.listen;
  addresses.tls = options.tls.enabled();
  addresses.health_listen = options.health_listen;
  addresses.metrics_listen = options.metrics_listen;
  addresses.metrics_tls = !options.metrics_tls_cert_file.empty();
  addresses.insecure = options.insecure;
  return addresses;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerDaemon>> ServerDaemon::Create(const Options& options) {
  if (options.trainer.empty()) return absl::InvalidArgumentError("trainer must not be empty");
  if (options.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown_grace must be >= 0, got ", absl::FormatDuration(options.shutdown_grace)));
  }
  if (options.max_example_floats < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_example_floats must be >= 1, got ", options.max_example_floats));
  }
  if (options.max_batch >= 1 &&
      options.max_batch > (kMaxMessageBytes - kFramingBytes) / 4 / options.max_example_floats) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch (", options.max_batch, ") x max_example_floats (",
        options.max_example_floats, ") floats make Predict requests larger than gRPC's "
        "limit of ", kMaxMessageBytes, " bytes"));
  }
  CONTRAIL_RETURN_IF_ERROR(UpdateSubscriber::CheckKeepalive(options.keepalive));
  CONTRAIL_RETURN_IF_ERROR(CheckDaemonAddresses(Addresses(options)));
  CONTRAIL_ASSIGN_OR_RETURN(
      std::shared_ptr<grpc::ServerCredentials> credentials,
      MakeServerCredentials(options.tls, options.tls.ca_file.empty()
                                             ? ClientCertificates::kNotRequested
                                             : ClientCertificates::kVerifyIfPresent));
  CONTRAIL_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> trainer_credentials,
                            MakeChannelCredentials(options.tls));
  std::unique_ptr<AccessPolicy> tokens;
  if (!options.tokens_file.empty()) {
    CONTRAIL_ASSIGN_OR_RETURN(tokens, AccessPolicy::FromFile(options.tokens_file));
  }
  CONTRAIL_ASSIGN_OR_RETURN(const std::string trainer_token,
                            ReadTokenFile("trainer_token_file", options.trainer_token_file));
  CONTRAIL_RETURN_IF_ERROR(InferenceServiceImpl::CheckOptions(InferenceOptions(options)));
  CONTRAIL_RETURN_IF_ERROR(PredictBatcher::CheckOptions(BatcherOptions(options)));
  LiveModel::Options live_options;
  live_options.max_batch = options.max_batch;
  live_options.max_spare_versions = options.max_spare_versions;
  live_options.clock = options.clock;
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<LiveModel> live, LiveModel::Create(live_options));
  std::unique_ptr<ServedModelStore> store;
  std::unique_ptr<ServedModelSaver> saver;
  if (!options.state_dir.empty()) {
    ServedModelStore::Options store_options;
    store_options.dir = options.state_dir;
    CONTRAIL_ASSIGN_OR_RETURN(store, ServedModelStore::Create(store_options));
    ServedModelSaver::Options saver_options;
    saver_options.interval = options.save_every;
    saver_options.clock = options.clock;
    CONTRAIL_ASSIGN_OR_RETURN(saver,
                              ServedModelSaver::Create(saver_options, live.get(), store.get()));
    // Served from Start() on, trainer or not; the subscription continues
    // from it.
    if (store->Restore(live.get()).ok()) {
      const std::shared_ptr<const LiveModel::Version> restored = live->Current();
      saver->MarkSaved(restored->run, restored->version);
    }
  }
  std::unique_ptr<UpdateRelay> relay;
  if (options.relay) {
    if (options.relay_max_subscribers < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "relay_max_subscribers must be >= 1, got ", options.relay_max_subscribers));
    }
    // After the restore: the version restored is the first passed on.
    CONTRAIL_ASSIGN_OR_RETURN(relay, UpdateRelay::Create(options.relay_options, live.get()));
  }
  UpdateSubscriber::Options subscriber_options;
  subscriber_options.trainer = options.trainer;
  subscriber_options.name =
      options.name.empty() ? absl::StrCat("server@", options.listen) : options.name;
  subscriber_options.backoff = options.backoff;
  subscriber_options.clock = options.clock;
  subscriber_options.token = trainer_token;
  subscriber_options.applier = relay.get();
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<ServerMetrics> metrics;
  if (!options.metrics_listen.empty()) {
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<ServerMetrics>(registry.get());
    subscriber_options.observer = metrics.get();
  }
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<UpdateSubscriber> subscriber,
      UpdateSubscriber::Create(subscriber_options,
                               UpdateSubscriber::MakeChannel(options.trainer, options.keepalive,
                                                             trainer_credentials),
                               live.get()));
  std::unique_ptr<ServerDaemon> daemon(new ServerDaemon(
      options, std::move(live), std::move(relay), std::move(subscriber), std::move(store),
      std::move(saver),
      std::move(tokens), std::move(credentials), std::move(registry), std::move(metrics)));
  if (!options.metrics_listen.empty()) {
    MonitoringServer::Options monitoring_options;
    monitoring_options.http.listen = options.metrics_listen;
    monitoring_options.http.tls_cert_file = options.metrics_tls_cert_file;
    monitoring_options.http.tls_key_file = options.metrics_tls_key_file;
    ServerDaemon* self = daemon.get();
    MonitoringServer::Sources sources;
    sources.status = [self] { return self->Status(); };
    sources.extra = [self] {
      google::protobuf::Struct extra;
      (*extra.mutable_fields())["freshness_seconds"].set_number_value(
          self->metrics_->last_freshness_seconds());
      return extra;
    };
    sources.collectables = {daemon->registry_.get()};
    CONTRAIL_ASSIGN_OR_RETURN(
        daemon->monitoring_,
        MonitoringServer::Create(monitoring_options, std::move(sources), "metrics_listen"));
    daemon->request_metrics_ =
        std::make_unique<GrpcRequestMetrics>("contrail_server", daemon->registry_.get());
  }
  return daemon;
}

StatusResponse ServerDaemon::Status() {
  StatusResponse status;
  status_service_.Fill(&status);
  return status;
}

int ServerDaemon::metrics_port() const {
  return monitoring_ != nullptr ? monitoring_->port() : 0;
}

int64_t ServerDaemon::MaxPredictRequestBytes(const Options& options) {
  return options.max_batch * options.max_example_floats * 4 + kFramingBytes;
}

ServerDaemon::ServerDaemon(const Options& options, std::unique_ptr<LiveModel> live,
                           std::unique_ptr<UpdateRelay> relay,
                           std::unique_ptr<UpdateSubscriber> subscriber,
                           std::unique_ptr<ServedModelStore> store,
                           std::unique_ptr<ServedModelSaver> saver,
                           std::unique_ptr<AccessPolicy> tokens,
                           std::shared_ptr<grpc::ServerCredentials> credentials,
                           std::shared_ptr<prometheus::Registry> registry,
                           std::unique_ptr<ServerMetrics> metrics)
    : options_(options),
      live_(std::move(live)),
      relay_(std::move(relay)),
      subscriber_(std::move(subscriber)),
      store_(std::move(store)),
      saver_(std::move(saver)),
      tokens_(std::move(tokens)),
      credentials_(std::move(credentials)),
      // metrics, the argument, is not yet moved into metrics_.
      prediction_service_(live_.get(), access(), BatcherOptions(options, metrics.get())),
      update_service_(relay_ == nullptr
                          ? nullptr
                          : std::make_unique<UpdateServiceImpl>(
                                relay_.get(), options.relay_max_subscribers,
                                "--relay_max_subscribers", access())),
      status_service_(live_.get(), subscriber_.get(), &prediction_service_, saver_.get(),
                      update_service_.get(), access()),
      health_service_(HoldsModel(live_.get()), HealthServices()),
      health_probe_service_(HoldsModel(live_.get()), HealthServices()),
      inference_service_(InferenceOptions(options), live_.get(), access(),
                         prediction_service_.mutable_batcher()),
      registry_(std::move(registry)),
      metrics_(std::move(metrics)) {}

ServerDaemon::~ServerDaemon() { Shutdown(); }

absl::Status ServerDaemon::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || shut_down_) {
    return absl::FailedPreconditionError(shut_down_ ? "the server daemon was shut down"
                                                    : "the server daemon already started");
  }
  GrpcServerOptions server_options;
  server_options.max_receive_message_bytes =
      static_cast<int>(MaxPredictRequestBytes(options_));
  server_options.credentials = credentials_;
  if (request_metrics_ != nullptr) {
    server_options.make_interceptors = [this] {
      return request_metrics_->MakeInterceptorFactories();
    };
  }
  std::vector<grpc::Service*> services = {&prediction_service_, &status_service_,
                                          &inference_service_, &health_service_};
  if (update_service_ != nullptr) services.push_back(update_service_.get());
  absl::StatusOr<StartedServer> server =
      StartGrpcServer(options_.listen, services, server_options);
  if (!server.ok()) return server.status();
  if (!options_.health_listen.empty()) {
    absl::StatusOr<StartedServer> health =
        StartHealthServer(options_.health_listen, &health_probe_service_);
    if (!health.ok()) {
      server->server->Shutdown();
      return health.status();
    }
    health_server_ = std::move(health->server);
    spdlog::info("health checks (plaintext) on {} port {}", options_.health_listen, health->port);
  }
  server_ = std::move(server->server);
  port_ = server->port;
  if (monitoring_ != nullptr) {
    if (absl::Status monitoring = monitoring_->Start(); !monitoring.ok()) {
      if (health_server_ != nullptr) health_server_->Shutdown();
      health_server_.reset();
      server_->Shutdown();
      server_.reset();
      port_ = 0;
      return absl::Status(monitoring.code(),
                          absl::StrCat("--metrics_listen: ", monitoring.message()));
    }
    spdlog::info("serving metrics and the status page on port {}", monitoring_->port());
  }
  started_ = true;
  spdlog::info("listening on port {} ({}; {}), following the trainer at {}{}{}", port_,
               options_.tls.enabled() ? "TLS" : "plaintext",
               tokens_ != nullptr ? absl::StrCat(tokens_->size(), " bearer tokens")
                                  : std::string("no tokens"),
               options_.trainer, options_.tls.enabled() ? " over mutual TLS" : "",
               relay_ != nullptr ? ", relaying its updates" : "");
  subscriber_->Start();
  if (saver_ != nullptr) saver_->Start();
  return absl::OkStatus();
}

int ServerDaemon::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

void ServerDaemon::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  if (monitoring_ != nullptr) monitoring_->Shutdown();
  subscriber_->Stop();
  health_service_.Shutdown();
  health_probe_service_.Shutdown();
  if (health_server_ != nullptr) health_server_->Shutdown();
  // The last version applied is on disk before the port closes.
  if (saver_ != nullptr) saver_->Stop();
  // Subscriptions below end now rather than at the grace deadline.
  if (relay_ != nullptr) relay_->Close();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(options_.shutdown_grace));
  const std::shared_ptr<const LiveModel::Version> served = live_->Current();
  spdlog::info("stopped serving version {}", served ? served->version : 0);
}

}  // namespace contrail
