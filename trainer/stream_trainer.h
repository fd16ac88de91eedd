// The training loop (Prapas et al. 2021): initial training on the first
// examples of an ExampleSource, then the stream, with proactive training and
// prequential evaluation. Each arrival of `trigger_size` examples is first
// predicted (test) by the trainer's model and by the served one, then
// trained on in one step over a batch of those examples plus
// batch_size - trigger_size examples sampled from the history, then the
// Deployer decides what goes out to the servers.
//
// With sparsity topk/randomk the step changes only the selected entries of
// each parameter tensor (SgdStep), so every update carries exactly the
// selected entries.
//
// Each step's update is published on the deployer's publishing thread
// (trainer/publishing_thread.h) while the next arrival is tested and
// trained on: the served model's test of that arrival, the guard, the next
// update and checkpoints wait for it, so every update, the mirror and the
// prequential figures are exactly those of publishing in line
// (`overlap_publishing` false).
//
// The pieces: the source (where examples come from), ExampleHistory (what
// the sampler and retraining draw from), SgdStep (the training step),
// Model::Predict (prequential evaluation) and Deployer (the deploy policy).
//
// Lifecycle: Create(), Start() runs the loop on its own thread (the
// training thread, which owns the model, optimizer, selector, sampler,
// source and history), Stop() (or the destructor) interrupts it and joins.
// When the stream ends the thread exits with phase DONE (or FAILED, with the
// error as the outcome); the publisher keeps serving.
// Thread-safety: stats() and WaitUntilFinished() are thread-safe; Start()
// and Stop() are called by the owner thread.
#ifndef CONTRAIL_TRAINER_STREAM_TRAINER_H_
#define CONTRAIL_TRAINER_STREAM_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <atomic>
#include <memory>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/model.h"
#include "common/sparse_selector.h"
#include "proto/checkpoint.pb.h"
#include "trainer/checkpoint_store.h"
#include "trainer/deployer.h"
#include "trainer/example_history.h"
#include "trainer/example_source.h"
#include "trainer/proactive_sampler.h"
#include "trainer/quality_guard.h"
#include "trainer/sgd_step.h"
#include "trainer/sparse_optimizer.h"
#include "trainer/update_log.h"
#include "trainer/update_publisher.h"

namespace contrail {

enum class TrainingMode {
  kProactive,  // t new + b - t from history per step (the paper's method)
  kOnline,     // each example used once: batches of the t new ones only
  kFull,       // retrain from scratch every retrain_every examples
};

class StreamTrainer {
 public:
  struct Options {
    TrainingMode mode = TrainingMode::kProactive;
    // Examples at the head of the data trained on before deployment.
    int64_t initial_examples = 10000;
    // Epochs over them (mini-batches of batch_size, dense steps).
    int initial_epochs = 5;
    // Examples streamed after the initial ones; the run ends after them,
    // or earlier when the source ends. 0 = until the source ends.
    int64_t stream_examples = 20000;
    // t: new examples per training step.
    int64_t trigger_size = 8;
    // b: examples per training step (t new + b - t from the history).
    int64_t batch_size = 128;
    SparseOptimizer::Options optimizer;
    // Sparsity of the stream's steps; kNone trains densely.
    SparseSelector::Options sparsity;
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
    // A point of the prequential curve every this many streamed examples.
    int64_t curve_every = 1000;
    // How often progress is logged.
    absl::Duration log_interval = absl::Seconds(2);
    // Where time comes from; null = the real clock. Must outlive the trainer.
    Clock* clock = nullptr;
    // Examples the history keeps for the sampler and retraining: the newest
    // ones, the oldest forgotten first. 0 = every example. At least
    // initial_examples and batch_size otherwise.
    int64_t history_size = 100000;
    // When fewer than trigger_size new examples have arrived this long after
    // the first of them, the trainer steps on those it has (a smaller t,
    // the rest of the batch from the history), so that a slow stream still
    // reaches the servers. Zero = always wait for trigger_size.
    absl::Duration max_wait = absl::Seconds(1);
    // Durable state (--state_dir): a checkpoint after initial training,
    // every checkpoint_every and when training ends, and the update log,
    // rotated at each. Both null: no checkpoints. Must outlive the trainer.
    CheckpointStore* checkpoints = nullptr;
    UpdateLog* update_log = nullptr;
    absl::Duration checkpoint_every = absl::Seconds(30);
    // The deploy guard (trainer/quality_guard.h); off by default. Its
    // window also sets the windowed accuracies of the curve and stats.
    QualityGuard::Options guard;
    // Where the model trains: "cpu", "cuda" or "cuda:N". On a GPU the
    // step's selection and optimizer run there with LibTorch ops
    // (SgdStep), and the deployer reads a CPU copy of the model.
    std::string device = "cpu";
    // Publish each step's update on the publishing thread while the next
    // step trains (the same updates, in the same order, as without).
    bool overlap_publishing = true;
  };

  struct CurvePoint {
    int64_t examples = 0;           // streamed examples so far
    double trainer_accuracy = 0;    // cumulative prequential, trainer
    double served_accuracy = 0;     // cumulative prequential, served model
    // Prequential over the last guard.window examples.
    double trainer_window_accuracy = 0;
    double served_window_accuracy = 0;
  };

  struct Stats {
    Phase phase = STARTING;
    // Why training ended: OK when DONE, CANCELLED when STOPPED, the error
    // when FAILED; OK while it runs.
    absl::Status outcome;
    int64_t examples_seen = 0;       // streamed examples tested and trained on
    int64_t examples_read = 0;       // examples taken from the source
    int64_t examples_trained = 0;    // of those, trained on (initial included)
    int64_t partial_steps = 0;       // steps on fewer than t new examples
    int64_t checkpoints = 0;         // checkpoints written
    uint64_t checkpoint_version = 0; // the version the latest one covers
    absl::Time checkpoint_time;      // when it was captured
    absl::Duration checkpoint_capture;  // training-thread time of the latest
    absl::Duration checkpoint_write;    // its serialization and fsync
    bool resumed = false;            // continued a checkpoint
    int64_t correct = 0;             // of those, predicted right before training
    int64_t served_correct = 0;      // ... by the served model (the mirror)
    int64_t steps = 0;               // training steps on the stream
    int64_t retrains = 0;            // full retrainings finished
    // What has gone out; with overlap_publishing, the latest step's update
    // counts once it is published (at the latest by the next arrival's).
    uint64_t updates_published = 0;
    int64_t entries_published = 0;
    int64_t payload_bytes_published = 0;
    int64_t skipped_steps = 0;  // steps whose loss was not finite
    uint64_t trainer_checksum = 0;
    double last_loss = 0;
    absl::Duration stream_time;  // wall time spent on the stream so far
    std::vector<CurvePoint> curve;
    // The deploy guard: its state, the windowed prequential accuracies it
    // compares (trainer, served, best recent served), how often it held
    // and rolled back, and the version a rollback restores.
    QualityGuard::State guard_state = QualityGuard::State::kOff;
    double trainer_window_accuracy = 0;
    double served_window_accuracy = 0;
    double best_served_window_accuracy = 0;
    int64_t guard_holds = 0;
    int64_t guard_rollbacks = 0;
    uint64_t guard_good_version = 0;
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

  // Validates `options`, and the source's examples against the model
  // (INVALID_ARGUMENT naming the offending option). `served` is the model
  // whose views the publisher keeps as its mirror: the trainer only reads
  // it, to measure what the servers answer. `publisher` must outlive the
  // trainer.
  static absl::StatusOr<std::unique_ptr<StreamTrainer>> Create(
      const Options& options, std::unique_ptr<ExampleSource> source,
      std::unique_ptr<Model> model, std::unique_ptr<Model> served,
      UpdatePublisher* publisher);

  // Continues the run `checkpoint` captured, instead of initial training:
  // restores the model, optimizer, residuals, sampler, history, deployer
  // and counters (the daemon restored the publisher's mirror, version and
  // logged updates). Before Start(). DATA_LOSS when the checkpoint does
  // not fit the model.
  absl::Status Resume(const TrainerCheckpoint& checkpoint);

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
  // The source's name and counters. Thread-safe.
  std::string source_name() const { return source_->name(); }
  SourceCounters source_counters() const { return source_->counters(); }

 private:
  // Predictions of the newest examples, counted right.
  struct Prequential {
    int64_t correct = 0;         // by the trainer's model
    int64_t served_correct = 0;  // by the served model (the mirror)
  };

  StreamTrainer(const Options& options, std::unique_ptr<ExampleSource> source,
                std::unique_ptr<Model> model, std::unique_ptr<Model> host,
                std::unique_ptr<Model> served, UpdatePublisher* publisher);

  // The trained model's tensors as CPU spans, for the deployer: the model's
  // own, or its CPU copy brought up to date when it trains on a GPU.
  ConstTensorViews Trained();

  // The training thread's body: records the outcome and the final phase.
  void Run();
  // Initial training, then the stream. CANCELLED when interrupted.
  absl::Status TrainAndDeploy();
  absl::Status InitialTraining();
  absl::Status Stream();

  // Reads up to `count` examples into `fresh`, waiting for them; while
  // waiting, deploys what the budget held back. True at the end of the
  // stream (then `fresh` may hold fewer). With a `max_wait` above zero it
  // also returns, with fewer, once that long has passed since the first
  // of them arrived.
  absl::StatusOr<bool> AwaitExamples(int64_t count, absl::Duration max_wait,
                                     Examples* fresh);
  // Records that every example read so far has been trained on; tells the
  // source, unless checkpoints are on (then a checkpoint commits).
  absl::Status CommitTrained();
  // Writes a checkpoint when one is due (always with `now`), in the
  // background unless `wait`; first finishes what the last one left.
  absl::Status MaybeCheckpoint(bool now, bool wait);
  // The state to checkpoint, captured on the training thread.
  absl::StatusOr<std::unique_ptr<TrainerCheckpoint>> Capture();
  // Writes `checkpoint` to the store (on the writer thread, or the
  // training thread when waiting) and flags it done.
  void WriteCheckpoint(const TrainerCheckpoint& checkpoint);
  // After a checkpoint was written: drop the log segments the previous one
  // covered, and commit its examples to the source.
  absl::Status AfterCheckpoint();
  // The served model's half of the prequential test of history examples
  // [begin, end), whose trainer's half `tested` holds: first waits for the
  // update in flight (the served model is the mirror after it), then hands
  // the test to the guard, which may hold or roll back what the next
  // update would deploy.
  absl::Status TestServed(int64_t begin, int64_t end, Prequential* tested);
  // The stream's training step for examples [begin, end) of the history,
  // which the trainer's model has tested (`tested`); TestServed() in
  // between, while the last update is still being published; then
  // deployment. Full retraining when it is due. Returns the step's loss
  // (NaN when none was taken or it was skipped).
  absl::StatusOr<double> TrainOnArrival(int64_t begin, int64_t end, Prequential* tested,
                                        int64_t* next_retrain);
  // Copies the deployer's counters into the statistics.
  void RecordDeployed() ABSL_LOCKS_EXCLUDED(mu_);
  // Dense epochs over history examples [begin, end) in shuffled
  // mini-batches. `what` names the work in the log.
  absl::Status TrainEpochs(int64_t begin, int64_t end, int epochs, const std::string& what);
  // Full retraining: fresh weights and optimizer, epochs over the history
  // up to `end`.
  absl::Status Retrain(int64_t end);
  // One SgdStep over the history examples `batch`; returns its loss (NaN:
  // skipped).
  absl::StatusOr<double> TrainStep(const std::vector<int64_t>& batch, bool sparse);
  // Predictions of `model` for history examples [begin, end), counted
  // against their labels.
  absl::StatusOr<int64_t> CountCorrect(Model& model, int64_t begin, int64_t end);
  // Records one arrival in the statistics and logs progress.
  void RecordArrival(int64_t count, const Prequential& tested, double loss,
                     int64_t steps, bool last);
  // CANCELLED once Stop() was called.
  absl::Status Interrupted() const;
  void SetPhase(Phase phase) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;
  Clock* const clock_;
  UpdatePublisher* const publisher_;

  // Owned by the training thread while it runs.
  std::unique_ptr<ExampleSource> source_;
  std::unique_ptr<Model> model_;
  // A CPU copy of model_ when it is on another device; null on the CPU.
  std::unique_ptr<Model> host_;
  bool host_stale_ = false;  // host_ lags model_
  std::unique_ptr<Model> served_;  // the mirror; written by the publisher
  ExampleHistory history_;
  std::unique_ptr<SgdStep> step_;
  Deployer deployer_;
  ProactiveSampler sampler_;
  std::mt19937_64 rng_;  // data order of epoch training
  // The trainer model's checksum as of the last step.
  uint64_t checksum_ = 0;
  absl::Time stream_start_;
  absl::Time next_log_;
  int64_t next_curve_ = 0;
  int64_t read_ = 0;  // examples taken from the source
  int64_t trained_ = 0;  // of those, trained on
  int64_t next_retrain_ = 0;  // full mode: streamed examples at the next retraining
  bool resumed_ = false;
  // Between arrivals, with every example read trained on: a checkpoint
  // may be taken.
  bool consistent_ = false;
  absl::Time next_checkpoint_;
  // The checkpoint being written in the background, and what the last
  // durable ones covered.
  std::thread checkpoint_writer_;
  std::atomic<bool> checkpoint_done_{false};
  absl::Status checkpoint_status_;  // written by checkpoint_writer_
  uint64_t writing_version_ = 0;
  int64_t writing_read_ = 0;
  uint64_t durable_version_ = 0;    // the newest durable checkpoint
  uint64_t previous_version_ = 0;   // the one before it

  std::thread thread_;
  absl::Notification stop_;
  absl::Notification finished_;

  // Protects the statistics the status service reads.
  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_STREAM_TRAINER_H_
