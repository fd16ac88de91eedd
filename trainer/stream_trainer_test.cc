#include "trainer/stream_trainer.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/idx_reader.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/sparse_selector.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/replay_source.h"
#include "trainer/update_publisher.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

// Examples in the synthetic training set every test reads.
constexpr int64_t kTrainCount = 1600;
// Generous: a small run takes well under a second.
constexpr absl::Duration kFinishDeadline = absl::Seconds(60);

// A trainer with its publisher and the mirror the publisher writes (owned
// by the trainer); the trainer is destroyed before the publisher.
struct TrainingRun {
  Model* mirror = nullptr;
  std::unique_ptr<UpdatePublisher> publisher;
  std::unique_ptr<StreamTrainer> trainer;
};

class StreamTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/stream_trainer_data";
    const absl::Status written = test::WriteSyntheticFashionMnist(
        dir, kTrainCount, /*test_count=*/0, /*seed=*/7);
    ASSERT_TRUE(written.ok()) << written;
    absl::StatusOr<LabelledImages> data = ReadFashionMnist(dir, /*train=*/true);
    ASSERT_TRUE(data.ok()) << data.status();
    ASSERT_EQ(data->count, kTrainCount);
    data_ = new LabelledImages(*std::move(data));
  }

  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(data_, nullptr);
    torch::manual_seed(4242);
  }

  // The small run: 200 initial examples for one epoch, then 200 streamed
  // with t = 8, b = 32 and top-k at 1 %.
  static StreamTrainer::Options SmallOptions() {
    StreamTrainer::Options options;
    options.initial_examples = 200;
    options.initial_epochs = 1;
    options.stream_examples = 200;
    options.trigger_size = 8;
    options.batch_size = 32;
    options.sparsity.sparsity = Sparsity::kTopK;
    options.sparsity.ratio = 0.01;
    options.seed = 3;
    return options;
  }

  // Builds a run; every update stays retained so that tests can read them
  // all back.
  static absl::StatusOr<TrainingRun> MakeRun(
      const StreamTrainer::Options& options, const std::string& architecture,
      double replay_rate = 0,
      UpdatePublisher::Options publisher_options = UpdatePublisher::Options()) {
    TrainingRun run;
    absl::StatusOr<std::unique_ptr<Model>> model =
        Model::Create(architecture, options.seed);
    if (!model.ok()) return model.status();
    absl::StatusOr<std::unique_ptr<Model>> mirror =
        Model::Create(architecture, options.seed);
    if (!mirror.ok()) return mirror.status();
    run.mirror = mirror->get();
    publisher_options.max_retained_updates = 1 << 20;
    run.publisher = UpdatePublisher::Create(
        (*model)->spec(), run.mirror->Views(), publisher_options).value();
    ReplaySource::Options replay;
    replay.count = options.initial_examples + options.stream_examples;
    replay.unpaced_examples = options.initial_examples;
    replay.rate = replay_rate;
    absl::StatusOr<std::unique_ptr<ReplaySource>> source =
        ReplaySource::Create(replay, *data_, (*model)->spec().num_classes());
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<StreamTrainer>> trainer =
        StreamTrainer::Create(options, *std::move(source), *std::move(model),
                              *std::move(mirror), run.publisher.get());
    if (!trainer.ok()) return trainer.status();
    run.trainer = *std::move(trainer);
    return run;
  }

  // Runs to the end of the stream; the trainer's outcome.
  static absl::Status RunToEnd(TrainingRun& run) {
    run.trainer->Start();
    return run.trainer->WaitUntilFinished(kFinishDeadline);
  }

  // Every update after version 1, as a subscriber holding version 1 gets
  // them.
  static std::vector<std::shared_ptr<const Update>> UpdatesAfterVersion1(
      const TrainingRun& run) {
    std::vector<std::shared_ptr<const Update>> updates;
    const absl::Status next = run.publisher->Next(
        run.publisher->run(), /*have_version=*/1,
        run.publisher->spec().fingerprint(), absl::Seconds(5), &updates);
    EXPECT_TRUE(next.ok()) << next;
    return updates;
  }

  // Every update after version 1, serialized but for what differs between
  // two runs of the same training: the run id, the publish time and the
  // seal over them.
  static std::vector<std::string> Comparable(const TrainingRun& run) {
    std::vector<std::string> serialized;
    for (const std::shared_ptr<const Update>& logged : UpdatesAfterVersion1(run)) {
      Update update = *logged;
      update.clear_run();
      update.clear_publish_time_us();
      update.clear_checksum();
      serialized.push_back(update.SerializeAsString());
    }
    return serialized;
  }

  static absl::StatusCode CreateCode(const StreamTrainer::Options& options,
                                     std::string* message) {
    absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp");
    *message = std::string(run.status().message());
    return run.status().code();
  }

  static LabelledImages* data_;
};

LabelledImages* StreamTrainerTest::data_ = nullptr;

// Takes the first `accept` updates, then refuses every one, as an update
// log whose disk filled up.
class FailingSink : public UpdateSink {
 public:
  explicit FailingSink(int accept) : accept_(accept) {}
  absl::Status Append(const Update& update) override {
    absl::MutexLock lock(&mu_);
    if (appended_ >= accept_) return absl::ResourceExhaustedError("the log's disk is full");
    ++appended_;
    return absl::OkStatus();
  }

 private:
  const int accept_;
  absl::Mutex mu_;
  int appended_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(StreamTrainerTest, SparseRunFinishesWithMirrorEqualToTrainer) {
  for (const std::string architecture : {"lenet5", "mlp"}) {
    SCOPED_TRACE(architecture);
    absl::StatusOr<TrainingRun> run = MakeRun(SmallOptions(), architecture);
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_OK(RunToEnd(*run));

    const StreamTrainer::Stats stats = run->trainer->stats();
    EXPECT_EQ(stats.phase, DONE);
    EXPECT_EQ(stats.examples_seen, 200);
    EXPECT_EQ(stats.skipped_steps, 0);
    EXPECT_GE(stats.correct, 0);
    EXPECT_LE(stats.correct, 200);
    // The mirror follows the trainer exactly: every change a sparse step
    // made went out in that step's update.
    EXPECT_EQ(run->publisher->mirror_checksum(), stats.trainer_checksum);
    EXPECT_EQ(run->mirror->Checksum(), stats.trainer_checksum);
    EXPECT_EQ(run->publisher->version(), stats.updates_published);

    const std::vector<std::shared_ptr<const Update>> updates =
        UpdatesAfterVersion1(*run);
    // Version 1 is the deployed initial model; each of the 25 steps of
    // Adam moves the selected entries (the output bias always has a
    // gradient), so each publishes one version.
    EXPECT_EQ(updates.size(), 25u);
    EXPECT_EQ(stats.updates_published, 1 + updates.size());

    const ModelSpec& spec = run->publisher->spec();
    int64_t entries = 0;
    uint64_t expected_version = 2;
    for (const std::shared_ptr<const Update>& update : updates) {
      SCOPED_TRACE(update->version());
      EXPECT_FALSE(update->snapshot());
      EXPECT_EQ(update->version(), expected_version);
      EXPECT_EQ(update->base_version(), expected_version - 1);
      ++expected_version;
      absl::StatusOr<std::vector<DecodedTensor>> decoded =
          DecodeUpdate(*update, spec);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      for (const DecodedTensor& tensor : *decoded) {
        const int64_t n = TensorSize(spec.tensors(tensor.tensor));
        EXPECT_FALSE(tensor.dense);
        EXPECT_LE(static_cast<int64_t>(tensor.values.size()), KeepCount(n, 0.01))
            << spec.tensors(tensor.tensor).name();
        entries += static_cast<int64_t>(tensor.values.size());
      }
    }
    EXPECT_EQ(entries, stats.entries_published);
  }
}

TEST_F(StreamTrainerTest, RandomKRunKeepsMirrorEqualToTrainer) {
  StreamTrainer::Options options = SmallOptions();
  options.sparsity.sparsity = Sparsity::kRandomK;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.phase, DONE);
  EXPECT_EQ(run->publisher->mirror_checksum(), stats.trainer_checksum);
  const ModelSpec& spec = run->publisher->spec();
  for (const std::shared_ptr<const Update>& update : UpdatesAfterVersion1(*run)) {
    absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(*update, spec);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    for (const DecodedTensor& tensor : *decoded) {
      EXPECT_LE(static_cast<int64_t>(tensor.indices.size()),
                KeepCount(TensorSize(spec.tensors(tensor.tensor)), 0.01));
    }
  }
}

TEST_F(StreamTrainerTest, DenseRunKeepsMirrorEqualToTrainer) {
  StreamTrainer::Options options = SmallOptions();
  options.sparsity.sparsity = Sparsity::kNone;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "lenet5");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.phase, DONE);
  EXPECT_EQ(stats.examples_seen, 200);
  EXPECT_EQ(run->publisher->mirror_checksum(), stats.trainer_checksum);
  EXPECT_EQ(run->mirror->Checksum(), stats.trainer_checksum);
  const std::vector<std::shared_ptr<const Update>> updates =
      UpdatesAfterVersion1(*run);
  EXPECT_EQ(stats.updates_published, 1 + updates.size());
  // A dense Adam step moves far more than 1 % of the weights.
  ASSERT_FALSE(updates.empty());
  EXPECT_GT(stats.entries_published / static_cast<int64_t>(updates.size()),
            ModelSize(run->publisher->spec()) / 10);
}

TEST_F(StreamTrainerTest, DenseStreamLearnsTheSyntheticClasses) {
  StreamTrainer::Options options;
  options.initial_examples = 400;
  options.initial_epochs = 1;
  options.stream_examples = 600;
  options.trigger_size = 8;
  options.batch_size = 32;
  options.sparsity.sparsity = Sparsity::kNone;
  options.seed = 5;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.phase, DONE);
  EXPECT_EQ(stats.examples_seen, 600);
  // Chance is 0.1.
  EXPECT_GT(stats.prequential_accuracy(), 0.3);
  EXPECT_EQ(run->publisher->mirror_checksum(), stats.trainer_checksum);
}

TEST_F(StreamTrainerTest, StopInterruptsTheStream) {
  StreamTrainer::Options options = SmallOptions();
  absl::StatusOr<TrainingRun> run =
      MakeRun(options, "mlp", /*replay_rate=*/10);  // 20 s of stream
  ASSERT_TRUE(run.ok()) << run.status();
  run->trainer->Start();
  run->trainer->Stop();
  EXPECT_EQ(run->trainer->WaitUntilFinished(absl::ZeroDuration()).code(),
            absl::StatusCode::kCancelled);
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.phase, STOPPED);
  EXPECT_EQ(stats.outcome.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(stats.examples_seen, 200);
}

TEST_F(StreamTrainerTest, CreateRejectsTriggerSizeAboveBatchSize) {
  StreamTrainer::Options options = SmallOptions();
  options.trigger_size = 64;
  options.batch_size = 32;
  std::string message;
  EXPECT_EQ(CreateCode(options, &message), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("trigger_size"));
}

TEST_F(StreamTrainerTest, CreateRejectsMoreExamplesThanTheDataHolds) {
  StreamTrainer::Options options = SmallOptions();
  options.initial_examples = kTrainCount - 100;
  options.stream_examples = 101;
  std::string message;
  EXPECT_EQ(CreateCode(options, &message), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("cannot replay 1601 examples"));
  EXPECT_THAT(message, HasSubstr("1600"));
}

TEST_F(StreamTrainerTest, CreateRejectsZeroRatio) {
  StreamTrainer::Options options = SmallOptions();
  options.sparsity.ratio = 0;
  std::string message;
  EXPECT_EQ(CreateCode(options, &message), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("ratio"));
}

TEST_F(StreamTrainerTest, CreateRejectsNonPositiveLearningRate) {
  for (double lr : {0.0, -0.1}) {
    StreamTrainer::Options options = SmallOptions();
    options.optimizer.lr = lr;
    std::string message;
    EXPECT_EQ(CreateCode(options, &message), absl::StatusCode::kInvalidArgument)
        << lr;
    EXPECT_THAT(message, HasSubstr("lr"));
  }
}

TEST_F(StreamTrainerTest, OnlineModeTrainsOnEachNewExampleOnceInBatchesOfB) {
  StreamTrainer::Options options = SmallOptions();
  options.mode = TrainingMode::kOnline;
  options.sparsity.sparsity = Sparsity::kNone;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.examples_seen, 200);
  // 200 examples in batches of b = 32 new ones: 7 steps (the last of 8).
  EXPECT_EQ(stats.steps, 7);
  EXPECT_EQ(run->mirror->Checksum(), stats.trainer_checksum);
}

TEST_F(StreamTrainerTest, FullRetrainingRestartsFromFreshWeights) {
  StreamTrainer::Options options = SmallOptions();
  options.mode = TrainingMode::kFull;
  options.sparsity.sparsity = Sparsity::kNone;
  options.retrain_every = 100;
  options.retrain_epochs = 1;
  // A learning rate so small that trained weights stay where they started.
  options.optimizer.lr = 1e-12;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "lenet5");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.phase, DONE);
  EXPECT_EQ(stats.retrains, 2);
  EXPECT_EQ(stats.steps, 0);
  EXPECT_EQ(run->mirror->Checksum(), stats.trainer_checksum);
  // The served model is the second retraining's fresh start (seed + 2),
  // not the initial model (seed) it replaced.
  // Over the parameters: the input normalisation is refitted (below).
  auto Distance = [](const Model& a, const Model& b) {
    double worst = 0;
    const ConstTensorViews x = a.Views(), y = b.Views();
    for (int t = 0; t < a.num_parameter_tensors(); ++t) {
      for (size_t i = 0; i < x[t].size(); ++i) {
        worst = std::max(worst, std::fabs(double(x[t][i]) - y[t][i]));
      }
    }
    return worst;
  };
  absl::StatusOr<std::unique_ptr<Model>> initial = Model::Create("lenet5", options.seed);
  absl::StatusOr<std::unique_ptr<Model>> second = Model::Create("lenet5", options.seed + 2);
  ASSERT_TRUE(initial.ok() && second.ok());
  EXPECT_LT(Distance(*run->mirror, **second), 1e-6);
  EXPECT_GT(Distance(*run->mirror, **initial), 1e-2);
  // The second retraining, on the first 400 examples, fitted the input
  // normalisation to them, as retraining from scratch does.
  ASSERT_OK((*second)->FitInputNormalization(
      absl::MakeConstSpan(data_->pixels.data(), 400 * data_->example_size()), 400));
  const int mean = run->mirror->num_parameter_tensors();
  EXPECT_EQ(run->mirror->spec().tensors(mean).name(), "input_mean");
  for (int t : {mean, mean + 1}) {
    EXPECT_THAT(run->mirror->Views()[t],
                ::testing::ElementsAreArray((*second)->Views()[t]));
  }
}

TEST_F(StreamTrainerTest, InitialTrainingFitsTheInputNormalizationToItsExamples) {
  StreamTrainer::Options options = SmallOptions();
  options.sparsity.sparsity = Sparsity::kNone;
  absl::StatusOr<TrainingRun> run = MakeRun(options, "lenet5");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  // The initial examples are the first 200 of the data.
  double sum = 0, squares = 0;
  const int64_t n = 200 * data_->example_size();
  for (int64_t i = 0; i < n; ++i) sum += data_->pixels[i];
  const double mean = sum / n;
  for (int64_t i = 0; i < n; ++i) squares += (data_->pixels[i] - mean) * (data_->pixels[i] - mean);
  const double std_dev = std::sqrt(squares / n);
  ASSERT_GT(std_dev, 0.05);
  // The served model holds them; the stream did not move them.
  const Model& served = *run->mirror;
  const int first_buffer = served.num_parameter_tensors();
  ASSERT_EQ(served.spec().tensors(first_buffer + 1).name(), "input_scale");
  EXPECT_NEAR(served.Views()[first_buffer][0], mean, 1e-6);
  EXPECT_NEAR(served.Views()[first_buffer + 1][0], 1 / std_dev, 1e-5);
  EXPECT_EQ(served.Checksum(), run->trainer->stats().trainer_checksum);
}

TEST_F(StreamTrainerTest, WarmupHoldsDeploymentBackForItsSteps) {
  StreamTrainer::Options options = SmallOptions();
  options.warmup_updates = 1000;  // longer than the stream
  absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.steps, 25);
  // Nothing went out while streaming; the end of the stream flushes what
  // the budget-free sparse steps changed, in one update.
  EXPECT_EQ(stats.updates_published, 2u);
  EXPECT_EQ(run->mirror->Checksum(), stats.trainer_checksum);
}

TEST_F(StreamTrainerTest, ServedPrequentialEqualsTrainersWhenUpdatesAreExact) {
  absl::StatusOr<TrainingRun> run = MakeRun(SmallOptions(), "lenet5");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_OK(RunToEnd(*run));
  const StreamTrainer::Stats stats = run->trainer->stats();
  EXPECT_EQ(stats.served_correct, stats.correct);
  ASSERT_FALSE(stats.curve.empty());
  EXPECT_EQ(stats.curve.back().examples, 200);
  EXPECT_DOUBLE_EQ(stats.curve.back().served_accuracy, stats.prequential_accuracy());
}

TEST_F(StreamTrainerTest, OverlappedPublishingSendsTheSameUpdatesAsPublishingInLine) {
  // A deploy budget below the step's sparsity: entries are held back, so
  // each update depends on the mirror the one before it left.
  UpdatePublisher::Options budget;
  budget.deploy_ratio = 0.005;
  for (const std::string architecture : {"mlp", "lenet5"}) {
    SCOPED_TRACE(architecture);
    StreamTrainer::Options options = SmallOptions();
    options.overlap_publishing = false;
    torch::manual_seed(4242);
    absl::StatusOr<TrainingRun> in_line = MakeRun(options, architecture, 0, budget);
    ASSERT_TRUE(in_line.ok()) << in_line.status();
    ASSERT_OK(RunToEnd(*in_line));
    options.overlap_publishing = true;
    torch::manual_seed(4242);
    absl::StatusOr<TrainingRun> overlapped = MakeRun(options, architecture, 0, budget);
    ASSERT_TRUE(overlapped.ok()) << overlapped.status();
    ASSERT_OK(RunToEnd(*overlapped));

    const StreamTrainer::Stats expected = in_line->trainer->stats();
    const StreamTrainer::Stats stats = overlapped->trainer->stats();
    EXPECT_EQ(stats.phase, DONE);
    ASSERT_EQ(stats.trainer_checksum, expected.trainer_checksum);
    // Nothing lost, reordered or changed: the same versions, each the same
    // update, and a bit-identical mirror, which the served model's
    // prequential test saw at the same moments.
    EXPECT_GT(stats.updates_published, 25u);
    EXPECT_EQ(stats.updates_published, expected.updates_published);
    EXPECT_EQ(overlapped->publisher->version(), stats.updates_published);
    EXPECT_EQ(stats.entries_published, expected.entries_published);
    EXPECT_EQ(stats.payload_bytes_published, expected.payload_bytes_published);
    const std::vector<std::string> updates = Comparable(*overlapped);
    EXPECT_EQ(updates.size() + 1, stats.updates_published);
    EXPECT_TRUE(updates == Comparable(*in_line));
    EXPECT_EQ(overlapped->publisher->mirror_checksum(), in_line->publisher->mirror_checksum());
    EXPECT_EQ(overlapped->mirror->Checksum(), in_line->mirror->Checksum());
    EXPECT_EQ(stats.correct, expected.correct);
    EXPECT_EQ(stats.served_correct, expected.served_correct);
  }
}

TEST_F(StreamTrainerTest, UpdateLogFailureStopsTrainingWithOverlappedPublishing) {
  for (const bool overlap : {false, true}) {
    SCOPED_TRACE(overlap);
    StreamTrainer::Options options = SmallOptions();
    options.overlap_publishing = overlap;
    FailingSink sink(/*accept=*/4);
    UpdatePublisher::Options logged;
    logged.sink = &sink;
    absl::StatusOr<TrainingRun> run = MakeRun(options, "mlp", 0, logged);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_THAT(RunToEnd(*run), StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("update 6 could not be logged")));
    const StreamTrainer::Stats stats = run->trainer->stats();
    EXPECT_EQ(stats.phase, FAILED);
    // Versions 2 to 5 were logged and published; nothing after them.
    EXPECT_EQ(run->publisher->version(), 5u);
    EXPECT_EQ(stats.updates_published, 5u);
    EXPECT_LT(stats.steps, 25);
  }
}

}  // namespace
}  // namespace contrail
