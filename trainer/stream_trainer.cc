#include "trainer/stream_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<TrainingMode> ParseTrainingMode(absl::string_view name) {
  if (name == "proactive") return TrainingMode::kProactive;
  if (name == "online") return TrainingMode::kOnline;
  if (name == "full") return TrainingMode::kFull;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown mode \"", name, "\"; expected proactive, online or full"));
}

std::string TrainingModeName(TrainingMode mode) {
  switch (mode) {
    case TrainingMode::kProactive:
      return "proactive";
    case TrainingMode::kOnline:
      return "online";
    case TrainingMode::kFull:
      return "full";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<StreamTrainer>> StreamTrainer::Create(
    const Options& options, LabelledImages data, std::unique_ptr<Model> model,
    std::unique_ptr<Model> served, UpdatePublisher* publisher) {
  if (options.initial_examples < 0 || options.stream_examples < 1) {
    return Invalid(absl::StrCat(
        "--initial_examples must be >= 0 and --stream_examples >= 1, got ",
        options.initial_examples, " and ", options.stream_examples));
  }
  if (options.initial_examples + options.stream_examples > data.count) {
    return Invalid(absl::StrCat(
        "--initial_examples + --stream_examples = ",
        options.initial_examples + options.stream_examples,
        " but the training data has only ", data.count, " examples"));
  }
  if (options.initial_epochs < 0) {
    return Invalid(absl::StrCat("--initial_epochs must be >= 0, got ",
                                options.initial_epochs));
  }
  if (options.batch_size < 1 || options.trigger_size < 1 ||
      options.trigger_size > options.batch_size) {
    return Invalid(absl::StrCat(
        "need 1 <= --trigger_size <= --batch_size, got trigger_size ",
        options.trigger_size, ", batch_size ", options.batch_size));
  }
  if (!(options.optimizer.lr > 0) || !std::isfinite(options.optimizer.lr)) {
    return Invalid(absl::StrCat("--lr must be a positive number, got ",
                                options.optimizer.lr));
  }
  if (options.sparsity.sparsity != Sparsity::kNone &&
      !(options.sparsity.ratio > 0 && options.sparsity.ratio <= 1)) {
    return Invalid(absl::StrCat("--ratio must be in (0, 1], got ",
                                options.sparsity.ratio));
  }
  if (!(options.replay_rate >= 0) || !std::isfinite(options.replay_rate)) {
    return Invalid(absl::StrCat("--replay_rate must be >= 0, got ",
                                options.replay_rate));
  }
  const std::vector<int64_t>& input_shape = {model->spec().input_shape().begin(),
                                             model->spec().input_shape().end()};
  if (input_shape.size() != 3 || input_shape[0] != 1 ||
      input_shape[1] != data.rows || input_shape[2] != data.cols) {
    return Invalid(absl::StrCat("the data's ", data.rows, "x", data.cols,
                                " images do not fit model ",
                                model->spec().architecture()));
  }
  for (int32_t label : data.labels) {
    if (label < 0 || label >= model->spec().num_classes()) {
      return Invalid(absl::StrCat("label ", label, " is outside the model's ",
                                  model->spec().num_classes(), " classes"));
    }
  }
  if (options.mode == TrainingMode::kFull &&
      (options.retrain_every < 1 || options.retrain_epochs < 1)) {
    return Invalid(absl::StrCat(
        "--retrain_every and --retrain_epochs must be >= 1, got ",
        options.retrain_every, " and ", options.retrain_epochs));
  }
  if (options.warmup_updates < 0 || options.drift_at < 0 || options.curve_every < 1) {
    return Invalid(absl::StrCat(
        "--warmup_updates and --drift_at must be >= 0 and curve_every >= 1, got ",
        options.warmup_updates, ", ", options.drift_at, " and ", options.curve_every));
  }
  if (served == nullptr ||
      served->spec().fingerprint() != model->spec().fingerprint()) {
    return Invalid("the served model must be another instance of the trained one");
  }
  const absl::Status drifted =
      ApplyDrift(options.drift, options.initial_examples + options.drift_at,
                 options.seed, model->spec().num_classes(), &data);
  if (!drifted.ok()) return drifted;
  return std::unique_ptr<StreamTrainer>(new StreamTrainer(
      options, std::move(data), std::move(model), std::move(served), publisher));
}

StreamTrainer::StreamTrainer(const Options& options, LabelledImages data,
                             std::unique_ptr<Model> model,
                             std::unique_ptr<Model> served,
                             UpdatePublisher* publisher)
    : options_(options),
      data_(std::move(data)),
      publisher_(publisher),
      model_(std::move(model)),
      served_(std::move(served)),
      step_(std::make_unique<SgdStep>(model_.get(), options.optimizer,
                                      options.sparsity)),
      sampler_(options.seed),
      rng_(options.seed) {
  images_ = torch::from_blob(const_cast<float*>(data_.pixels.data()),
                             {data_.count, 1, data_.rows, data_.cols},
                             torch::kFloat);
  labels_ = torch::tensor(std::vector<int64_t>(data_.labels.begin(),
                                               data_.labels.end()),
                          torch::kLong);
}

StreamTrainer::~StreamTrainer() { Stop(); }

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
  if (!outcome.ok() && !absl::IsCancelled(outcome)) {
    spdlog::error("training failed: {}", outcome.ToString());
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

absl::Status StreamTrainer::TrainAndDeploy() {
  CONTRAIL_RETURN_IF_ERROR(InitialTraining());
  return Stream();
}

absl::StatusOr<double> StreamTrainer::TrainStep(const std::vector<int64_t>& batch,
                                                bool sparse) {
  const torch::Tensor index = torch::tensor(batch, torch::kLong);
  CONTRAIL_ASSIGN_OR_RETURN(
      const double loss,
      step_->Run(images_.index_select(0, index), labels_.index_select(0, index), sparse));
  if (!std::isfinite(loss)) {
    absl::MutexLock lock(&mu_);
    ++stats_.skipped_steps;
  }
  return loss;
}

absl::StatusOr<int64_t> StreamTrainer::CountCorrect(Model& model, int64_t begin,
                                                    int64_t end) {
  c10::InferenceMode inference;
  model.SetTraining(false);
  const torch::Tensor logits = model.Forward(images_.slice(0, begin, end));
  return logits.argmax(1).eq(labels_.slice(0, begin, end)).sum().item<int64_t>();
}

absl::Status StreamTrainer::TrainEpochs(int64_t n, int epochs, const std::string& what) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  const absl::Time start = absl::Now();
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
    for (int64_t begin = 0; begin < n; begin += 1000) {
      CONTRAIL_ASSIGN_OR_RETURN(const int64_t batch_correct,
                                CountCorrect(*model_, begin, std::min(n, begin + 1000)));
      correct += batch_correct;
    }
    spdlog::info("{}: epoch {}/{} on {} examples, mean loss {:.4f}, "
                 "training accuracy {:.4f}, {:.1f} s",
                 what, epoch, epochs, n, steps ? loss_sum / steps : 0.0,
                 static_cast<double>(correct) / n,
                 absl::ToDoubleSeconds(absl::Now() - start));
  }
  return absl::OkStatus();
}

absl::Status StreamTrainer::InitialTraining() {
  SetPhase(INITIAL_TRAINING);
  CONTRAIL_RETURN_IF_ERROR(TrainEpochs(options_.initial_examples,
                                       options_.initial_epochs, "initial training"));
  publisher_->Start(AsConst(model_->Views()));
  const uint64_t checksum = model_->Checksum();
  {
    absl::MutexLock lock(&mu_);
    stats_.trainer_checksum = checksum;
    stats_.updates_published = publisher_->version();
  }
  spdlog::info("deployed the initial model as version 1 (checksum {:016x})",
               checksum);
  return absl::OkStatus();
}

absl::Status StreamTrainer::Retrain(int64_t n) {
  int64_t round;
  {
    absl::MutexLock lock(&mu_);
    round = stats_.retrains + 1;
  }
  // Fresh weights and a fresh optimizer, as retraining from scratch does.
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> fresh,
                            Model::CreateLike(*model_, options_.seed + round));
  CONTRAIL_RETURN_IF_ERROR(model_->CopyFrom(*fresh));
  step_ = std::make_unique<SgdStep>(model_.get(), options_.optimizer,
                                    options_.sparsity);
  CONTRAIL_RETURN_IF_ERROR(TrainEpochs(n, options_.retrain_epochs,
                                       absl::StrCat("full retraining ", round)));
  absl::MutexLock lock(&mu_);
  stats_.retrains = round;
  return absl::OkStatus();
}

absl::Status StreamTrainer::PublishChanges() {
  absl::StatusOr<UpdatePublisher::PublishResult> published =
      publisher_->Publish(AsConst(model_->Views()));
  if (!published.ok()) {
    return absl::Status(published.status().code(),
                        absl::StrCat("publishing failed: ", published.status().message()));
  }
  unsent_entries_ = published->remaining_entries;
  if (published->published) {
    absl::MutexLock lock(&mu_);
    stats_.updates_published = published->version;
    stats_.entries_published += published->entries;
    stats_.payload_bytes_published += published->payload_bytes;
  }
  return absl::OkStatus();
}

absl::Status StreamTrainer::Flush(absl::Time deadline) {
  // Each round sends the largest remaining differences. Every entry sent
  // moves the mirror strictly closer to the trainer (the codec drops
  // differences that round to zero), so this ends; it stops early when a
  // round finds nothing it can send.
  int64_t rounds = 0;
  while (unsent_entries_ > 0 && absl::Now() < deadline) {
    CONTRAIL_RETURN_IF_ERROR(Interrupted());
    const uint64_t before = publisher_->version();
    CONTRAIL_RETURN_IF_ERROR(PublishChanges());
    if (publisher_->version() == before) break;
    ++rounds;
  }
  if (rounds > 0 && deadline == absl::InfiniteFuture()) {
    spdlog::info("flushed in {} more updates; {} entries still differ",
                 rounds, unsent_entries_);
  }
  return absl::OkStatus();
}

absl::Status StreamTrainer::Stream() {
  SetPhase(STREAMING);
  const int64_t first = options_.initial_examples;
  const int64_t last = first + options_.stream_examples;
  const int64_t model_size = ModelSize(model_->spec());
  const int64_t trigger = options_.mode == TrainingMode::kOnline
                              ? options_.batch_size
                              : options_.trigger_size;
  const absl::Time start = absl::Now();
  absl::Time next_log = start + options_.log_interval;
  int64_t next_curve = options_.curve_every;
  int64_t next_retrain = options_.retrain_every;
  int64_t steps = 0;
  // The trainer model's checksum as of the last step.
  uint64_t checksum = model_->Checksum();
  std::vector<int64_t> fresh;
  for (int64_t begin = first; begin < last; begin += trigger) {
    const int64_t end = std::min(last, begin + trigger);
    if (options_.replay_rate > 0) {
      // The last example of this arrival reaches us at this time; until
      // then, send what the deploy budget held back.
      const absl::Time arrival =
          start + absl::Seconds((end - first) / options_.replay_rate);
      CONTRAIL_RETURN_IF_ERROR(Flush(arrival));
      stop_.WaitForNotificationWithTimeout(arrival - absl::Now());
    }
    CONTRAIL_RETURN_IF_ERROR(Interrupted());
    // Prequential: test on the new examples before training on them, with
    // the trainer's model and with the model the servers hold (the same
    // answers, without a second forward pass, when the two are identical).
    CONTRAIL_ASSIGN_OR_RETURN(const int64_t correct,
                              CountCorrect(*model_, begin, end));
    int64_t served_correct = correct;
    if (publisher_->mirror_checksum() != checksum) {
      CONTRAIL_ASSIGN_OR_RETURN(served_correct, CountCorrect(*served_, begin, end));
    }
    double loss = std::nan("");
    if (options_.mode == TrainingMode::kFull) {
      // The deployed model stays until the next retraining finishes.
      if (end - first >= next_retrain) {
        next_retrain += options_.retrain_every;
        CONTRAIL_RETURN_IF_ERROR(Retrain(end));
        CONTRAIL_RETURN_IF_ERROR(PublishChanges());
        CONTRAIL_RETURN_IF_ERROR(Flush(absl::InfiniteFuture()));
      }
    } else {
      fresh.resize(end - begin);
      std::iota(fresh.begin(), fresh.end(), begin);
      CONTRAIL_ASSIGN_OR_RETURN(
          loss, TrainStep(sampler_.FormBatch(fresh, /*history_size=*/begin,
                                             options_.batch_size),
                          /*sparse=*/true));
      ++steps;
      // Deployment waits for the first warmup_updates steps (the paper saw
      // an early dip it blamed on Adam's warm start).
      if (steps > options_.warmup_updates) CONTRAIL_RETURN_IF_ERROR(PublishChanges());
    }
    const bool last_step = end == last;
    // The end of the stream deploys whatever is still held back.
    if (last_step) {
      CONTRAIL_RETURN_IF_ERROR(PublishChanges());
      CONTRAIL_RETURN_IF_ERROR(Flush(absl::InfiniteFuture()));
    }
    checksum = model_->Checksum();
    Stats snapshot;
    {
      absl::MutexLock lock(&mu_);
      stats_.examples_seen += end - begin;
      stats_.correct += correct;
      stats_.served_correct += served_correct;
      stats_.steps = steps;
      stats_.trainer_checksum = checksum;
      if (std::isfinite(loss)) stats_.last_loss = loss;
      stats_.stream_time = absl::Now() - start;
      if (stats_.examples_seen >= next_curve || last_step) {
        while (next_curve <= stats_.examples_seen) next_curve += options_.curve_every;
        stats_.curve.push_back({stats_.examples_seen, stats_.prequential_accuracy(),
                                stats_.served_prequential_accuracy()});
      }
      snapshot = stats_;
    }
    if (absl::Now() >= next_log || last_step) {
      next_log = absl::Now() + options_.log_interval;
      const uint64_t updates = snapshot.updates_published - 1;
      const double entries = updates ? double(snapshot.entries_published) / updates : 0;
      const double bytes = updates ? double(snapshot.payload_bytes_published) / updates : 0;
      spdlog::info(
          "{}stream {}/{} examples, prequential accuracy {:.4f} (served "
          "{:.4f}), loss {:.4f}, version {}, {:.1f} entries/update ({:.3f}% "
          "of {}), {:.0f} B/update vs {} B dense, {:.1f} s",
          last_step ? "finished: " : "", snapshot.examples_seen,
          options_.stream_examples, snapshot.prequential_accuracy(),
          snapshot.served_prequential_accuracy(), snapshot.last_loss,
          snapshot.updates_published, entries, 100.0 * entries / model_size,
          model_size, bytes, model_size * sizeof(float),
          absl::ToDoubleSeconds(snapshot.stream_time));
    }
  }
  return absl::OkStatus();
}

}  // namespace contrail
