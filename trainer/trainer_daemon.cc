#include "trainer/trainer_daemon.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/float_bytes.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/durable_file.h"
#include "trainer/nats_source.h"
#include "trainer/replay_source.h"

namespace contrail {
namespace {

constexpr char kReplaySource[] = "replay";
constexpr char kIngestSource[] = "ingest";
constexpr char kNatsPrefix[] = "nats://";

// Deletes every update log segment in `dir`.
absl::Status RemoveUpdateLogs(const std::string& dir) {
  CONTRAIL_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                            ListFiles(dir, "updates-", ".log"));
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (std::remove(path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot delete ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainerDaemon>> TrainerDaemon::Create(
    const Options& options) {
  const bool replay = options.source == kReplaySource;
  const bool nats = absl::StartsWith(options.source, kNatsPrefix);
  if (!replay && !nats && options.source != kIngestSource) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--source must be replay, ingest or nats://HOST:PORT/STREAM/SUBJECT, got \"",
        options.source, "\""));
  }
  if (options.ingest_queue < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ingest_queue must be >= 1, got ", options.ingest_queue));
  }
  DaemonAddresses addresses;
  addresses.listen = options.listen;
  addresses.tls = options.tls.enabled();
  addresses.health_listen = options.health_listen;
  addresses.metrics_listen = options.metrics_listen;
  addresses.metrics_tls = !options.metrics_tls_cert_file.empty();
  addresses.insecure = options.insecure;
  CONTRAIL_RETURN_IF_ERROR(CheckDaemonAddresses(addresses));
  CONTRAIL_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                            MakeServerCredentials(options.tls, ClientCertificates::kRequired));
  std::unique_ptr<AccessPolicy> tokens;
  if (!options.tokens_file.empty()) {
    CONTRAIL_ASSIGN_OR_RETURN(tokens, AccessPolicy::FromFile(options.tokens_file));
  }
  TrainingConfig training = options.training;
  // A live stream has no end of its own: the trainer follows it until stopped.
  if (!training.has_stream_examples() && !replay) training.set_stream_examples(0);
  CONTRAIL_ASSIGN_OR_RETURN(TrainingPlan plan, ResolveTrainingConfig(training));
  if (options.checkpoint_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--checkpoint_every_s must be > 0");
  }
  // A checkpoint to continue from, and the updates logged after it.
  std::optional<TrainerCheckpoint> resume;
  std::vector<Update> logged;
  if (!options.state_dir.empty()) {
    CONTRAIL_RETURN_IF_ERROR(MakeDirs(options.state_dir));
    absl::StatusOr<TrainerCheckpoint> loaded =
        CheckpointStore(options.state_dir).LoadNewest();
    if (loaded.ok()) {
      resume = *std::move(loaded);
      CONTRAIL_ASSIGN_OR_RETURN(logged,
                                UpdateLog::ReadAfter(options.state_dir, resume->version()));
      plan.replay.start = resume->examples_read();
    } else if (absl::IsNotFound(loaded.status())) {
      // A first start: updates a run left without any checkpoint (it died
      // in initial training) are of no use.
      CONTRAIL_RETURN_IF_ERROR(RemoveUpdateLogs(options.state_dir));
    } else {
      return absl::Status(loaded.status().code(),
                          absl::StrCat(loaded.status().message(),
                                       "; move the state directory away to start afresh"));
    }
  }
  const TrainingConfig& config = plan.config;
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(config.model(), config.seed(), plan.signature);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model: ", model.status().message()));
  }
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> mirror,
                            Model::CreateLike(**model, config.seed()));
  if (resume.has_value()) {
    const ModelSpec& spec = (*model)->spec();
    if (resume->fingerprint() != spec.fingerprint()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the checkpoint in ", options.state_dir, " is of model ", resume->architecture(),
          ", not ", spec.architecture(), "; start with its --model, or move the state "
          "directory away to start afresh"));
    }
    const TensorViews views = mirror->Views();
    if (resume->mirror().tensors_size() != static_cast<int>(views.size())) {
      return absl::DataLossError("the checkpoint's mirror has another number of tensors");
    }
    for (size_t t = 0; t < views.size(); ++t) {
      CONTRAIL_RETURN_IF_ERROR(BytesToFloats(resume->mirror().tensors(t), views[t],
                                             spec.tensors(t).name()));
    }
  }

  const ModelSpec spec = (*model)->spec();
  std::unique_ptr<TrainerDaemon> daemon(new TrainerDaemon(options, plan));
  daemon->credentials_ = std::move(credentials);
  daemon->tokens_ = std::move(tokens);
  if (daemon->tokens_ != nullptr) daemon->access_ = daemon->tokens_.get();
  std::unique_ptr<ExampleSource> source;
  if (replay) {
    spdlog::info("reading training data from {}", options.data_dir);
    CONTRAIL_ASSIGN_OR_RETURN(LabelledImages data,
                              ReadFashionMnist(options.data_dir, /*train=*/true));
    spdlog::info("read {} examples of {}x{}", data.count, data.rows, data.cols);
    CONTRAIL_ASSIGN_OR_RETURN(
        source, ReplaySource::Create(plan.replay, std::move(data), spec.num_classes()));
  } else if (nats) {
    NatsSource::Options nats_options;
    nats_options.url = options.source;
    nats_options.input_shape.assign(spec.input_shape().begin(), spec.input_shape().end());
    nats_options.num_classes = spec.num_classes();
    CONTRAIL_ASSIGN_OR_RETURN(source, NatsSource::Create(nats_options));
  } else {
    auto queue = std::make_unique<IngestQueue>(
        std::vector<int64_t>(spec.input_shape().begin(), spec.input_shape().end()),
        spec.num_classes(), options.ingest_queue);
    daemon->ingest_queue_ = queue.get();
    source = std::move(queue);
  }
  daemon->ingest_service_ =
      std::make_unique<IngestServiceImpl>(daemon->ingest_queue_, options.source, daemon->access_);
  UpdatePublisher::Options publisher_options = plan.publisher;
  publisher_options.torchscript_module = (*model)->torchscript_module();
  StreamTrainer::Options trainer_options = plan.trainer;
  if (!options.state_dir.empty()) {
    daemon->checkpoints_ = std::make_unique<CheckpointStore>(options.state_dir);
    const uint64_t next_version = !logged.empty()  ? logged.back().version() + 1
                                  : resume.has_value() ? resume->version() + 1
                                                       : 2;
    CONTRAIL_ASSIGN_OR_RETURN(daemon->update_log_,
                              UpdateLog::Open(options.state_dir, next_version));
    publisher_options.sink = daemon->update_log_.get();
    if (resume.has_value()) publisher_options.run = resume->run();
    trainer_options.checkpoints = daemon->checkpoints_.get();
    trainer_options.update_log = daemon->update_log_.get();
    trainer_options.checkpoint_every = options.checkpoint_every;
  }
  CONTRAIL_ASSIGN_OR_RETURN(daemon->publisher_,
                            UpdatePublisher::Create(spec, mirror->Views(), publisher_options));
  if (resume.has_value()) {
    CONTRAIL_RETURN_IF_ERROR(
        daemon->publisher_->Resume(resume->version(), resume->mirror_checksum()));
    for (const Update& update : logged) {
      CONTRAIL_RETURN_IF_ERROR(daemon->publisher_->Replay(update));
    }
    spdlog::info("continuing run {:016x} from the checkpoint of version {} in {} and {} "
                 "logged updates: version {}",
                 resume->run(), resume->version(), options.state_dir, logged.size(),
                 daemon->publisher_->version());
  }
  CONTRAIL_ASSIGN_OR_RETURN(
      daemon->trainer_,
      StreamTrainer::Create(trainer_options, std::move(source), *std::move(model),
                            std::move(mirror), daemon->publisher_.get()));
  if (resume.has_value()) CONTRAIL_RETURN_IF_ERROR(daemon->trainer_->Resume(*resume));
  daemon->update_service_ = std::make_unique<UpdateServiceImpl>(
      daemon->publisher_.get(), options.max_subscribers, "--max_subscribers", daemon->access_);
  daemon->status_service_ = std::make_unique<TrainerStatusServiceImpl>(
      daemon->trainer_.get(), daemon->publisher_.get(), daemon->update_service_.get(),
      daemon->access_);
  const std::vector<std::string> services = {UpdateService::service_full_name(),
                                             StatusService::service_full_name(),
                                             IngestService::service_full_name()};
  daemon->health_service_ = std::make_unique<HealthServiceImpl>([] { return true; }, services);
  daemon->health_probe_service_ =
      std::make_unique<HealthServiceImpl>([] { return true; }, services);
  if (!options.metrics_listen.empty()) {
    daemon->registry_ = std::make_shared<prometheus::Registry>();
    daemon->request_metrics_ =
        std::make_unique<GrpcRequestMetrics>("contrail_trainer", daemon->registry_.get());
    daemon->metrics_ = std::make_unique<TrainerMetrics>(
        daemon->trainer_.get(), daemon->publisher_.get(), daemon->update_service_.get());
    MonitoringServer::Options monitoring_options;
    monitoring_options.http.listen = options.metrics_listen;
    monitoring_options.http.tls_cert_file = options.metrics_tls_cert_file;
    monitoring_options.http.tls_key_file = options.metrics_tls_key_file;
    TrainerStatusServiceImpl* status = daemon->status_service_.get();
    const TrainerMetrics* metrics = daemon->metrics_.get();
    MonitoringServer::Sources sources;
    sources.status = [status] {
      StatusResponse response;
      status->Fill(&response);
      return response;
    };
    sources.extra = [metrics] { return metrics->Extra(); };
    sources.collectables = {daemon->registry_.get(), daemon->metrics_.get()};
    CONTRAIL_ASSIGN_OR_RETURN(
        daemon->monitoring_,
        MonitoringServer::Create(monitoring_options, std::move(sources), "--metrics_listen"));
  }
  return daemon;
}

TrainerDaemon::TrainerDaemon(Options options, TrainingPlan plan)
    : options_(std::move(options)), plan_(std::move(plan)) {}

TrainerDaemon::~TrainerDaemon() { Shutdown(); }

absl::Status TrainerDaemon::Start() {
  GrpcServerOptions server_options;
  server_options.credentials = credentials_;
  if (request_metrics_ != nullptr) {
    server_options.make_interceptors = [this] {
      return request_metrics_->MakeInterceptorFactories();
    };
  }
  CONTRAIL_ASSIGN_OR_RETURN(
      StartedServer started,
      StartGrpcServer(options_.listen,
                      {update_service_.get(), status_service_.get(), ingest_service_.get(),
                       health_service_.get()},
                      server_options));
  server_ = std::move(started.server);
  port_ = started.port;
  if (!options_.health_listen.empty()) {
    CONTRAIL_ASSIGN_OR_RETURN(StartedServer health,
                              StartHealthServer(options_.health_listen, health_probe_service_.get()));
    health_server_ = std::move(health.server);
    spdlog::info("health checks (plaintext) on {} port {}", options_.health_listen, health.port);
  }
  spdlog::info("port {}: {}; {}", port_,
               options_.tls.enabled() ? "mutual TLS" : "plaintext",
               tokens_ != nullptr ? absl::StrCat(tokens_->size(), " bearer tokens from ",
                                                 options_.tokens_file)
                                  : std::string("no tokens: every caller may do everything"));
  if (monitoring_ != nullptr) {
    if (absl::Status monitoring = monitoring_->Start(); !monitoring.ok()) {
      server_->Shutdown();
      server_.reset();
      port_ = 0;
      return absl::Status(monitoring.code(),
                          absl::StrCat("--metrics_listen: ", monitoring.message()));
    }
    spdlog::info("serving metrics and the status page on port {}", monitoring_->port());
  }
  const TrainingConfig& config = plan_.config;
  spdlog::info(
      "listening on port {}: source {}, model {} ({} parameters), {} t={} b={} {} lr={} "
      "sparsity={} ratio={} update_values={} deploy_ratio={}",
      port_, options_.source, spec().architecture(), ModelSize(spec()), ConfigEnumName(config.mode()),
      config.trigger_size(), config.batch_size(), ConfigEnumName(config.optimizer()),
      config.lr(), ConfigEnumName(config.sparsity()), config.ratio(),
      ValueEncodingName(config.update_values()), config.deploy_ratio());
  trainer_->Start();
  return absl::OkStatus();
}

void TrainerDaemon::Shutdown() {
  // A daemon whose Create() failed half-way has no trainer or publisher.
  if (shut_down_ || trainer_ == nullptr) return;
  shut_down_ = true;
  if (monitoring_ != nullptr) monitoring_->Shutdown();
  trainer_->Stop();
  // Producers waiting for room in the queue learn that the trainer stopped
  // (the trainer closed it already if it finished).
  if (ingest_queue_ != nullptr) {
    ingest_queue_->Close(absl::UnavailableError("the trainer is shutting down"));
  }
  publisher_->Close();
  if (health_service_ != nullptr) health_service_->Shutdown();
  if (health_probe_service_ != nullptr) health_probe_service_->Shutdown();
  if (health_server_ != nullptr) health_server_->Shutdown();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  spdlog::info("stopped at version {}", publisher_->version());
}

}  // namespace contrail
