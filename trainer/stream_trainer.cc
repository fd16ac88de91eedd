#include "trainer/stream_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/float_bytes.h"
#include "common/model_spec.h"
#include "common/rng_state.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// How often a trainer waiting for examples wakes up to notice Stop().
constexpr absl::Duration kAwaitPollInterval = absl::Milliseconds(100);
// Examples per forward pass when measuring training accuracy.
constexpr int64_t kEvalBatch = 1000;

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<std::unique_ptr<StreamTrainer>> StreamTrainer::Create(
    const Options& options, std::unique_ptr<ExampleSource> source,
    std::unique_ptr<Model> model, std::unique_ptr<Model> served,
    UpdatePublisher* publisher) {
  if (source == nullptr || model == nullptr || publisher == nullptr) {
    return Invalid("the trainer needs a source, a model and a publisher");
  }
  if (options.initial_examples < 0 || options.stream_examples < 0) {
    return Invalid(absl::StrCat(
        "initial_examples and stream_examples must be >= 0, got ",
        options.initial_examples, " and ", options.stream_examples));
  }
  if (absl::Status guard = QualityGuard::Create(options.guard).status(); !guard.ok()) {
    return guard;
  }
  if (options.initial_epochs < 0) {
    return Invalid(absl::StrCat("initial_epochs must be >= 0, got ",
                                options.initial_epochs));
  }
  if (options.batch_size < 1 || options.trigger_size < 1 ||
      options.trigger_size > options.batch_size) {
    return Invalid(absl::StrCat(
        "need 1 <= trigger_size <= batch_size, got trigger_size ",
        options.trigger_size, ", batch_size ", options.batch_size));
  }
  if (!(options.optimizer.lr > 0) || !std::isfinite(options.optimizer.lr)) {
    return Invalid(absl::StrCat("lr must be a positive number, got ",
                                options.optimizer.lr));
  }
  if (options.sparsity.sparsity != Sparsity::kNone &&
      !(options.sparsity.ratio > 0 && options.sparsity.ratio <= 1)) {
    return Invalid(absl::StrCat("ratio must be in (0, 1], got ",
                                options.sparsity.ratio));
  }
  const ModelSpec& spec = model->spec();
  const std::vector<int64_t> input_shape(spec.input_shape().begin(),
                                         spec.input_shape().end());
  if (source->input_shape() != input_shape) {
    return Invalid(absl::StrCat("the source's examples of shape [",
                                absl::StrJoin(source->input_shape(), ", "),
                                "] do not fit model ", spec.architecture(),
                                ", which takes [", absl::StrJoin(input_shape, ", "), "]"));
  }
  if (source->num_classes() > spec.num_classes()) {
    return Invalid(absl::StrCat("the source's labels index ", source->num_classes(),
                                " classes, model ", spec.architecture(), " has ",
                                spec.num_classes()));
  }
  if (options.mode == TrainingMode::kFull &&
      (options.retrain_every < 1 || options.retrain_epochs < 1)) {
    return Invalid(absl::StrCat(
        "retrain_every and retrain_epochs must be >= 1, got ",
        options.retrain_every, " and ", options.retrain_epochs));
  }
  if (options.warmup_updates < 0 || options.curve_every < 1) {
    return Invalid(absl::StrCat(
        "warmup_updates must be >= 0 and curve_every >= 1, got ",
        options.warmup_updates, " and ", options.curve_every));
  }
  if (options.history_size != 0 &&
      (options.history_size < options.initial_examples ||
       options.history_size < options.batch_size)) {
    return Invalid(absl::StrCat("history_size ", options.history_size,
                                " must be 0 (unbounded) or at least initial_examples (",
                                options.initial_examples, ") and batch_size (",
                                options.batch_size, ")"));
  }
  if (options.max_wait < absl::ZeroDuration()) {
    return Invalid(absl::StrCat("max_wait must be >= 0, got ",
                                absl::FormatDuration(options.max_wait)));
  }
  if ((options.checkpoints == nullptr) != (options.update_log == nullptr)) {
    return Invalid("checkpoints need both a checkpoint store and an update log");
  }
  if (options.checkpoints != nullptr && options.device != "cpu") {
    return absl::UnimplementedError(
        "checkpoints (--state_dir) of a model training on a GPU are not supported yet");
  }
  if (served == nullptr || served->spec().fingerprint() != spec.fingerprint()) {
    return Invalid("the served model must be another instance of the trained one");
  }
  // On another device than the CPU, the model trains there and a CPU copy
  // of it, refreshed after each step, is what the deployer reads.
  std::unique_ptr<Model> host;
  if (options.device != "cpu") {
    CONTRAIL_ASSIGN_OR_RETURN(host, Model::CreateLike(*model, options.seed));
    CONTRAIL_RETURN_IF_ERROR(host->CopyFrom(*model));
    CONTRAIL_RETURN_IF_ERROR(model->MoveTo(options.device));
  }
  return std::unique_ptr<StreamTrainer>(
      new StreamTrainer(options, std::move(source), std::move(model), std::move(host),
                        std::move(served), publisher));
}

StreamTrainer::StreamTrainer(const Options& options,
                             std::unique_ptr<ExampleSource> source,
                             std::unique_ptr<Model> model, std::unique_ptr<Model> host,
                             std::unique_ptr<Model> served,
                             UpdatePublisher* publisher)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      publisher_(publisher),
      source_(std::move(source)),
      model_(std::move(model)),
      host_(std::move(host)),
      served_(std::move(served)),
      history_(source_->input_shape(), options.history_size),
      step_(std::make_unique<SgdStep>(model_.get(), options.optimizer,
                                      options.sparsity)),
      deployer_(Deployer::Options{options.warmup_updates, options.guard,
                                  options.overlap_publishing},
                publisher),
      sampler_(options.seed),
      rng_(options.seed) {}

StreamTrainer::~StreamTrainer() {
  Stop();
  if (checkpoint_writer_.joinable()) checkpoint_writer_.join();
}

absl::Status StreamTrainer::Resume(const TrainerCheckpoint& checkpoint) {
  const ModelSpec& spec = model_->spec();
  if (checkpoint.fingerprint() != spec.fingerprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the checkpoint is of model ", checkpoint.architecture(), ", not ",
        spec.architecture(), " (fingerprints differ)"));
  }
  const TensorViews views = model_->Views();
  if (checkpoint.model().tensors_size() != static_cast<int>(views.size())) {
    return absl::DataLossError("the checkpoint's model has another number of tensors");
  }
  for (size_t t = 0; t < views.size(); ++t) {
    CONTRAIL_RETURN_IF_ERROR(
        BytesToFloats(checkpoint.model().tensors(t), views[t], spec.tensors(t).name()));
  }
  if (model_->Checksum() != checkpoint.model_checksum()) {
    return absl::DataLossError("the checkpoint's model does not match its checksum");
  }
  CONTRAIL_RETURN_IF_ERROR(step_->RestoreState(checkpoint.optimizer(), checkpoint.selector()));
  CONTRAIL_RETURN_IF_ERROR(sampler_.RestoreState(checkpoint.sampler_rng()));
  CONTRAIL_RETURN_IF_ERROR(RestoreRng(checkpoint.epoch_rng(), "epochs", &rng_));
  CONTRAIL_RETURN_IF_ERROR(history_.RestoreState(checkpoint.history()));
  if (history_.end() != checkpoint.examples_read()) {
    return absl::DataLossError(absl::StrCat("the checkpoint's history ends at example ",
                                            history_.end(), ", its stream at ",
                                            checkpoint.examples_read()));
  }
  deployer_.RestoreState(checkpoint.deployer());
  checksum_ = checkpoint.model_checksum();
  read_ = trained_ = checkpoint.examples_read();
  const ProgressState& progress = checkpoint.progress();
  next_curve_ = progress.next_curve();
  next_retrain_ = progress.next_retrain();
  durable_version_ = checkpoint.version();
  resumed_ = true;
  absl::MutexLock lock(&mu_);
  stats_.resumed = true;
  stats_.examples_seen = progress.examples_seen();
  stats_.correct = progress.correct();
  stats_.served_correct = progress.served_correct();
  stats_.steps = progress.steps();
  stats_.retrains = progress.retrains();
  stats_.skipped_steps = progress.skipped_steps();
  stats_.partial_steps = progress.partial_steps();
  stats_.last_loss = progress.last_loss();
  stats_.stream_time = absl::Seconds(progress.stream_seconds());
  stats_.curve.clear();
  for (const CurvePointState& point : progress.curve()) {
    stats_.curve.push_back(
        {point.examples(), point.trainer_accuracy(), point.served_accuracy()});
  }
  stats_.examples_read = read_;
  stats_.examples_trained = trained_;
  stats_.trainer_checksum = checksum_;
  stats_.updates_published = publisher_->version();
  stats_.entries_published = checkpoint.deployer().entries();
  stats_.payload_bytes_published = checkpoint.deployer().payload_bytes();
  stats_.checkpoint_version = checkpoint.version();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TrainerCheckpoint>> StreamTrainer::Capture() {
  auto checkpoint = std::make_unique<TrainerCheckpoint>();
  const ModelSpec& spec = model_->spec();
  checkpoint->set_run(publisher_->run());
  checkpoint->set_version(publisher_->version());
  checkpoint->set_fingerprint(spec.fingerprint());
  checkpoint->set_architecture(spec.architecture());
  checkpoint->set_mirror_checksum(publisher_->mirror_checksum());
  // Only the training thread writes the mirror (through the publisher).
  for (const absl::Span<const float> t : AsConst(served_->Views())) {
    checkpoint->mutable_mirror()->add_tensors(FloatsToBytes(t));
  }
  for (const absl::Span<const float> t : Trained()) {
    checkpoint->mutable_model()->add_tensors(FloatsToBytes(t));
  }
  checkpoint->set_model_checksum(checksum_);
  CONTRAIL_RETURN_IF_ERROR(
      step_->SaveState(checkpoint->mutable_optimizer(), checkpoint->mutable_selector()));
  checkpoint->set_sampler_rng(sampler_.SaveState());
  checkpoint->set_epoch_rng(RngState(rng_));
  history_.SaveState(checkpoint->mutable_history());
  deployer_.SaveState(checkpoint->mutable_deployer());
  checkpoint->set_examples_read(trained_);
  checkpoint->set_source(source_->name());
  checkpoint->set_created_unix_micros(absl::ToUnixMicros(absl::Now()));
  ProgressState* progress = checkpoint->mutable_progress();
  progress->set_next_curve(next_curve_);
  progress->set_next_retrain(next_retrain_);
  absl::MutexLock lock(&mu_);
  progress->set_examples_seen(stats_.examples_seen);
  progress->set_correct(stats_.correct);
  progress->set_served_correct(stats_.served_correct);
  progress->set_steps(stats_.steps);
  progress->set_retrains(stats_.retrains);
  progress->set_skipped_steps(stats_.skipped_steps);
  progress->set_partial_steps(stats_.partial_steps);
  progress->set_last_loss(stats_.last_loss);
  progress->set_stream_seconds(absl::ToDoubleSeconds(stats_.stream_time));
  for (const CurvePoint& point : stats_.curve) {
    CurvePointState* state = progress->add_curve();
    state->set_examples(point.examples);
    state->set_trainer_accuracy(point.trainer_accuracy);
    state->set_served_accuracy(point.served_accuracy);
  }
  return checkpoint;
}

absl::Status StreamTrainer::AfterCheckpoint() {
  if (!checkpoint_done_.exchange(false)) return absl::OkStatus();
  if (checkpoint_writer_.joinable()) checkpoint_writer_.join();
  if (!checkpoint_status_.ok()) {
    // The previous checkpoint and the log still cover everything; try
    // again at the next one.
    spdlog::error("checkpoint of version {} failed: {}", writing_version_,
                  checkpoint_status_.ToString());
    return absl::OkStatus();
  }
  previous_version_ = durable_version_;
  durable_version_ = writing_version_;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.checkpoints;
    stats_.checkpoint_version = durable_version_;
  }
  if (previous_version_ > 0) {
    CONTRAIL_RETURN_IF_ERROR(options_.update_log->DropThrough(previous_version_));
  }
  // The examples the checkpoint covers need never be read again.
  return source_->Commit(writing_read_);
}

absl::Status StreamTrainer::MaybeCheckpoint(bool now, bool wait) {
  if (options_.checkpoints == nullptr) return absl::OkStatus();
  CONTRAIL_RETURN_IF_ERROR(AfterCheckpoint());
  if (!now && clock_->Now() < next_checkpoint_) return absl::OkStatus();
  if (checkpoint_writer_.joinable()) {
    if (!wait) return absl::OkStatus();  // the last one is still being written
    checkpoint_writer_.join();
    CONTRAIL_RETURN_IF_ERROR(AfterCheckpoint());
  }
  // The checkpoint's version and mirror include the update in flight.
  CONTRAIL_RETURN_IF_ERROR(deployer_.Drain());
  const absl::Time start = clock_->Now();
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<TrainerCheckpoint> checkpoint, Capture());
  // Updates after it go to a new segment of the log.
  CONTRAIL_RETURN_IF_ERROR(options_.update_log->Rotate(checkpoint->version() + 1));
  const absl::Time captured = clock_->Now();
  next_checkpoint_ = captured + options_.checkpoint_every;
  writing_version_ = checkpoint->version();
  writing_read_ = checkpoint->examples_read();
  {
    absl::MutexLock lock(&mu_);
    stats_.checkpoint_capture = captured - start;
    stats_.checkpoint_time = captured;
  }
  checkpoint_done_ = false;
  if (wait) {
    WriteCheckpoint(*checkpoint);
    return AfterCheckpoint();
  }
  checkpoint_writer_ = std::thread(
      [this, checkpoint = std::move(checkpoint)] { WriteCheckpoint(*checkpoint); });
  return absl::OkStatus();
}

void StreamTrainer::WriteCheckpoint(const TrainerCheckpoint& checkpoint) {
  const absl::Time begin = absl::Now();
  checkpoint_status_ = options_.checkpoints->Write(checkpoint);
  const absl::Duration took = absl::Now() - begin;
  {
    absl::MutexLock lock(&mu_);
    stats_.checkpoint_write = took;
  }
  if (checkpoint_status_.ok()) {
    spdlog::info("checkpoint of version {} ({} examples trained, {:.1f} MB) written in {:.0f} ms",
                 checkpoint.version(), checkpoint.examples_read(),
                 checkpoint.ByteSizeLong() / 1e6, absl::ToDoubleMilliseconds(took));
  }
  checkpoint_done_ = true;
}

void StreamTrainer::Start() { thread_ = std::thread([this] { Run(); }); }

void StreamTrainer::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::Status StreamTrainer::WaitUntilFinished(absl::Duration timeout) {
  if (!finished_.WaitForNotificationWithTimeout(timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "training has not finished after ", absl::FormatDuration(timeout)));
  }
  absl::MutexLock lock(&mu_);
  return stats_.outcome;
}

StreamTrainer::Stats StreamTrainer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void StreamTrainer::SetPhase(Phase phase) {
  absl::MutexLock lock(&mu_);
  stats_.phase = phase;
}

absl::Status StreamTrainer::Interrupted() const {
  if (!stop_.HasBeenNotified()) return absl::OkStatus();
  return absl::CancelledError("training was stopped before the stream ended");
}

void StreamTrainer::Run() {
  absl::Status outcome;
  // The LibTorch calls below report errors as Status; this is the last
  // line of defence, so that no exception ends the process.
  try {
    outcome = TrainAndDeploy();
  } catch (const c10::Error& e) {
    outcome = absl::InternalError(
        absl::StrCat("LibTorch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    outcome = absl::InternalError(e.what());
  }
  // The update in flight goes out (or fails) before training ends.
  if (const absl::Status drained = deployer_.Drain();
      !drained.ok() && (outcome.ok() || absl::IsCancelled(outcome))) {
    outcome = drained;
  }
  RecordDeployed();
  if (!outcome.ok() && !absl::IsCancelled(outcome)) {
    spdlog::error("training failed: {}", outcome.ToString());
  }
  // A last checkpoint when training ended between arrivals (not on a
  // failure, whose state may be half-updated).
  if (options_.checkpoints != nullptr) {
    absl::Status last = absl::OkStatus();
    if (consistent_ && (outcome.ok() || absl::IsCancelled(outcome))) {
      last = MaybeCheckpoint(/*now=*/true, /*wait=*/true);
    } else if (checkpoint_writer_.joinable()) {
      checkpoint_writer_.join();
      last = AfterCheckpoint();
    }
    if (!last.ok()) spdlog::error("the final checkpoint failed: {}", last.ToString());
  }
  // Producers learn that nothing more will be trained; what is still queued
  // stays counted in GetStatus.
  source_->Close(outcome.ok() ? absl::FailedPreconditionError(
                                    "the trainer finished its stream and takes no "
                                    "more examples")
                 : absl::IsCancelled(outcome)
                     ? absl::UnavailableError("the trainer is shutting down")
                     : absl::FailedPreconditionError(absl::StrCat(
                           "training failed: ", outcome.message())));
  const SourceCounters left = source_->counters();
  if (left.queued > 0 || read_ > stats().examples_trained) {
    spdlog::warn("{} accepted examples were not trained: {} still queued, {} read",
                 left.queued + read_ - stats().examples_trained, left.queued,
                 read_ - stats().examples_trained);
  }
  {
    absl::MutexLock lock(&mu_);
    stats_.outcome = outcome;
    stats_.phase = outcome.ok()                 ? DONE
                   : absl::IsCancelled(outcome) ? STOPPED
                                                : FAILED;
  }
  finished_.Notify();
}

ConstTensorViews StreamTrainer::Trained() {
  if (host_ == nullptr) return AsConst(model_->Views());
  if (host_stale_) {
    // Same fingerprint, so this cannot fail; the copy crosses devices.
    host_->CopyFrom(*model_).IgnoreError();
    host_stale_ = false;
  }
  return AsConst(host_->Views());
}

absl::Status StreamTrainer::TrainAndDeploy() {
  if (resumed_) {
    consistent_ = true;
    spdlog::info("resumed version {} of run {:016x}: {} examples trained, {} streamed",
                 publisher_->version(), publisher_->run(), trained_, stats().examples_seen);
    next_checkpoint_ = clock_->Now() + options_.checkpoint_every;
  } else {
    CONTRAIL_RETURN_IF_ERROR(InitialTraining());
  }
  return Stream();
}

absl::StatusOr<bool> StreamTrainer::AwaitExamples(int64_t count, absl::Duration max_wait,
                                                  Examples* fresh) {
  fresh->clear();
  // When the first of them arrived, for max_wait.
  std::optional<absl::Time> first_arrival;
  while (fresh->count() < count) {
    CONTRAIL_RETURN_IF_ERROR(Interrupted());
    const absl::Time now = clock_->Now();
    if (first_arrival.has_value() && max_wait > absl::ZeroDuration() &&
        now >= *first_arrival + max_wait) {
      return false;
    }
    // While examples are awaited, the update in flight is finished and
    // what the deploy budget held back goes out an update at a time;
    // otherwise wait, waking up to notice Stop().
    const bool publishing = deployer_.publishing();
    const bool held_back = !publishing && deployer_.has_held_back();
    absl::Time deadline = publishing || held_back ? now : now + kAwaitPollInterval;
    if (first_arrival.has_value() && max_wait > absl::ZeroDuration()) {
      deadline = std::min(deadline, *first_arrival + max_wait);
    }
    CONTRAIL_ASSIGN_OR_RETURN(const ExampleSource::ReadResult read,
                              source_->Read(count - fresh->count(), deadline, fresh));
    if (read.count > 0) {
      read_ += read.count;
      absl::MutexLock lock(&mu_);
      stats_.examples_read = read_;
    }
    if (read.count > 0 && !first_arrival.has_value()) first_arrival = clock_->Now();
    if (read.end_of_stream) return true;
    if (read.count == 0 && publishing) {
      CONTRAIL_RETURN_IF_ERROR(deployer_.Drain());
      RecordDeployed();
    } else if (read.count == 0 && held_back) {
      CONTRAIL_RETURN_IF_ERROR(deployer_.SendHeldBack(Trained()));
    }
  }
  return false;
}

absl::Status StreamTrainer::CommitTrained() {
  trained_ = read_;
  {
    absl::MutexLock lock(&mu_);
    stats_.examples_trained = trained_;
  }
  if (options_.checkpoints != nullptr) return absl::OkStatus();
  return source_->Commit(trained_);
}

absl::StatusOr<double> StreamTrainer::TrainStep(const std::vector<int64_t>& batch,
                                                bool sparse) {
  const auto [inputs, labels] = history_.Gather(batch);
  CONTRAIL_ASSIGN_OR_RETURN(const double loss, step_->Run(inputs, labels, sparse));
  host_stale_ = true;
  if (!std::isfinite(loss)) {
    absl::MutexLock lock(&mu_);
    ++stats_.skipped_steps;
  }
  return loss;
}

absl::StatusOr<int64_t> StreamTrainer::CountCorrect(Model& model, int64_t begin,
                                                    int64_t end) {
  model.SetTraining(false);
  CONTRAIL_ASSIGN_OR_RETURN(
      const Model::Predictions predictions,
      model.Predict(history_.BatchShape(begin, end), history_.Inputs(begin, end)));
  return contrail::CountCorrect(predictions, history_.Labels(begin, end));
}

absl::Status StreamTrainer::TrainEpochs(int64_t first, int64_t last, int epochs,
                                        const std::string& what) {
  const int64_t n = last - first;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), first);
  const absl::Time start = clock_->Now();
  for (int epoch = 1; epoch <= epochs && n > 0; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng_);
    double loss_sum = 0;
    int64_t steps = 0;
    for (int64_t begin = 0; begin < n; begin += options_.batch_size) {
      CONTRAIL_RETURN_IF_ERROR(Interrupted());
      const int64_t end = std::min(n, begin + options_.batch_size);
      CONTRAIL_ASSIGN_OR_RETURN(
          const double loss,
          TrainStep(std::vector<int64_t>(order.begin() + begin, order.begin() + end),
                    /*sparse=*/false));
      if (std::isfinite(loss)) {
        loss_sum += loss;
        ++steps;
      }
    }
    int64_t correct = 0;
    for (int64_t begin = first; begin < last; begin += kEvalBatch) {
      CONTRAIL_ASSIGN_OR_RETURN(
          const int64_t batch_correct,
          CountCorrect(*model_, begin, std::min(last, begin + kEvalBatch)));
      correct += batch_correct;
    }
    spdlog::info("{}: epoch {}/{} on {} examples, mean loss {:.4f}, "
                 "training accuracy {:.4f}, {:.1f} s",
                 what, epoch, epochs, n, steps ? loss_sum / steps : 0.0,
                 static_cast<double>(correct) / n,
                 absl::ToDoubleSeconds(clock_->Now() - start));
  }
  return absl::OkStatus();
}

absl::Status StreamTrainer::InitialTraining() {
  SetPhase(INITIAL_TRAINING);
  Examples initial;
  CONTRAIL_ASSIGN_OR_RETURN(
      const bool ended,
      AwaitExamples(options_.initial_examples, absl::ZeroDuration(), &initial));
  if (ended && initial.count() < options_.initial_examples) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the source ended after ", initial.count(), " of the ",
        options_.initial_examples, " initial examples"));
  }
  history_.Append(initial);
  // The model's input normalisation learns the initial data's statistics.
  CONTRAIL_RETURN_IF_ERROR(model_->FitInputNormalization(
      history_.Inputs(history_.first(), history_.end()), history_.end() - history_.first()));
  host_stale_ = true;
  CONTRAIL_RETURN_IF_ERROR(TrainEpochs(history_.first(), history_.end(),
                                       options_.initial_epochs, "initial training"));
  deployer_.Start(Trained());
  CONTRAIL_RETURN_IF_ERROR(CommitTrained());
  checksum_ = host_ != nullptr ? host_->Checksum() : model_->Checksum();
  {
    absl::MutexLock lock(&mu_);
    stats_.trainer_checksum = checksum_;
    stats_.updates_published = deployer_.counters().version;
  }
  spdlog::info("deployed the initial model as version 1 (checksum {:016x})",
               checksum_);
  consistent_ = true;
  // A restart from here continues this run, and servers keep version 1.
  return MaybeCheckpoint(/*now=*/true, /*wait=*/true);
}

absl::Status StreamTrainer::Retrain(int64_t end) {
  int64_t round;
  {
    absl::MutexLock lock(&mu_);
    round = stats_.retrains + 1;
  }
  // Fresh weights and a fresh optimizer, as retraining from scratch does.
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> fresh,
                            Model::CreateLike(*model_, options_.seed + round));
  CONTRAIL_RETURN_IF_ERROR(model_->CopyFrom(*fresh));
  CONTRAIL_RETURN_IF_ERROR(model_->FitInputNormalization(
      history_.Inputs(history_.first(), end), end - history_.first()));
  host_stale_ = true;
  step_ = std::make_unique<SgdStep>(model_.get(), options_.optimizer,
                                    options_.sparsity);
  CONTRAIL_RETURN_IF_ERROR(TrainEpochs(history_.first(), end, options_.retrain_epochs,
                                       absl::StrCat("full retraining ", round)));
  absl::MutexLock lock(&mu_);
  stats_.retrains = round;
  return absl::OkStatus();
}

absl::Status StreamTrainer::TestServed(int64_t begin, int64_t end, Prequential* tested) {
  CONTRAIL_RETURN_IF_ERROR(deployer_.Drain());
  // The served model gives the trainer's answers, without a second forward
  // pass, when the two were identical before the step (checksum_ is the
  // trainer's as it tested the arrival).
  tested->served_correct = tested->correct;
  if (publisher_->mirror_checksum() != checksum_) {
    CONTRAIL_ASSIGN_OR_RETURN(tested->served_correct, CountCorrect(*served_, begin, end));
  }
  // The guard sees the test before the step's update: it may hold or roll
  // back what that update would deploy.
  return deployer_.Observe(end - begin, tested->correct, tested->served_correct);
}

absl::StatusOr<double> StreamTrainer::TrainOnArrival(int64_t begin, int64_t end,
                                                     Prequential* tested,
                                                     int64_t* next_retrain) {
  const int64_t first = options_.initial_examples;
  if (options_.mode == TrainingMode::kFull) {
    CONTRAIL_RETURN_IF_ERROR(TestServed(begin, end, tested));
    // The deployed model stays until the next retraining finishes.
    if (end - first >= *next_retrain) {
      *next_retrain += options_.retrain_every;
      CONTRAIL_RETURN_IF_ERROR(Retrain(end));
      CONTRAIL_RETURN_IF_ERROR(deployer_.Flush(Trained()));
    }
    return std::nan("");
  }
  std::vector<int64_t> fresh(end - begin);
  std::iota(fresh.begin(), fresh.end(), begin);
  CONTRAIL_ASSIGN_OR_RETURN(
      const double loss,
      TrainStep(sampler_.FormBatch(fresh, history_.first(), /*history_end=*/begin,
                                   options_.batch_size),
                /*sparse=*/true));
  // Only now does this arrival's served test wait for the last update: its
  // publishing overlapped with the step (which changes the trainer's model,
  // never the mirror).
  CONTRAIL_RETURN_IF_ERROR(TestServed(begin, end, tested));
  CONTRAIL_RETURN_IF_ERROR(deployer_.AfterStep(Trained()));
  return loss;
}

void StreamTrainer::RecordDeployed() {
  const Deployer::Counters& deployed = deployer_.counters();
  absl::MutexLock lock(&mu_);
  stats_.updates_published = deployed.version;
  stats_.entries_published = deployed.entries;
  stats_.payload_bytes_published = deployed.payload_bytes;
}

void StreamTrainer::RecordArrival(int64_t count, const Prequential& tested, double loss,
                                  int64_t steps, bool last) {
  RecordDeployed();
  Stats snapshot;
  {
    absl::MutexLock lock(&mu_);
    stats_.examples_seen += count;
    stats_.correct += tested.correct;
    stats_.served_correct += tested.served_correct;
    stats_.steps = steps;
    stats_.trainer_checksum = checksum_;
    if (std::isfinite(loss)) stats_.last_loss = loss;
    stats_.stream_time = clock_->Now() - stream_start_;
    const QualityGuard& guard = deployer_.guard();
    stats_.guard_state = guard.state();
    stats_.trainer_window_accuracy = guard.trainer_accuracy();
    stats_.served_window_accuracy = guard.served_accuracy();
    stats_.best_served_window_accuracy = guard.best_served_accuracy();
    stats_.guard_holds = guard.holds();
    stats_.guard_rollbacks = guard.rollbacks();
    stats_.guard_good_version = deployer_.good_version();
    if (stats_.examples_seen >= next_curve_ || last) {
      while (next_curve_ <= stats_.examples_seen) next_curve_ += options_.curve_every;
      stats_.curve.push_back({stats_.examples_seen, stats_.prequential_accuracy(),
                              stats_.served_prequential_accuracy(),
                              stats_.trainer_window_accuracy, stats_.served_window_accuracy});
    }
    snapshot = stats_;
  }
  if (clock_->Now() < next_log_ && !last) return;
  next_log_ = clock_->Now() + options_.log_interval;
  const int64_t model_size = ModelSize(model_->spec());
  const uint64_t updates = snapshot.updates_published - 1;
  const double entries = updates ? double(snapshot.entries_published) / updates : 0;
  const double bytes = updates ? double(snapshot.payload_bytes_published) / updates : 0;
  spdlog::info(
      "{}stream {}{} examples, prequential accuracy {:.4f} (served "
      "{:.4f}), loss {:.4f}, version {}, {:.1f} entries/update ({:.3f}% "
      "of {}), {:.0f} B/update vs {} B dense, {:.1f} s",
      last ? "finished: " : "", snapshot.examples_seen,
      options_.stream_examples > 0 ? absl::StrCat("/", options_.stream_examples) : "",
      snapshot.prequential_accuracy(), snapshot.served_prequential_accuracy(),
      snapshot.last_loss, snapshot.updates_published, entries,
      100.0 * entries / model_size, model_size, bytes, model_size * sizeof(float),
      absl::ToDoubleSeconds(snapshot.stream_time));
}

absl::Status StreamTrainer::Stream() {
  SetPhase(STREAMING);
  const int64_t trigger = options_.mode == TrainingMode::kOnline
                              ? options_.batch_size
                              : options_.trigger_size;
  const int64_t limit = options_.stream_examples;
  stream_start_ = clock_->Now();
  next_log_ = stream_start_ + options_.log_interval;
  int64_t steps = 0;
  int64_t streamed = 0;
  if (resumed_) {
    const Stats restored = stats();
    steps = restored.steps;
    streamed = restored.examples_seen;
    stream_start_ -= restored.stream_time;
  } else {
    next_curve_ = options_.curve_every;
    next_retrain_ = options_.retrain_every;
  }
  Examples fresh;
  // A checkpoint taken at the end of the stream resumes finished.
  bool last = limit > 0 && streamed >= limit;
  while (!last) {
    const int64_t wanted = limit > 0 ? std::min(trigger, limit - streamed) : trigger;
    CONTRAIL_ASSIGN_OR_RETURN(const bool ended,
                              AwaitExamples(wanted, options_.max_wait, &fresh));
    streamed += fresh.count();
    last = ended || (limit > 0 && streamed >= limit);
    double loss = std::nan("");
    Prequential tested;
    if (fresh.count() > 0) {
      consistent_ = false;
      const int64_t begin = history_.end();
      history_.Append(fresh);
      const int64_t end = history_.end();
      // Prequential: test on the new examples before training on them (the
      // served model's test follows in TrainOnArrival()).
      CONTRAIL_ASSIGN_OR_RETURN(tested.correct, CountCorrect(*model_, begin, end));
      CONTRAIL_ASSIGN_OR_RETURN(loss, TrainOnArrival(begin, end, &tested, &next_retrain_));
      if (options_.mode != TrainingMode::kFull) ++steps;
      if (fresh.count() < wanted && !ended) {
        absl::MutexLock lock(&mu_);
        ++stats_.partial_steps;
      }
    }
    // The end of the stream deploys whatever is still held back.
    if (last) CONTRAIL_RETURN_IF_ERROR(deployer_.Flush(Trained()));
    checksum_ = host_ != nullptr ? host_->Checksum() : model_->Checksum();
    CONTRAIL_RETURN_IF_ERROR(CommitTrained());
    RecordArrival(fresh.count(), tested, loss, steps, last);
    consistent_ = true;
    CONTRAIL_RETURN_IF_ERROR(MaybeCheckpoint(/*now=*/false, /*wait=*/false));
  }
  return absl::OkStatus();
}

}  // namespace contrail
