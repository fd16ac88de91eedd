#include "trainer/experiment_runner.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/experiment.pb.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kTrainCount = 1000;
constexpr int64_t kTestCount = 300;
constexpr int64_t kStreamExamples = 200;

std::string TempDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

std::string DataDir() { return TempDir() + "/experiment_runner_data"; }

// Three configurations on a short stream: exact sparse proactive training,
// online learning and full retraining twice.
ExperimentGrid SmallGrid() {
  absl::StatusOr<ExperimentGrid> grid = ParseExperimentGrid(R"pb(
    defaults {
      model: "lenet5"
      initial_examples: 200
      initial_epochs: 1
      stream_examples: 200
      batch_size: 32
      seed: 3
      curve_every: 50
    }
    configs {
      name: "topk"
      config { mode: MODE_PROACTIVE trigger_size: 8 sparsity: SPARSITY_TOPK ratio: 0.01 }
    }
    configs { name: "online" config { mode: MODE_ONLINE sparsity: SPARSITY_NONE } }
    configs { name: "full" config { mode: MODE_FULL retrain_every: 100 retrain_epochs: 1 } }
  )pb", "small grid");
  EXPECT_TRUE(grid.ok()) << grid.status();
  grid->set_data_dir(DataDir());
  return *grid;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class ExperimentRunnerTest : public ::testing::Test {
 protected:
  // Runs the small grid once for every test of the suite.
  static void SetUpTestSuite() {
    const absl::Status written =
        test::WriteSyntheticFashionMnist(DataDir(), kTrainCount, kTestCount, /*seed=*/7);
    ASSERT_TRUE(written.ok()) << written;
    absl::StatusOr<std::unique_ptr<ExperimentRunner>> runner =
        ExperimentRunner::Create(SmallGrid());
    ASSERT_TRUE(runner.ok()) << runner.status();
    absl::StatusOr<std::vector<ExperimentResult>> results = (*runner)->Run();
    ASSERT_TRUE(results.ok()) << results.status();
    grid_ = new ExperimentGrid((*runner)->grid());
    results_ = new std::vector<ExperimentResult>(*std::move(results));
  }

  static void TearDownTestSuite() {
    delete grid_;
    delete results_;
    grid_ = nullptr;
    results_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(results_, nullptr);
    ASSERT_EQ(results_->size(), 3u);
  }

  static const ExperimentResult& Result(int i) { return (*results_)[i]; }

  static ExperimentGrid* grid_;
  static std::vector<ExperimentResult>* results_;
};

ExperimentGrid* ExperimentRunnerTest::grid_ = nullptr;
std::vector<ExperimentResult>* ExperimentRunnerTest::results_ = nullptr;

TEST_F(ExperimentRunnerTest, RunsEveryConfigInGridOrder) {
  EXPECT_EQ(Result(0).config, "topk");
  EXPECT_EQ(Result(0).mode, "proactive");
  EXPECT_EQ(Result(1).config, "online");
  EXPECT_EQ(Result(1).mode, "online");
  EXPECT_EQ(Result(2).config, "full");
  EXPECT_EQ(Result(2).mode, "full");
}

TEST_F(ExperimentRunnerTest, OnlineTriggerSizeIsTheBatchSize) {
  EXPECT_EQ(Result(1).trigger_size, 32);
  EXPECT_EQ(grid_->configs(1).config().trigger_size(), 32);
}

TEST_F(ExperimentRunnerTest, CurvesEndAtTheStreamLengthWithAccuraciesInRange) {
  for (const ExperimentResult& result : *results_) {
    SCOPED_TRACE(result.config);
    ASSERT_FALSE(result.curve.empty());
    for (size_t i = 1; i < result.curve.size(); ++i) {
      EXPECT_GT(result.curve[i].examples, result.curve[i - 1].examples);
    }
    EXPECT_EQ(result.curve.back().examples, kStreamExamples);
    for (const StreamTrainer::CurvePoint& point : result.curve) {
      EXPECT_GE(point.trainer_accuracy, 0.0);
      EXPECT_LE(point.trainer_accuracy, 1.0);
      EXPECT_GE(point.served_accuracy, 0.0);
      EXPECT_LE(point.served_accuracy, 1.0);
    }
    EXPECT_EQ(result.curve.back().trainer_accuracy, result.trainer_prequential);
    EXPECT_EQ(result.curve.back().served_accuracy, result.served_prequential);
    EXPECT_GE(result.served_test_accuracy, 0.0);
    EXPECT_LE(result.served_test_accuracy, 1.0);
  }
}

// With exact (fp32) sparse updates the mirror equals the trainer after every
// publish, so both predict every arrival alike.
TEST_F(ExperimentRunnerTest, ServedModelFollowsExactSparseTrainer) {
  const ExperimentResult& topk = Result(0);
  EXPECT_EQ(topk.served_prequential, topk.trainer_prequential);
  for (const StreamTrainer::CurvePoint& point : topk.curve) {
    EXPECT_EQ(point.served_accuracy, point.trainer_accuracy) << point.examples;
  }
  EXPECT_EQ(topk.steps, kStreamExamples / 8);
  EXPECT_GT(topk.updates, 0);
  EXPECT_LE(topk.updates, topk.steps);
  // About 1 % of each tensor (at least one entry each) per update.
  EXPECT_GT(topk.entries_per_update(), 0.0);
  EXPECT_LT(topk.entries_per_update_percent(), 1.1);
  EXPECT_GT(topk.bytes_per_update(), 0.0);
  EXPECT_GT(topk.stream_seconds, 0.0);
}

TEST_F(ExperimentRunnerTest, FullRetrainingRetrainsEveryRetrainEveryExamples) {
  const ExperimentResult& full = Result(2);
  EXPECT_EQ(full.retrains, 2);
  EXPECT_EQ(full.steps, 0);
  EXPECT_GT(full.updates, 0);
}

TEST_F(ExperimentRunnerTest, CsvHasHeaderAndOneRowPerCurvePoint) {
  const std::string path = TempDir() + "/curves.csv";
  ASSERT_TRUE(WriteCurvesCsv(*results_, path).ok());
  const std::vector<std::string> lines =
      absl::StrSplit(ReadFile(path), '\n', absl::SkipEmpty());
  size_t points = 0;
  for (const ExperimentResult& result : *results_) points += result.curve.size();
  ASSERT_EQ(lines.size(), points + 1);
  EXPECT_EQ(lines[0],
            "config,examples,trainer_prequential,served_prequential,trainer_window,"
            "served_window");
  const std::vector<std::string> first = absl::StrSplit(lines[1], ',');
  EXPECT_EQ(first.size(), 6u);
  EXPECT_EQ(first[0], "topk");
  EXPECT_EQ(first[1], std::to_string(Result(0).curve[0].examples));
}

TEST_F(ExperimentRunnerTest, MarkdownTableHasOneRowPerConfig) {
  const std::string path = TempDir() + "/results.md";
  ASSERT_TRUE(WriteMarkdownTable(*results_, *grid_, path).ok());
  const std::string text = ReadFile(path);
  EXPECT_THAT(text, HasSubstr("Model lenet5"));
  EXPECT_THAT(text, HasSubstr("b = 32"));
  std::vector<std::string> rows;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "| ") && !absl::StartsWith(line, "| ---")) {
      rows.emplace_back(line);
    }
  }
  // The header, then one row per config.
  ASSERT_EQ(rows.size(), 1 + results_->size());
  EXPECT_THAT(rows[0], HasSubstr("served prequential"));
  EXPECT_THAT(rows[0], HasSubstr("served test accuracy"));
  EXPECT_TRUE(absl::StartsWith(rows[1], "| topk | proactive | 8 | topk 1% |"))
      << rows[1];
  EXPECT_TRUE(absl::StartsWith(rows[2], "| online | online | 32 | dense |")) << rows[2];
  EXPECT_TRUE(absl::StartsWith(rows[3], "| full | full (c=100, e=1, 2 retrains) | - |"))
      << rows[3];
}

TEST_F(ExperimentRunnerTest, WritePlotDrawsAPngWhenGnuplotIsInstalled) {
  const std::string dir = TempDir();
  const absl::Status plotted = WritePlot(*results_, dir);
  if (plotted.code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << plotted;
  }
  ASSERT_TRUE(plotted.ok()) << plotted;
  const std::string png = ReadFile(dir + "/curves.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_THAT(ReadFile(dir + "/curves.gp"), HasSubstr("title \"online\""));
}

TEST_F(ExperimentRunnerTest, WritePlotWithoutGnuplotIsFailedPrecondition) {
  const char* path = std::getenv("PATH");
  const std::string saved = path != nullptr ? path : "";
  const std::string dir = TempDir() + "/no_gnuplot";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  setenv("PATH", dir.c_str(), /*overwrite=*/1);
  const absl::Status plotted = WritePlot(*results_, dir);
  setenv("PATH", saved.c_str(), /*overwrite=*/1);
  EXPECT_EQ(plotted.code(), absl::StatusCode::kFailedPrecondition) << plotted;
  EXPECT_THAT(plotted.message(), HasSubstr("gnuplot-nox"));
  EXPECT_THAT(ReadFile(dir + "/curves.gp"), HasSubstr("plot $c0"));
}

// Validation runs before any data is read, so these need no data.
class ExperimentGridValidationTest : public ::testing::Test {
 protected:
  static absl::Status CreateStatus(const ExperimentGrid& grid) {
    absl::StatusOr<std::unique_ptr<ExperimentRunner>> runner =
        ExperimentRunner::Create(grid);
    return runner.status();
  }

  static ExperimentGrid GridWithMissingData() {
    ExperimentGrid grid = SmallGrid();
    grid.set_data_dir(TempDir() + "/does_not_exist");
    return grid;
  }
};

TEST_F(ExperimentGridValidationTest, RejectsUnknownModeNamingTheConfig) {
  ExperimentGrid grid = GridWithMissingData();
  grid.mutable_configs(1)->mutable_config()->set_mode(
      static_cast<TrainingConfig::Mode>(42));
  const absl::Status status = CreateStatus(grid);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("config \"online\" mode: unknown value 42"));
  EXPECT_THAT(status.message(), HasSubstr("proactive, online, full"));
}

TEST_F(ExperimentGridValidationTest, RejectsUnknownSparsityAndEncoding) {
  ExperimentGrid sparsity = GridWithMissingData();
  sparsity.mutable_configs(0)->mutable_config()->set_sparsity(
      static_cast<TrainingConfig::Sparsity>(42));
  const absl::Status sparsity_status = CreateStatus(sparsity);
  EXPECT_EQ(sparsity_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sparsity_status.message(), HasSubstr("config \"topk\" sparsity"));

  ExperimentGrid encoding = GridWithMissingData();
  encoding.mutable_configs(2)->mutable_config()->set_update_values(
      static_cast<ValueEncoding>(42));
  const absl::Status encoding_status = CreateStatus(encoding);
  EXPECT_EQ(encoding_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(encoding_status.message(), HasSubstr("config \"full\" update_values"));
}

TEST_F(ExperimentGridValidationTest, RejectsDuplicateNamesAndOversizedTrigger) {
  ExperimentGrid duplicate = GridWithMissingData();
  duplicate.mutable_configs(1)->set_name("topk");
  const absl::Status duplicate_status = CreateStatus(duplicate);
  EXPECT_EQ(duplicate_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate_status.message(), HasSubstr("same name"));

  ExperimentGrid trigger = GridWithMissingData();
  trigger.mutable_configs(0)->mutable_config()->set_trigger_size(64);
  const absl::Status trigger_status = CreateStatus(trigger);
  EXPECT_EQ(trigger_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(trigger_status.message(),
              HasSubstr("config \"topk\" trigger_size: 64 exceeds batch_size 32"));
}

TEST_F(ExperimentGridValidationTest, RejectsUnknownModelAndEmptyGrid) {
  ExperimentGrid model = GridWithMissingData();
  model.mutable_configs(2)->mutable_config()->set_model("alexnet");
  const absl::Status model_status = CreateStatus(model);
  EXPECT_EQ(model_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model_status.message(), HasSubstr("config \"full\" model"));

  ExperimentGrid empty = GridWithMissingData();
  empty.clear_configs();
  EXPECT_EQ(CreateStatus(empty).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ExperimentGridValidationTest, ValidGridFailsOnlyOnTheMissingData) {
  EXPECT_EQ(CreateStatus(GridWithMissingData()).code(), absl::StatusCode::kNotFound);
}

// A training step that fails (the TorchScript module raises in its 11th
// training forward pass, in the stream) fails the run, naming the config
// and the error, instead of reporting a stream that stopped early.
TEST(ExperimentRunnerFailureTest, FailedTrainingStepFailsTheRun) {
  ASSERT_OK(test::WriteSyntheticFashionMnist(DataDir(), kTrainCount, kTestCount,
                                             /*seed=*/7));
  ExperimentGrid grid = SmallGrid();
  grid.mutable_defaults()->set_model(test::Runfile("tests/failing_cnn.pt"));
  grid.clear_configs();
  ExperimentConfig* config = grid.add_configs();
  config->set_name("doomed");
  config->mutable_config()->set_sparsity(TrainingConfig::SPARSITY_TOPK);
  config->mutable_config()->set_ratio(0.01);
  absl::StatusOr<std::unique_ptr<ExperimentRunner>> runner =
      ExperimentRunner::Create(grid);
  ASSERT_OK(runner);
  EXPECT_THAT((*runner)->Run(),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("config \"doomed\""),
                             HasSubstr("injected fault: training step failed"))));
}

TEST(ParseExperimentGridTest, ReportsTheSourceAndLine) {
  const absl::StatusOr<ExperimentGrid> grid =
      ParseExperimentGrid("data_dir: \"d\"\nbatch_sise: 3\n", "my_grid.textproto");
  EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(grid.status().message(), HasSubstr("my_grid.textproto:2:"));
  EXPECT_THAT(grid.status().message(), HasSubstr("batch_sise"));
}

TEST(ParseExperimentGridTest, ReadMissingFileIsNotFound) {
  EXPECT_EQ(ReadExperimentGrid(TempDir() + "/no_such_grid.textproto").status().code(),
            absl::StatusCode::kNotFound);
}

// A burst of label noise (every label permuted for 300 streamed examples):
// with the guard, deployment holds and the servers are rolled back; without
// it, neither.
TEST(ExperimentRunnerGuardTest, GuardHoldsAndRollsBackDuringLabelNoise) {
  const absl::Status written =
      test::WriteSyntheticFashionMnist(DataDir(), kTrainCount, kTestCount, /*seed=*/7);
  ASSERT_TRUE(written.ok()) << written;
  absl::StatusOr<ExperimentGrid> grid = ParseExperimentGrid(R"pb(
    defaults {
      model: "lenet5"
      mode: MODE_PROACTIVE
      initial_examples: 200
      initial_epochs: 2
      stream_examples: 700
      trigger_size: 8
      batch_size: 32
      sparsity: SPARSITY_NONE
      seed: 3
      curve_every: 50
      drift: DRIFT_PERMUTE_LABELS
      drift_at: 300
      drift_until: 600
      guard_window: 100
    }
    configs { name: "no guard" config { guard_drop: 0 } }
    configs { name: "guard" config { guard_drop: 0.1 } }
  )pb", "guard grid");
  ASSERT_TRUE(grid.ok()) << grid.status();
  grid->set_data_dir(DataDir());
  absl::StatusOr<std::unique_ptr<ExperimentRunner>> runner = ExperimentRunner::Create(*grid);
  ASSERT_TRUE(runner.ok()) << runner.status();
  absl::StatusOr<std::vector<ExperimentResult>> results = (*runner)->Run();
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  EXPECT_EQ((*results)[0].guard_holds, 0);
  EXPECT_EQ((*results)[0].guard_rollbacks, 0);
  EXPECT_GE((*results)[1].guard_holds, 1);
  EXPECT_GE((*results)[1].guard_rollbacks, 1);
  // Fewer versions went out: the noisy steps were held back.
  EXPECT_LT((*results)[1].updates, (*results)[0].updates);
}

}  // namespace
}  // namespace contrail
