// The training loop: initial training on the head of the data, then the
// stream, with proactive training and prequential evaluation (Prapas et al.
// 2021). Each arrival of `trigger_size` examples is first predicted (test),
// then trained on in one step over a batch of those examples plus
// batch_size - trigger_size examples sampled from the history, then the
// step's changes are published to the servers.
//
// With sparsity topk/randomk the step changes only the selected entries of
// each parameter tensor (SgdStep), so every update carries exactly the
// selected entries.
//
// Lifecycle: Create(), Start() runs the loop on its own thread (the
// training thread, which owns the model, optimizer, selector and sampler),
// Stop() (or the destructor) interrupts it and joins. When the stream ends
// the thread exits with phase DONE (or FAILED, with the error as the
// outcome); the publisher keeps serving.
// Thread-safety: stats() is thread-safe; Start() and Stop() are called by
// the owner thread.
#ifndef CONTRAIL_TRAINER_STREAM_TRAINER_H_
#define CONTRAIL_TRAINER_STREAM_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/idx_reader.h"
#include "common/model.h"
#include "common/sparse_selector.h"
#include "trainer/drift.h"
#include "trainer/proactive_sampler.h"
#include "trainer/sgd_step.h"
#include "trainer/sparse_optimizer.h"
#include "trainer/update_publisher.h"

namespace contrail {

enum class TrainingMode {
  kProactive,  // t new + b - t from history per step (the paper's method)
  kOnline,     // each example used once: batches of the t new ones only
  kFull,       // retrain from scratch every retrain_every examples
};

// "proactive", "online", "full".
absl::StatusOr<TrainingMode> ParseTrainingMode(absl::string_view name);
std::string TrainingModeName(TrainingMode mode);

class StreamTrainer {
 public:
  struct Options {
    TrainingMode mode = TrainingMode::kProactive;
    // Examples at the head of the data trained on before deployment.
    int64_t initial_examples = 10000;
    // Epochs over them (mini-batches of batch_size, dense steps).
    int initial_epochs = 5;
    // Examples streamed after the initial ones.
    int64_t stream_examples = 20000;
    // t: new examples per training step.
    int64_t trigger_size = 8;
    // b: examples per training step (t new + b - t from the history).
    int64_t batch_size = 128;
    SparseOptimizer::Options optimizer;
    // Sparsity of the stream's steps; kNone trains densely.
    SparseSelector::Options sparsity;
    // Examples per second arriving on the stream; 0 = as fast as training.
    double replay_rate = 0;
    // Seeds the sampler and the data order of initial training.
    uint64_t seed = 1;
    // Full retraining: every this many streamed examples, a fresh model
    // trains on everything seen so far for retrain_epochs epochs and is
    // deployed; the last finished model serves meanwhile.
    int64_t retrain_every = 10000;
    int retrain_epochs = 5;
    // Updates held back at the start of the stream: the servers keep the
    // initial model until the trainer has taken this many steps.
    int64_t warmup_updates = 0;
    // Drift applied to streamed examples from drift_at (counted from the
    // start of the stream) on.
    Drift drift = Drift::kNone;
    int64_t drift_at = 0;
    // A point of the prequential curve every this many streamed examples.
    int64_t curve_every = 1000;
    // How often progress is logged.
    absl::Duration log_interval = absl::Seconds(2);
  };

  struct CurvePoint {
    int64_t examples = 0;           // streamed examples so far
    double trainer_accuracy = 0;    // cumulative prequential, trainer
    double served_accuracy = 0;     // cumulative prequential, served model
  };

  struct Stats {
    Phase phase = STARTING;
    // Why training ended: OK when DONE, CANCELLED when STOPPED, the error
    // when FAILED; OK while it runs.
    absl::Status outcome;
    int64_t examples_seen = 0;       // streamed examples tested and trained on
    int64_t correct = 0;             // of those, predicted right before training
    int64_t served_correct = 0;      // ... by the served model (the mirror)
    int64_t steps = 0;               // training steps on the stream
    int64_t retrains = 0;            // full retrainings finished
    uint64_t updates_published = 0;
    int64_t entries_published = 0;
    int64_t payload_bytes_published = 0;
    int64_t skipped_steps = 0;  // steps whose loss was not finite
    uint64_t trainer_checksum = 0;
    double last_loss = 0;
    absl::Duration stream_time;  // wall time spent on the stream so far
    std::vector<CurvePoint> curve;
    double prequential_accuracy() const {
      return examples_seen == 0 ? 0.0
                                : static_cast<double>(correct) / examples_seen;
    }
    double served_prequential_accuracy() const {
      return examples_seen == 0
                 ? 0.0
                 : static_cast<double>(served_correct) / examples_seen;
    }
  };

  // Validates `options` against `data` (INVALID_ARGUMENT with the offending
  // flag's name) and applies the drift to `data`. `served` is the model
  // whose views the publisher keeps as its mirror: the trainer only reads
  // it, to measure what the servers answer. `publisher` must outlive the
  // trainer.
  static absl::StatusOr<std::unique_ptr<StreamTrainer>> Create(
      const Options& options, LabelledImages data, std::unique_ptr<Model> model,
      std::unique_ptr<Model> served, UpdatePublisher* publisher);

  ~StreamTrainer();
  StreamTrainer(const StreamTrainer&) = delete;
  StreamTrainer& operator=(const StreamTrainer&) = delete;

  // Starts the training thread.
  void Start();
  // Interrupts the training thread at the next step and joins it.
  void Stop();
  // Blocks until the training thread has finished or `timeout` passes.
  // The outcome: OK when the stream was trained and deployed to the end,
  // CANCELLED when Stop() interrupted it, the error that ended it when it
  // failed; DEADLINE_EXCEEDED when it has not finished in time.
  absl::Status WaitUntilFinished(absl::Duration timeout);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  StreamTrainer(const Options& options, LabelledImages data,
                std::unique_ptr<Model> model, std::unique_ptr<Model> served,
                UpdatePublisher* publisher);

  // The training thread's body: records the outcome and the final phase.
  void Run();
  // Initial training, then the stream. CANCELLED when interrupted.
  absl::Status TrainAndDeploy();
  absl::Status InitialTraining();
  // Dense epochs over examples [0, n) in shuffled mini-batches. `what`
  // names the work in the log.
  absl::Status TrainEpochs(int64_t n, int epochs, const std::string& what);
  // Full retraining: fresh weights and optimizer, epochs over [0, n).
  absl::Status Retrain(int64_t n);
  absl::Status Stream();
  // One SgdStep over the examples `batch`; returns its loss (NaN: skipped).
  absl::StatusOr<double> TrainStep(const std::vector<int64_t>& batch, bool sparse);
  // Predictions of `model` for examples [begin, end), counted against
  // their labels.
  absl::StatusOr<int64_t> CountCorrect(Model& model, int64_t begin, int64_t end);
  // Publishes trainer - mirror and counts it.
  absl::Status PublishChanges();
  // Publishes what earlier updates left unsent until none is left, no
  // progress is made, or `deadline` passes.
  absl::Status Flush(absl::Time deadline);
  // CANCELLED once Stop() was called.
  absl::Status Interrupted() const;
  void SetPhase(Phase phase) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;
  const LabelledImages data_;
  UpdatePublisher* const publisher_;

  // Owned by the training thread while it runs.
  std::unique_ptr<Model> model_;
  std::unique_ptr<Model> served_;  // the mirror; written by the publisher
  torch::Tensor images_;  // [count, 1, rows, cols], shares data_'s pixels
  torch::Tensor labels_;  // [count] int64
  std::unique_ptr<SgdStep> step_;
  ProactiveSampler sampler_;
  std::mt19937_64 rng_;  // data order of epoch training
  // Entries where trainer and mirror differed after the last update.
  int64_t unsent_entries_ = 0;

  std::thread thread_;
  absl::Notification stop_;
  absl::Notification finished_;

  // Protects the statistics the status service reads.
  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_STREAM_TRAINER_H_
