#include "trainer/training_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

TEST(TrainingConfigTest, AnEmptyConfigRunsTheDefaults) {
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(TrainingConfig());
  ASSERT_OK(plan);
  EXPECT_EQ(plan->config.model(), "lenet5");
  EXPECT_EQ(plan->trainer.mode, TrainingMode::kProactive);
  EXPECT_EQ(plan->trainer.trigger_size, 8);
  EXPECT_EQ(plan->trainer.batch_size, 128);
  EXPECT_EQ(plan->trainer.sparsity.sparsity, Sparsity::kTopK);
  EXPECT_DOUBLE_EQ(plan->trainer.sparsity.ratio, 0.001);
  EXPECT_EQ(plan->trainer.optimizer.kind, OptimizerKind::kAdam);
  // The automatic deploy budget of sparse steps is their own ratio.
  EXPECT_DOUBLE_EQ(plan->publisher.deploy_ratio, 0.001);
  EXPECT_DOUBLE_EQ(plan->config.deploy_ratio(), 0.001);
  EXPECT_EQ(plan->publisher.encoding, FP32_ASSIGN);
  EXPECT_EQ(plan->replay.count, 30000);
  EXPECT_EQ(plan->replay.unpaced_examples, 10000);
  EXPECT_EQ(plan->replay.drift, Drift::kNone);
}

TEST(TrainingConfigTest, SetFieldsWinAndAnExplicitZeroIsKept) {
  TrainingConfig config;
  config.set_initial_epochs(0);
  config.set_warmup_updates(3);
  config.set_sparsity(TrainingConfig::SPARSITY_RANDOMK);
  config.set_ratio(0.01);
  config.set_update_values(BF16_DELTA);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->trainer.initial_epochs, 0);
  EXPECT_EQ(plan->trainer.warmup_updates, 3);
  EXPECT_EQ(plan->trainer.sparsity.sparsity, Sparsity::kRandomK);
  EXPECT_DOUBLE_EQ(plan->publisher.deploy_ratio, 0.01);
  EXPECT_EQ(plan->publisher.encoding, BF16_DELTA);
}

TEST(TrainingConfigTest, OnlineTrainsOnBatchesOfNewExamples) {
  TrainingConfig config;
  config.set_mode(TrainingConfig::MODE_ONLINE);
  config.set_batch_size(32);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->trainer.trigger_size, 32);
  EXPECT_EQ(plan->config.trigger_size(), 32);
}

TEST(TrainingConfigTest, FullRetrainingIsDenseAndDeploysEverything) {
  TrainingConfig config;
  config.set_mode(TrainingConfig::MODE_FULL);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->trainer.sparsity.sparsity, Sparsity::kNone);
  EXPECT_DOUBLE_EQ(plan->publisher.deploy_ratio, 1.0);
}

TEST(TrainingConfigTest, DriftIsCountedFromTheStartOfTheStream) {
  TrainingConfig config;
  config.set_initial_examples(500);
  config.set_stream_examples(1000);
  config.set_drift(TrainingConfig::DRIFT_ROTATE);
  config.set_drift_at(100);
  config.set_replay_rate(50);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->replay.drift, Drift::kRotate);
  EXPECT_EQ(plan->replay.drift_begin, 600);
  EXPECT_EQ(plan->replay.count, 1500);
  EXPECT_DOUBLE_EQ(plan->replay.rate, 50);
}

TEST(TrainingConfigTest, RejectsOutOfRangeValuesNamingTheField) {
  TrainingConfig zero_trigger;
  zero_trigger.set_trigger_size(0);
  EXPECT_THAT(ResolveTrainingConfig(zero_trigger),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trigger_size: must be >= 1, got 0")));
  TrainingConfig big_trigger;
  big_trigger.set_trigger_size(200);
  EXPECT_THAT(ResolveTrainingConfig(big_trigger),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trigger_size: 200 exceeds batch_size 128")));
  TrainingConfig ratio;
  ratio.set_ratio(1.5);
  EXPECT_THAT(ResolveTrainingConfig(ratio),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ratio: must be in (0, 1], got 1.5")));
  TrainingConfig lr;
  lr.set_lr(-1);
  EXPECT_THAT(ResolveTrainingConfig(lr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lr: must be")));
  TrainingConfig deploy;
  deploy.set_deploy_ratio(0);
  EXPECT_THAT(ResolveTrainingConfig(deploy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("deploy_ratio")));
  TrainingConfig mode;
  mode.set_mode(static_cast<TrainingConfig::Mode>(9));
  EXPECT_THAT(ResolveTrainingConfig(mode),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("mode: unknown value 9; expected one of proactive, "
                                 "online, full")));
  TrainingConfig history;
  history.set_history_size(5000);  // below the 10000 initial examples
  EXPECT_THAT(ResolveTrainingConfig(history),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("history_size: must be 0 (every example) or at least")));
  TrainingConfig wait;
  wait.set_max_wait_ms(-1);
  EXPECT_THAT(ResolveTrainingConfig(wait),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_wait_ms")));
}

TEST(TrainingConfigTest, HistoryAndMaxWaitReachTheTrainer) {
  TrainingConfig config;
  config.set_history_size(0);
  config.set_max_wait_ms(250);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->trainer.history_size, 0);
  EXPECT_EQ(plan->trainer.max_wait, absl::Milliseconds(250));
  absl::StatusOr<TrainingPlan> defaults = ResolveTrainingConfig(TrainingConfig());
  ASSERT_OK(defaults);
  EXPECT_EQ(defaults->trainer.history_size, 100000);
  EXPECT_EQ(defaults->trainer.max_wait, absl::Seconds(1));
}

TEST(TrainingConfigTest, InputShapeAndClassesGoToTheModelSignature) {
  absl::StatusOr<TrainingPlan> unset = ResolveTrainingConfig(TrainingConfig());
  ASSERT_OK(unset);
  // Unset: the model's declaration or the default decides (Model::Load).
  EXPECT_TRUE(unset->signature.input_shape.empty());
  EXPECT_EQ(unset->signature.num_classes, 0);
  EXPECT_EQ(unset->config.input_shape_size(), 0);
  EXPECT_FALSE(unset->config.has_num_classes());

  TrainingConfig config;
  config.add_input_shape(4);
  config.add_input_shape(8);
  config.set_num_classes(3);
  absl::StatusOr<TrainingPlan> plan = ResolveTrainingConfig(config);
  ASSERT_OK(plan);
  EXPECT_THAT(plan->signature.input_shape, ::testing::ElementsAre(4, 8));
  EXPECT_EQ(plan->signature.num_classes, 3);
}

TEST(TrainingConfigTest, RejectsAnEmptySizeOrNoClasses) {
  TrainingConfig shape;
  shape.add_input_shape(4);
  shape.add_input_shape(0);
  EXPECT_THAT(ResolveTrainingConfig(shape),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input_shape: sizes must be >= 1, got [4, 0]")));
  TrainingConfig classes;
  classes.set_num_classes(0);
  EXPECT_THAT(ResolveTrainingConfig(classes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("num_classes: must be >= 1, got 0")));
}

TEST(TrainingConfigTest, MergeReplacesTheInputShapeInsteadOfExtendingIt) {
  TrainingConfig base;
  base.add_input_shape(16);
  base.set_trigger_size(4);
  TrainingConfig overrides;
  overrides.add_input_shape(4);
  overrides.add_input_shape(8);
  const TrainingConfig merged = MergeTrainingConfig(base, overrides);
  EXPECT_THAT(merged.input_shape(), ::testing::ElementsAre(4, 8));
  EXPECT_EQ(merged.trigger_size(), 4);
  // An override that sets no shape keeps the base's.
  EXPECT_THAT(MergeTrainingConfig(base, TrainingConfig()).input_shape(),
              ::testing::ElementsAre(16));
}

TEST(ConfigEnumTest, ParsesTheNamesUsersWrite) {
  EXPECT_EQ(ParseConfigEnum<TrainingConfig::Sparsity>("topk").value(),
            TrainingConfig::SPARSITY_TOPK);
  EXPECT_EQ(ParseConfigEnum<TrainingConfig::Drift>("permute_labels").value(),
            TrainingConfig::DRIFT_PERMUTE_LABELS);
  EXPECT_EQ(ParseConfigEnum<TrainingConfig::Mode>("Online").value(),
            TrainingConfig::MODE_ONLINE);
  EXPECT_EQ(ConfigEnumName(TrainingConfig::OPTIMIZER_SGD), "sgd");
  EXPECT_THAT(ParseConfigEnum<TrainingConfig::Sparsity>("bottomk"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown sparsity \"bottomk\"; expected one of none, "
                                 "topk, randomk")));
  EXPECT_THAT(ParseConfigEnum<TrainingConfig::Mode>("unspecified"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unspecified")));
}

}  // namespace
}  // namespace contrail
