#include "server/live_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kRun = test::FakeTrainer::kRun;
constexpr uint64_t kTrainerSeed = 7;  // differs from the server's seed 0
constexpr int64_t kClasses = 10;
constexpr int64_t kPixels = 28 * 28;
constexpr int64_t kBatch = 3;
constexpr float kTolerance = 1e-6f;

std::vector<int64_t> InputShape(int64_t n) { return {n, 1, 28, 28}; }

// `n` examples of pixels in [0, 1), from a seeded generator.
std::vector<float> RandomInputs(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<float> inputs(n * kPixels);
  for (float& v : inputs) v = pixel(rng);
  return inputs;
}

// softmax(Forward) of `model` for `n` examples: what a server must answer.
std::vector<float> Softmax(Model& model, const std::vector<float>& inputs,
                           int64_t n) {
  c10::InferenceMode inference;
  const torch::Tensor x = torch::from_blob(const_cast<float*>(inputs.data()),
                                           InputShape(n), torch::kFloat);
  const torch::Tensor p = torch::softmax(model.Forward(x), /*dim=*/1).contiguous();
  return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
}

// Empty when `actual` equals `expected` within kTolerance, else what differs.
std::string CompareProbabilities(const std::vector<float>& actual,
                                 const std::vector<float>& expected) {
  if (actual.size() != expected.size()) {
    return absl::StrCat(actual.size(), " probabilities, expected ",
                        expected.size());
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!(std::fabs(actual[i] - expected[i]) <= kTolerance)) {
      return absl::StrCat("probability ", i, " is ", actual[i], ", expected ",
                          expected[i]);
    }
  }
  return "";
}

void ExpectStatus(const absl::Status& status, absl::StatusCode code,
                  const std::string& substring) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(substring));
}

class LiveModelTest : public ::testing::Test {
 protected:
  LiveModelTest()
      : live_(LiveModel::Create(LiveModel::Options()).value()),
        trainer_(kTrainerSeed),
        inputs_(RandomInputs(kBatch, /*seed=*/99)) {}

  // Applies `update` and expects the live model to be the trainer's.
  void ApplyAndExpectTrainerModel(const Update& update) {
    const absl::Status status = live_->Apply(update);
    ASSERT_TRUE(status.ok()) << "version " << update.version() << ": " << status;
    const std::shared_ptr<const LiveModel::Version> current = live_->Current();
    ASSERT_NE(current, nullptr);
    EXPECT_EQ(current->version, update.version());
    EXPECT_EQ(current->run, kRun);
    EXPECT_EQ(current->checksum, trainer_.model().Checksum())
        << "version " << update.version();
    EXPECT_EQ(current->model->Checksum(), current->checksum);
  }

  // Predicts inputs_ and expects the trainer model's answer at `version`.
  void ExpectPredictions(uint64_t version, const std::vector<float>& expected) {
    const absl::StatusOr<LiveModel::Predictions> predictions =
        live_->Predict(InputShape(kBatch), inputs_);
    ASSERT_TRUE(predictions.ok()) << predictions.status();
    EXPECT_EQ(predictions->version, version);
    EXPECT_EQ(CompareProbabilities(predictions->probabilities, expected), "");
  }

  std::unique_ptr<LiveModel> live_;
  test::FakeTrainer trainer_;
  const std::vector<float> inputs_;
};

TEST_F(LiveModelTest, PredictBeforeAnySnapshotIsUnavailable) {
  EXPECT_EQ(live_->Current(), nullptr);
  const absl::StatusOr<LiveModel::Predictions> predictions =
      live_->Predict(InputShape(kBatch), inputs_);
  ExpectStatus(predictions.status(), absl::StatusCode::kUnavailable, "snapshot");
}

TEST_F(LiveModelTest, UpdateBeforeAnySnapshotFailsPrecondition) {
  ExpectStatus(live_->Apply(trainer_.Step()),
               absl::StatusCode::kFailedPrecondition, "before any snapshot");
  EXPECT_EQ(live_->Current(), nullptr);
}

TEST_F(LiveModelTest, SnapshotLoadsTheTrainerModel) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  const std::shared_ptr<const LiveModel::Version> current = live_->Current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->version, 1u);
  EXPECT_EQ(current->run, kRun);
  EXPECT_EQ(current->model->spec().fingerprint(),
            trainer_.model().spec().fingerprint());
}

TEST_F(LiveModelTest, CorruptSnapshotIsRejectedAndNothingIsLoaded) {
  Update flipped = trainer_.Snapshot();
  flipped.mutable_tensors(2)->mutable_values()->at(5) ^= 0x10;
  ExpectStatus(live_->Apply(flipped), absl::StatusCode::kDataLoss,
               "fails its checksum");
  Update wrong_checksum = trainer_.Snapshot();
  wrong_checksum.set_model_checksum(wrong_checksum.model_checksum() ^ 1);
  ExpectStatus(live_->Apply(wrong_checksum), absl::StatusCode::kDataLoss,
               "model checksum");
  // 0 is a checksum like any other, not "unchecked".
  Update no_checksum = trainer_.Snapshot();
  no_checksum.set_model_checksum(0);
  ExpectStatus(live_->Apply(no_checksum), absl::StatusCode::kDataLoss, "model checksum");
  EXPECT_EQ(live_->Current(), nullptr);

  ApplyAndExpectTrainerModel(trainer_.Snapshot());
}

TEST_F(LiveModelTest, EveryVersionIsStampedWithTheTimeItWasApplied) {
  const absl::Time before = absl::Now();
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  const absl::Time snapshot_at = live_->Current()->applied_at;
  ApplyAndExpectTrainerModel(trainer_.Step());
  const absl::Time after = absl::Now();
  EXPECT_GE(snapshot_at, before);
  EXPECT_GE(live_->Current()->applied_at, snapshot_at);
  EXPECT_LE(live_->Current()->applied_at, after);
}

TEST_F(LiveModelTest, RestoreServesASavedSnapshotAsOfItsTimeAndUpdatesFollow) {
  const absl::Time saved_at = absl::FromUnixSeconds(1700000000);
  ASSERT_TRUE(live_->Restore(trainer_.Snapshot(), saved_at).ok());
  ASSERT_NE(live_->Current(), nullptr);
  EXPECT_EQ(live_->Current()->version, 1u);
  EXPECT_EQ(live_->Current()->run, kRun);
  EXPECT_EQ(live_->Current()->checksum, trainer_.model().Checksum());
  EXPECT_EQ(live_->Current()->applied_at, saved_at);
  ExpectPredictions(1, Softmax(trainer_.model(), inputs_, kBatch));

  ApplyAndExpectTrainerModel(trainer_.Step());
  EXPECT_GT(live_->Current()->applied_at, saved_at);

  // Only snapshots are restored; a corrupt one changes nothing.
  ExpectStatus(live_->Restore(trainer_.Step(), saved_at),
               absl::StatusCode::kInvalidArgument, "only a snapshot");
  Update corrupt = trainer_.Snapshot();
  corrupt.mutable_tensors(0)->mutable_values()->at(0) ^= 0x01;
  ExpectStatus(live_->Restore(corrupt, saved_at), absl::StatusCode::kDataLoss,
               "fails its checksum");
  EXPECT_EQ(live_->Current()->version, 2u);
}

TEST_F(LiveModelTest, PredictAnswersTheTrainerModelsSoftmax) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  const std::vector<float> expected = Softmax(trainer_.model(), inputs_, kBatch);

  const absl::StatusOr<LiveModel::Predictions> predictions =
      live_->Predict(InputShape(kBatch), inputs_);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  EXPECT_EQ(predictions->version, 1u);
  EXPECT_EQ(predictions->num_classes, kClasses);
  ASSERT_EQ(predictions->probabilities.size(),
            static_cast<size_t>(kBatch * kClasses));
  ASSERT_EQ(predictions->labels.size(), static_cast<size_t>(kBatch));
  for (int64_t row = 0; row < kBatch; ++row) {
    const auto begin = predictions->probabilities.begin() + row * kClasses;
    double sum = 0;
    for (auto it = begin; it != begin + kClasses; ++it) {
      EXPECT_GE(*it, 0.0f);
      sum += *it;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << row;
    EXPECT_EQ(predictions->labels[row],
              std::max_element(begin, begin + kClasses) - begin)
        << "row " << row;
  }
  EXPECT_EQ(CompareProbabilities(predictions->probabilities, expected), "");
}

TEST_F(LiveModelTest, UpdatesInOrderKeepTheModelBitIdenticalToTheTrainers) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  // No reference outlives an Apply, so each one may recycle the version
  // before the current one.
  for (uint64_t version = 2; version <= 10; ++version) {
    const Update update = trainer_.Step();
    ASSERT_EQ(update.version(), version);
    ApplyAndExpectTrainerModel(update);
    if (HasFatalFailure()) return;
    ExpectPredictions(version, Softmax(trainer_.model(), inputs_, kBatch));
  }
}

TEST_F(LiveModelTest, HeldVersionIsNeverMutatedByLaterUpdates) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  ApplyAndExpectTrainerModel(trainer_.Step());
  ApplyAndExpectTrainerModel(trainer_.Step());
  const std::vector<float> held_outputs =
      Softmax(trainer_.model(), inputs_, kBatch);
  const uint64_t held_checksum = trainer_.model().Checksum();

  // Held across several Applies: the first recycles the older spare, the
  // next ones find the held version in use and must clone instead.
  std::shared_ptr<const LiveModel::Version> held = live_->Current();
  ASSERT_NE(held, nullptr);
  ASSERT_EQ(held->version, 3u);
  std::vector<float> latest_outputs;
  for (int i = 0; i < 3; ++i) {
    ApplyAndExpectTrainerModel(trainer_.Step());
    if (HasFatalFailure()) return;
    latest_outputs = Softmax(trainer_.model(), inputs_, kBatch);
    ExpectPredictions(trainer_.version(), latest_outputs);

    EXPECT_EQ(held->version, 3u);
    EXPECT_EQ(held->checksum, held_checksum);
    EXPECT_EQ(held->model->Checksum(), held_checksum) << "after " << i + 1;
    EXPECT_EQ(CompareProbabilities(Softmax(*held->model, inputs_, kBatch),
                                   held_outputs),
              "")
        << "after " << i + 1;
  }
  EXPECT_NE(CompareProbabilities(latest_outputs, held_outputs), "");

  // Released, it is recycled again and the chain stays bit-identical.
  held.reset();
  for (int i = 0; i < 4; ++i) {
    ApplyAndExpectTrainerModel(trainer_.Step());
    if (HasFatalFailure()) return;
    ExpectPredictions(trainer_.version(),
                      Softmax(trainer_.model(), inputs_, kBatch));
  }
}

TEST_F(LiveModelTest, HoldingVersionsBuildsCopiesOnlyUntilThePoolCoversThem) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  for (int i = 0; i < 3; ++i) ApplyAndExpectTrainerModel(trainer_.Step());
  // Two versions held for good, as by two long predictions: the pool
  // (three spares by default) still has one free to recycle.
  const std::shared_ptr<const LiveModel::Version> first = live_->Current();
  ApplyAndExpectTrainerModel(trainer_.Step());
  const std::shared_ptr<const LiveModel::Version> second = live_->Current();
  // The pool grows to hold them (the held two, the one served, one to
  // write), then stops growing.
  for (int i = 0; i < 4; ++i) ApplyAndExpectTrainerModel(trainer_.Step());
  const uint64_t built = live_->copies_built();
  for (int i = 0; i < 12; ++i) {
    ApplyAndExpectTrainerModel(trainer_.Step());
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(live_->copies_built(), built);
  ExpectPredictions(trainer_.version(), Softmax(trainer_.model(), inputs_, kBatch));
  EXPECT_EQ(first->model->Checksum(), first->checksum);
  EXPECT_EQ(second->model->Checksum(), second->checksum);
}

TEST_F(LiveModelTest, BatchOfUpdatesSwapsOnceToTheLastVersion) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  ApplyAndExpectTrainerModel(trainer_.Step());
  std::vector<Update> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(trainer_.Step());
  ASSERT_OK(live_->ApplyBatch(batch));
  const std::shared_ptr<const LiveModel::Version> current = live_->Current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->version, 7u);
  EXPECT_EQ(current->checksum, trainer_.model().Checksum());
  EXPECT_EQ(current->model->Checksum(), current->checksum);
  ExpectPredictions(7, Softmax(trainer_.model(), inputs_, kBatch));
  // Single updates continue the chain from the batch's spares.
  for (int i = 0; i < 3; ++i) ApplyAndExpectTrainerModel(trainer_.Step());
}

TEST_F(LiveModelTest, BatchThatDoesNotApplyChangesNothing) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  ApplyAndExpectTrainerModel(trainer_.Step());
  const std::vector<float> before = Softmax(trainer_.model(), inputs_, kBatch);
  std::vector<Update> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(trainer_.Step());

  std::vector<Update> gap = {batch[0], batch[2]};
  ExpectStatus(live_->ApplyBatch(gap), absl::StatusCode::kFailedPrecondition,
               "update 5 applies on top of version 4, this server holds version 3");
  std::vector<Update> wrong_checksum = batch;
  wrong_checksum.back().set_model_checksum(wrong_checksum.back().model_checksum() ^ 1);
  SealUpdate(&wrong_checksum.back());
  ExpectStatus(live_->ApplyBatch(wrong_checksum), absl::StatusCode::kDataLoss,
               "after applying version 5");
  ExpectStatus(live_->ApplyBatch({}), absl::StatusCode::kInvalidArgument, "empty");
  std::vector<Update> with_snapshot = {batch[0], trainer_.Snapshot()};
  ExpectStatus(live_->ApplyBatch(with_snapshot), absl::StatusCode::kInvalidArgument,
               "apply it alone");
  EXPECT_EQ(live_->Current()->version, 2u);
  ExpectPredictions(2, before);

  // The failed attempts left nothing behind: the batch applies exactly.
  ASSERT_OK(live_->ApplyBatch(batch));
  EXPECT_EQ(live_->Current()->version, 5u);
  EXPECT_EQ(live_->Current()->model->Checksum(), trainer_.model().Checksum());
}

// The trainer fits its model's input normalisation before deploying it: a
// server built from the snapshot answers raw inputs exactly as the trainer
// does, and keeps doing so as updates arrive.
TEST_F(LiveModelTest, ServesTheFittedInputNormalizationBitForBit) {
  constexpr int64_t kCount = 16;
  // Raw 0-255 pixels: statistics far from the identity normalisation.
  std::vector<float> raw = RandomInputs(kCount, /*seed=*/5);
  for (float& v : raw) v *= 255;
  Model& trained = trainer_.model();
  trained.SetTraining(false);
  const Model::Predictions unfitted = trained.Predict(InputShape(kCount), raw).value();
  ASSERT_OK(trained.FitInputNormalization(raw, kCount));
  Model::Predictions expected = trained.Predict(InputShape(kCount), raw).value();
  ASSERT_NE(expected.probabilities, unfitted.probabilities);

  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  absl::StatusOr<LiveModel::Predictions> served = live_->Predict(InputShape(kCount), raw);
  ASSERT_OK(served);
  EXPECT_EQ(served->probabilities, expected.probabilities);
  EXPECT_EQ(served->labels, expected.labels);

  for (int i = 0; i < 3; ++i) ApplyAndExpectTrainerModel(trainer_.Step());
  expected = trained.Predict(InputShape(kCount), raw).value();
  served = live_->Predict(InputShape(kCount), raw);
  ASSERT_OK(served);
  EXPECT_EQ(served->probabilities, expected.probabilities);
}

// A server builds the model its first snapshot describes, whatever its
// input shape and class count: here flat vectors of 16 features and 3
// classes, as a built-in MLP and as a TorchScript module that declares
// neither (the trainer's config said them).
TEST(LiveModelSignatureTest, ServesTheSnapshotsInputShapeAndClasses) {
  std::vector<std::unique_ptr<Model>> models;
  models.push_back(Model::Create("mlp", /*seed=*/2, {{16}, 3}).value());
  models.push_back(
      Model::Load(test::Runfile("tests/mlp16x3_undeclared.pt"), /*seed=*/2, {{16}, 3})
          .value());
  for (std::unique_ptr<Model>& model : models) {
    const std::string architecture = model->spec().architecture();
    SCOPED_TRACE(architecture);
    test::FakeTrainer trainer(std::move(model), /*seed=*/5);
    trainer.model().SetTraining(false);
    std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options()).value();
    ASSERT_OK(live->Apply(trainer.Snapshot()));
    ASSERT_NE(live->Current(), nullptr);
    EXPECT_EQ(live->Current()->model->spec().fingerprint(),
              trainer.model().spec().fingerprint());

    std::vector<float> features(4 * 16);
    for (size_t i = 0; i < features.size(); ++i) features[i] = 0.1f * (i % 7);
    absl::StatusOr<LiveModel::Predictions> served = live->Predict({4, 16}, features);
    ASSERT_OK(served);
    EXPECT_EQ(served->num_classes, 3);
    EXPECT_EQ(served->probabilities,
              trainer.model().Predict({4, 16}, features).value().probabilities);
    EXPECT_THAT(live->Predict({4, 1, 28, 28}, std::vector<float>(4 * 784)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("expected inputs of shape [N, 16] with N >= 1")));

    for (int i = 0; i < 3; ++i) ASSERT_OK(live->Apply(trainer.Step()));
    EXPECT_EQ(live->Current()->checksum, trainer.model().Checksum());
    served = live->Predict({4, 16}, features);
    ASSERT_OK(served);
    EXPECT_EQ(served->probabilities,
              trainer.model().Predict({4, 16}, features).value().probabilities);
  }
}

// One way to spoil the next update, and how the server must refuse it.
struct Corruption {
  const char* name;
  void (*spoil)(Update*);
  absl::StatusCode code;
  const char* message;
};

void PrintTo(const Corruption& corruption, std::ostream* os) {
  *os << corruption.name;
}

class LiveModelRejectionTest : public LiveModelTest,
                               public ::testing::WithParamInterface<Corruption> {};

TEST_P(LiveModelRejectionTest, LeavesTheCurrentVersionAndTheNextUpdateApplies) {
  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  ApplyAndExpectTrainerModel(trainer_.Step());
  ApplyAndExpectTrainerModel(trainer_.Step());
  const std::vector<float> outputs = Softmax(trainer_.model(), inputs_, kBatch);
  const std::shared_ptr<const LiveModel::Version> before = live_->Current();
  ASSERT_NE(before, nullptr);
  const uint64_t checksum = before->checksum;

  const Update next = trainer_.Step();
  Update spoiled = next;
  GetParam().spoil(&spoiled);
  ExpectStatus(live_->Apply(spoiled), GetParam().code, GetParam().message);

  EXPECT_EQ(live_->Current(), before);
  EXPECT_EQ(before->version, 3u);
  EXPECT_EQ(before->checksum, checksum);
  EXPECT_EQ(before->model->Checksum(), checksum);
  ExpectPredictions(3, outputs);

  ApplyAndExpectTrainerModel(next);
  ExpectPredictions(4, Softmax(trainer_.model(), inputs_, kBatch));
  ApplyAndExpectTrainerModel(trainer_.Step());
}

INSTANTIATE_TEST_SUITE_P(
    Corruptions, LiveModelRejectionTest,
    ::testing::Values(
        Corruption{"SkipsAVersion",
                   [](Update* u) {
                     u->set_version(u->version() + 1);
                     u->set_base_version(u->base_version() + 1);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kFailedPrecondition,
                   "applies on top of version 4, this server holds version 3"},
        Corruption{"ReplaysTheCurrentVersion",
                   [](Update* u) {
                     u->set_version(u->version() - 1);
                     u->set_base_version(u->base_version() - 1);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kFailedPrecondition,
                   "applies on top of version 2, this server holds version 3"},
        Corruption{"JumpsSeveralVersions",
                   [](Update* u) {
                     u->set_version(u->version() + 5);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kInvalidArgument, "moves one version forward"},
        Corruption{"ComesFromAnotherRun",
                   [](Update* u) {
                     u->set_run(u->run() ^ 1);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kFailedPrecondition, "another trainer run"},
        Corruption{"IsForAnotherModel",
                   [](Update* u) {
                     u->set_fingerprint(u->fingerprint() ^ 1);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kFailedPrecondition, "fingerprint"},
        Corruption{"HasAFlippedValueByte",
                   [](Update* u) {
                     u->mutable_tensors(3)->mutable_values()->at(1) ^= 0x04;
                   },
                   absl::StatusCode::kDataLoss, "fails its checksum"},
        Corruption{"HasAFlippedIndexByte",
                   [](Update* u) {
                     u->mutable_tensors(0)->mutable_indices()->at(0) ^= 0x01;
                   },
                   absl::StatusCode::kDataLoss, "fails its checksum"},
        Corruption{"HasTheWrongModelChecksum",
                   [](Update* u) {
                     u->set_model_checksum(u->model_checksum() ^ 1);
                   },
                   absl::StatusCode::kDataLoss, "model checksum"},
        Corruption{"CarriesNoModelChecksum",
                   [](Update* u) { u->set_model_checksum(0); },
                   absl::StatusCode::kDataLoss, "model checksum"},
        Corruption{"CarriesANaN",
                   [](Update* u) {
                     const float nan = std::nanf("");
                     u->mutable_tensors(3)->mutable_values()->replace(
                         0, sizeof(nan), reinterpret_cast<const char*>(&nan), sizeof(nan));
                     SealUpdate(u);
                   },
                   absl::StatusCode::kInvalidArgument, "must be finite"},
        Corruption{"HasAnUnknownEncoding",
                   [](Update* u) {
                     u->set_encoding(VALUE_ENCODING_UNSPECIFIED);
                     SealUpdate(u);
                   },
                   absl::StatusCode::kInvalidArgument, "encoding"}),
    [](const ::testing::TestParamInfo<Corruption>& info) {
      return std::string(info.param.name);
    });

class LiveModelInputTest : public LiveModelTest {
 protected:
  void SetUp() override { ApplyAndExpectTrainerModel(trainer_.Snapshot()); }

  absl::Status PredictStatus(const std::vector<int64_t>& shape,
                             const std::vector<float>& values) {
    return live_->Predict(shape, values).status();
  }
};

TEST_F(LiveModelInputTest, RejectsAFlatShape) {
  ExpectStatus(PredictStatus({1, kPixels}, RandomInputs(1, 1)),
               absl::StatusCode::kInvalidArgument,
               "expected inputs of shape [N, 1, 28, 28] with N >= 1, got [1, 784]");
}

TEST_F(LiveModelInputTest, RejectsAnEmptyBatch) {
  ExpectStatus(PredictStatus(InputShape(0), {}),
               absl::StatusCode::kInvalidArgument, "N >= 1, got [0, 1, 28, 28]");
}

TEST_F(LiveModelInputTest, RejectsAValueCountThatDoesNotMatchTheShape) {
  std::vector<float> values = RandomInputs(2, 1);
  values.pop_back();
  ExpectStatus(PredictStatus(InputShape(2), values),
               absl::StatusCode::kInvalidArgument,
               "shape [2, 1, 28, 28] needs 1568 values, got 1567");
}

TEST_F(LiveModelInputTest, RejectsANaN) {
  std::vector<float> values = RandomInputs(2, 1);
  values[5] = std::numeric_limits<float>::quiet_NaN();
  ExpectStatus(PredictStatus(InputShape(2), values),
               absl::StatusCode::kInvalidArgument,
               "value 5 (example 0) is not finite");
}

TEST_F(LiveModelInputTest, RejectsAnInfinity) {
  std::vector<float> values = RandomInputs(2, 1);
  values[kPixels + 3] = -std::numeric_limits<float>::infinity();
  ExpectStatus(PredictStatus(InputShape(2), values),
               absl::StatusCode::kInvalidArgument,
               "value 787 (example 1) is not finite");
}

TEST(LiveModelOptionsTest, CreateRejectsAMaxBatchBelowOne) {
  LiveModel::Options options;
  options.max_batch = 0;
  ExpectStatus(LiveModel::Create(options).status(),
               absl::StatusCode::kInvalidArgument, "max_batch must be >= 1, got 0");
}

TEST(LiveModelOptionsTest, RejectsABatchOverMaxBatch) {
  LiveModel::Options options;
  options.max_batch = 4;
  std::unique_ptr<LiveModel> live = LiveModel::Create(options).value();
  test::FakeTrainer trainer(kTrainerSeed);
  ASSERT_TRUE(live->Apply(trainer.Snapshot()).ok());

  EXPECT_TRUE(live->Predict(InputShape(4), RandomInputs(4, 1)).ok());
  ExpectStatus(live->Predict(InputShape(5), RandomInputs(5, 1)).status(),
               absl::StatusCode::kInvalidArgument,
               "batch of 5 examples exceeds the limit of 4");
}

// What one predicting thread saw.
struct Tally {
  int64_t predictions = 0;
  int64_t problems = 0;
  std::string first_problem;
  uint64_t last_version = 0;
  std::set<uint64_t> versions;
};

constexpr int kPredictors = 2;

TEST_F(LiveModelTest, ConcurrentPredictionsNeverSeeATornModel) {
  constexpr int kUpdates = 200;
  constexpr int64_t kExamples = 2;
  const std::vector<float> inputs = RandomInputs(kExamples, /*seed=*/5);

  ApplyAndExpectTrainerModel(trainer_.Snapshot());
  // expected[v] and checksums[v]: the trainer's model at version v.
  std::vector<std::vector<float>> expected(kUpdates + 2);
  std::vector<uint64_t> checksums(kUpdates + 2);
  expected[1] = Softmax(trainer_.model(), inputs, kExamples);
  checksums[1] = trainer_.model().Checksum();
  std::vector<Update> updates;
  for (int i = 0; i < kUpdates; ++i) {
    updates.push_back(trainer_.Step());
    const uint64_t v = updates.back().version();
    expected[v] = Softmax(trainer_.model(), inputs, kExamples);
    checksums[v] = trainer_.model().Checksum();
  }
  const uint64_t last_version = kUpdates + 1;

  absl::Mutex mu;   // protects started
  int started = 0;  // predictors with at least one answer
  std::atomic<bool> done{false};
  std::vector<Tally> tallies(kPredictors);
  auto predict_loop = [&](Tally* tally) {
    auto problem = [tally](const std::string& what) {
      if (tally->problems++ == 0) tally->first_problem = what;
    };
    for (;;) {
      const bool finishing = done.load();
      const absl::StatusOr<LiveModel::Predictions> p =
          live_->Predict(InputShape(kExamples), inputs);
      if (!p.ok()) {
        problem(p.status().ToString());
      } else if (p->version < 1 || p->version > last_version) {
        problem(absl::StrCat("version ", p->version, " was never published"));
      } else {
        const std::string diff =
            CompareProbabilities(p->probabilities, expected[p->version]);
        if (!diff.empty()) problem(absl::StrCat("version ", p->version, ": ", diff));
        if (p->version < tally->last_version) {
          problem(absl::StrCat("version ", p->version, " after ",
                               tally->last_version));
        }
        tally->last_version = p->version;
        tally->versions.insert(p->version);
      }
      if (tally->predictions++ == 0) {
        absl::MutexLock lock(&mu);
        ++started;
      }
      if (finishing) return;
    }
  };
  std::vector<std::thread> predictors;
  for (Tally& tally : tallies) predictors.emplace_back(predict_loop, &tally);

  // Start applying once every predictor is running.
  mu.Lock();
  const bool all_started = mu.AwaitWithTimeout(
      absl::Condition(
          +[](int* n) { return *n >= kPredictors; }, &started),
      absl::Seconds(30));
  mu.Unlock();
  EXPECT_TRUE(all_started);
  for (const Update& update : updates) {
    if (!all_started) break;
    const absl::Status status = live_->Apply(update);
    EXPECT_TRUE(status.ok()) << "version " << update.version() << ": " << status;
    if (!status.ok()) break;
    EXPECT_EQ(live_->Current()->checksum, checksums[update.version()]);
  }
  done.store(true);
  for (std::thread& t : predictors) t.join();

  for (const Tally& tally : tallies) {
    EXPECT_GT(tally.predictions, 0);
    EXPECT_EQ(tally.problems, 0) << tally.first_problem;
    // The last answer came after the last Apply.
    EXPECT_EQ(tally.last_version, last_version);
  }
  std::set<uint64_t> seen;
  for (const Tally& tally : tallies) {
    seen.insert(tally.versions.begin(), tally.versions.end());
  }
  RecordProperty("distinct_versions_predicted", static_cast<int>(seen.size()));
}

}  // namespace
}  // namespace contrail
