#include "trainer/trainer_daemon.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/replay_source.h"

namespace contrail {
namespace {

constexpr char kReplaySource[] = "replay";
constexpr char kIngestSource[] = "ingest";

}  // namespace

absl::StatusOr<std::unique_ptr<TrainerDaemon>> TrainerDaemon::Create(
    const Options& options) {
  const bool replay = options.source == kReplaySource;
  if (!replay && options.source != kIngestSource) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--source must be replay or ingest, got \"", options.source, "\""));
  }
  if (options.ingest_queue < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ingest_queue must be >= 1, got ", options.ingest_queue));
  }
  TrainingConfig training = options.training;
  // A live stream has no end of its own: the trainer follows it until stopped.
  if (!training.has_stream_examples() && !replay) training.set_stream_examples(0);
  CONTRAIL_ASSIGN_OR_RETURN(TrainingPlan plan, ResolveTrainingConfig(training));
  const TrainingConfig& config = plan.config;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(config.model(), config.seed());
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model: ", model.status().message()));
  }
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> mirror,
                            Model::CreateLike(**model, config.seed()));

  const ModelSpec spec = (*model)->spec();
  std::unique_ptr<TrainerDaemon> daemon(new TrainerDaemon(options, plan));
  std::unique_ptr<ExampleSource> source;
  if (replay) {
    spdlog::info("reading training data from {}", options.data_dir);
    CONTRAIL_ASSIGN_OR_RETURN(LabelledImages data,
                              ReadFashionMnist(options.data_dir, /*train=*/true));
    spdlog::info("read {} examples of {}x{}", data.count, data.rows, data.cols);
    CONTRAIL_ASSIGN_OR_RETURN(
        source, ReplaySource::Create(plan.replay, std::move(data), spec.num_classes()));
  } else {
    auto queue = std::make_unique<IngestQueue>(
        std::vector<int64_t>(spec.input_shape().begin(), spec.input_shape().end()),
        spec.num_classes(), options.ingest_queue);
    daemon->ingest_queue_ = queue.get();
    source = std::move(queue);
  }
  daemon->ingest_service_ =
      std::make_unique<IngestServiceImpl>(daemon->ingest_queue_, options.source);
  UpdatePublisher::Options publisher_options = plan.publisher;
  publisher_options.torchscript_module = (*model)->torchscript_module();
  CONTRAIL_ASSIGN_OR_RETURN(daemon->publisher_,
                            UpdatePublisher::Create(spec, mirror->Views(), publisher_options));
  CONTRAIL_ASSIGN_OR_RETURN(
      daemon->trainer_,
      StreamTrainer::Create(plan.trainer, std::move(source), *std::move(model),
                            std::move(mirror), daemon->publisher_.get()));
  daemon->update_service_ = std::make_unique<UpdateServiceImpl>(daemon->publisher_.get());
  daemon->status_service_ = std::make_unique<TrainerStatusServiceImpl>(
      daemon->trainer_.get(), daemon->publisher_.get(), daemon->update_service_.get());
  return daemon;
}

TrainerDaemon::TrainerDaemon(Options options, TrainingPlan plan)
    : options_(std::move(options)), plan_(std::move(plan)) {}

TrainerDaemon::~TrainerDaemon() { Shutdown(); }

absl::Status TrainerDaemon::Start() {
  CONTRAIL_ASSIGN_OR_RETURN(
      StartedServer started,
      StartGrpcServer(options_.listen, {update_service_.get(), status_service_.get(),
                                        ingest_service_.get()}));
  server_ = std::move(started.server);
  port_ = started.port;
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
  trainer_->Stop();
  // Producers waiting for room in the queue learn that the trainer stopped
  // (the trainer closed it already if it finished).
  if (ingest_queue_ != nullptr) {
    ingest_queue_->Close(absl::UnavailableError("the trainer is shutting down"));
  }
  publisher_->Close();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  spdlog::info("stopped at version {}", publisher_->version());
}

}  // namespace contrail
