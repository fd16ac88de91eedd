#include "trainer/experiment_runner.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/drift.h"
#include "trainer/replay_source.h"
#include "trainer/training_config.h"

namespace contrail {
namespace {

// Examples per forward pass of the test-set evaluation.
constexpr int64_t kEvalBatch = 1000;
// Characters allowed in config names: they go unquoted into the CSV, the
// Markdown table and gnuplot strings.
constexpr char kNameCharacters[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " _-.+=%:/@";

// Collects text-format parse errors as "source:line:column: message".
class ParseErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit ParseErrors(absl::string_view source) : source_(source) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(
        absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message));
  }

  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  const std::string source_;
  std::vector<std::string> errors_;
};

// "1%", "0.1%", "0.01%" for fractions.
std::string Percent(double fraction) {
  return absl::StrFormat("%g%%", fraction * 100);
}

absl::Status CheckArchitecture(const std::string& model,
                               const std::string& where) {
  if (absl::EndsWith(model, ".pt")) {
    if (access(model.c_str(), R_OK) == 0) return absl::OkStatus();
    return absl::NotFoundError(
        absl::StrCat(where, "model: cannot read TorchScript file ", model));
  }
  const std::vector<std::string> known = Model::Architectures();
  if (std::find(known.begin(), known.end(), model) != known.end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, "model: unknown architecture \"", model,
                   "\"; expected one of ", absl::StrJoin(known, ", ")));
}

}  // namespace

absl::Status WriteStringToFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  out.write(contents.data(), contents.size());
  out.close();
  if (!out) {
    return absl::DataLossError(
        absl::StrCat("error writing ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

double ExperimentResult::entries_per_update() const {
  return updates > 0 ? static_cast<double>(entries) / updates : 0.0;
}

double ExperimentResult::entries_per_update_percent() const {
  return model_size > 0 ? 100.0 * entries_per_update() / model_size : 0.0;
}

double ExperimentResult::bytes_per_update() const {
  return updates > 0 ? static_cast<double>(payload_bytes) / updates : 0.0;
}

double ExperimentResult::bytes_per_step() const {
  return steps > 0 ? static_cast<double>(payload_bytes) / steps : 0.0;
}

absl::StatusOr<ExperimentGrid> ParseExperimentGrid(absl::string_view text,
                                                   absl::string_view source) {
  ExperimentGrid grid;
  google::protobuf::TextFormat::Parser parser;
  ParseErrors errors(source);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &grid)) {
    const std::string joined = errors.Joined();
    return absl::InvalidArgumentError(
        joined.empty() ? absl::StrCat(source, ": not a text-format ExperimentGrid")
                       : joined);
  }
  return grid;
}

absl::StatusOr<ExperimentGrid> ReadExperimentGrid(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open grid ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("error reading grid ", path));
  }
  return ParseExperimentGrid(text.str(), path);
}

absl::StatusOr<std::unique_ptr<ExperimentRunner>> ExperimentRunner::Create(
    const ExperimentGrid& input) {
  ExperimentGrid grid = input;
  if (grid.data_dir().empty()) grid.set_data_dir(kFashionMnistDir);
  // The shared settings as run, for the results' description.
  *grid.mutable_defaults() = MergeTrainingConfig(DefaultTrainingConfig(), grid.defaults());
  if (grid.configs().empty()) {
    return absl::InvalidArgumentError("grid configs: the grid has no configs");
  }
  std::vector<Plan> plans;
  std::set<std::string> names;
  int64_t needed = 0;
  for (int i = 0; i < grid.configs_size(); ++i) {
    ExperimentConfig& config = *grid.mutable_configs(i);
    if (config.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config #", i + 1, " name: a name is required"));
    }
    const std::string where = absl::StrCat("config \"", config.name(), "\" ");
    if (config.name().find_first_not_of(kNameCharacters) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "name: only letters, digits, spaces and _-.+=%:/@ are allowed"));
    }
    if (!names.insert(config.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "name: another config has the same name"));
    }
    absl::StatusOr<TrainingPlan> plan =
        ResolveTrainingConfig(MergeTrainingConfig(grid.defaults(), config.config()));
    if (!plan.ok()) {
      return absl::Status(plan.status().code(),
                          absl::StrCat(where, plan.status().message()));
    }
    CONTRAIL_RETURN_IF_ERROR(CheckArchitecture(plan->config.model(), where));
    // Nobody subscribes: keep only what the publisher needs.
    plan->publisher.max_retained_updates = 1;
    plan->trainer.log_interval = absl::Seconds(5);
    *config.mutable_config() = plan->config;
    needed = std::max(needed, plan->config.initial_examples() +
                                  plan->config.stream_examples());
    plans.push_back(Plan{config.name(), *std::move(plan)});
  }

  spdlog::info("reading Fashion-MNIST from {}", grid.data_dir());
  absl::StatusOr<LabelledImages> train = ReadFashionMnist(grid.data_dir(), /*train=*/true);
  if (!train.ok()) return train.status();
  absl::StatusOr<LabelledImages> test = ReadFashionMnist(grid.data_dir(), /*train=*/false);
  if (!test.ok()) return test.status();
  if (needed > train->count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_examples + stream_examples = ", needed, " but ",
        grid.data_dir(), " has only ", train->count, " training examples"));
  }
  spdlog::info("read {} training and {} test examples", train->count, test->count);
  return std::unique_ptr<ExperimentRunner>(new ExperimentRunner(
      std::move(grid), std::move(plans), *std::move(train), *std::move(test)));
}

ExperimentRunner::ExperimentRunner(ExperimentGrid grid, std::vector<Plan> plans,
                                   LabelledImages train, LabelledImages test)
    : grid_(std::move(grid)),
      plans_(std::move(plans)),
      train_(std::move(train)),
      test_(std::move(test)) {}

absl::StatusOr<std::vector<ExperimentResult>> ExperimentRunner::Run() {
  std::vector<ExperimentResult> results;
  for (size_t i = 0; i < plans_.size(); ++i) {
    const std::string& name = plans_[i].name;
    const TrainingConfig& config = plans_[i].training.config;
    spdlog::info("config {}/{} \"{}\": {} model {}, t={}, sparsity {} ratio {}, "
                 "update values {}, deploy ratio {}",
                 i + 1, plans_.size(), name, ConfigEnumName(config.mode()), config.model(),
                 config.trigger_size(), ConfigEnumName(config.sparsity()), config.ratio(),
                 ValueEncodingName(config.update_values()), config.deploy_ratio());
    absl::StatusOr<ExperimentResult> result = RunOne(plans_[i]);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("config \"", name, "\": ", result.status().message()));
    }
    spdlog::info(
        "config \"{}\" done: prequential accuracy {:.4f} (served {:.4f}), "
        "served test accuracy {:.4f}, {:.1f} s",
        name, result->trainer_prequential, result->served_prequential,
        result->served_test_accuracy, result->stream_seconds);
    results.push_back(*std::move(result));
  }
  return results;
}

namespace {

// Accuracy of `model` on `data`, in inference mode.
absl::StatusOr<double> TestAccuracy(Model& model, const LabelledImages& data) {
  if (data.count == 0) return 0.0;
  model.SetTraining(false);
  const int64_t size = data.example_size();
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.count; begin += kEvalBatch) {
    const int64_t n = std::min(data.count - begin, kEvalBatch);
    CONTRAIL_ASSIGN_OR_RETURN(
        const Model::Predictions predictions,
        model.Predict({n, 1, data.rows, data.cols},
                      absl::MakeConstSpan(data.pixels).subspan(begin * size, n * size)));
    for (int64_t i = 0; i < n; ++i) {
      correct += predictions.labels[i] == data.labels[begin + i];
    }
  }
  return static_cast<double>(correct) / data.count;
}

}  // namespace

absl::StatusOr<ExperimentResult> ExperimentRunner::RunOne(const Plan& plan) const {
  const TrainingConfig& config = plan.training.config;
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                            Model::Load(config.model(), config.seed(),
                                        plan.training.signature));
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> served,
                            Model::CreateLike(*model, config.seed()));
  // The trainer owns the served model from here on and keeps it alive until
  // it is destroyed; nothing writes it once the training thread has ended.
  Model* const served_model = served.get();
  const ModelSpec spec = model->spec();
  UpdatePublisher::Options publisher_options = plan.training.publisher;
  publisher_options.torchscript_module = model->torchscript_module();
  // Declared before the trainer, so that it outlives it.
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<UpdatePublisher> publisher,
      UpdatePublisher::Create(spec, served->Views(), publisher_options));
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<ReplaySource> source,
      ReplaySource::Create(plan.training.replay, train_, spec.num_classes()));
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<StreamTrainer> trainer,
      StreamTrainer::Create(plan.training.trainer, std::move(source), std::move(model),
                            std::move(served), publisher.get()));
  trainer->Start();
  const absl::Status outcome = trainer->WaitUntilFinished(absl::InfiniteDuration());
  const StreamTrainer::Stats stats = trainer->stats();
  if (!outcome.ok()) {
    return absl::Status(outcome.code(),
                        absl::StrCat("training stopped after ", stats.examples_seen,
                                     " streamed examples: ", outcome.message()));
  }

  // The test set shows the concept at the end of the stream.
  LabelledImages test = test_;
  if (plan.training.replay.drift != Drift::kNone &&
      config.drift_at() < config.stream_examples() &&
      (config.drift_until() == 0 || config.drift_until() >= config.stream_examples())) {
    CONTRAIL_RETURN_IF_ERROR(ApplyDrift(plan.training.replay.drift, /*begin=*/0,
                                        config.seed(), spec.num_classes(), &test));
  }
  CONTRAIL_ASSIGN_OR_RETURN(const double test_accuracy,
                            TestAccuracy(*served_model, test));

  ExperimentResult result;
  result.config = plan.name;
  result.mode = ConfigEnumName(config.mode());
  result.model = config.model();
  result.trigger_size = config.trigger_size();
  result.sparsity = ConfigEnumName(config.sparsity());
  result.ratio = config.ratio();
  result.update_values = ValueEncodingName(config.update_values());
  result.deploy_ratio = config.deploy_ratio();
  result.stream_seconds = absl::ToDoubleSeconds(stats.stream_time);
  result.steps = stats.steps;
  result.retrains = stats.retrains;
  result.skipped_steps = stats.skipped_steps;
  // Version 1 is the snapshot taken when deployment starts.
  result.updates =
      stats.updates_published > 0 ? static_cast<int64_t>(stats.updates_published) - 1 : 0;
  result.entries = stats.entries_published;
  result.payload_bytes = stats.payload_bytes_published;
  result.model_size = ModelSize(spec);
  result.trainer_prequential = stats.prequential_accuracy();
  result.served_prequential = stats.served_prequential_accuracy();
  result.served_test_accuracy = test_accuracy;
  result.curve = stats.curve;
  result.guard_holds = stats.guard_holds;
  result.guard_rollbacks = stats.guard_rollbacks;
  return result;
}

std::string CurvesCsv(const std::vector<ExperimentResult>& results) {
  std::string csv =
      "config,examples,trainer_prequential,served_prequential,trainer_window,served_window\n";
  for (const ExperimentResult& result : results) {
    for (const StreamTrainer::CurvePoint& point : result.curve) {
      absl::StrAppendFormat(&csv, "%s,%d,%.6f,%.6f,%.6f,%.6f\n", result.config, point.examples,
                            point.trainer_accuracy, point.served_accuracy,
                            point.trainer_window_accuracy, point.served_window_accuracy);
    }
  }
  return csv;
}

absl::Status WriteCurvesCsv(const std::vector<ExperimentResult>& results,
                            const std::string& path) {
  return WriteStringToFile(path, CurvesCsv(results));
}

namespace {

// The mode column: the paper's notation for full retraining (every c
// examples for e epochs) and the drift, if any.
std::string ModeCell(const ExperimentResult& result, const TrainingConfig* config) {
  std::string cell = result.mode;
  if (config != nullptr && config->mode() == TrainingConfig::MODE_FULL) {
    absl::StrAppend(&cell, " (c=", config->retrain_every(), ", e=",
                    config->retrain_epochs(), ", ", result.retrains, " retrains)");
  }
  if (config != nullptr && config->drift() != TrainingConfig::DRIFT_NONE) {
    absl::StrAppend(&cell, ", ", ConfigEnumName(config->drift()), " drift at ",
                    config->drift_at());
  }
  if (config != nullptr && config->warmup_updates() > 0) {
    absl::StrAppend(&cell, ", warm-up ", config->warmup_updates());
  }
  return cell;
}

// The sparsity column: the step's selection, then how updates travel when
// that differs from exact values within the automatic budget.
std::string SparsityCell(const ExperimentResult& result) {
  const bool sparse = result.sparsity != "none";
  std::string cell =
      sparse ? absl::StrCat(result.sparsity, " ", Percent(result.ratio)) : "dense";
  if (result.update_values != "fp32") absl::StrAppend(&cell, ", ", result.update_values);
  const double automatic = sparse ? result.ratio : 1.0;
  if (result.deploy_ratio != automatic) {
    absl::StrAppend(&cell, ", deploy ", Percent(result.deploy_ratio));
  }
  return cell;
}

}  // namespace

std::string MarkdownTable(const std::vector<ExperimentResult>& results,
                          const ExperimentGrid& grid) {
  const TrainingConfig& shared = grid.defaults();
  std::string text = absl::StrFormat(
      "Model %s, data %s: initial training on %d examples for %d epoch%s, "
      "then a stream of %d examples; b = %d, %s with lr %g, seed %d.\n\n"
      "Prequential accuracy is cumulative over the stream, each example "
      "predicted before the step that trains on it, by the trainer and by the "
      "served model (the trainer's mirror: what every up-to-date server "
      "holds). Test accuracy is the served model's after the stream, on the "
      "held-out test set. Parameters changed and bytes are per published "
      "update; bytes / step divides all update bytes by the stream's training "
      "steps.\n\n",
      shared.model(), grid.data_dir(), shared.initial_examples(), shared.initial_epochs(),
      shared.initial_epochs() == 1 ? "" : "s", shared.stream_examples(), shared.batch_size(),
      ConfigEnumName(shared.optimizer()), shared.lr(), shared.seed());
  bool other_models = false;
  for (const ExperimentResult& result : results) {
    other_models |= result.model != shared.model();
  }
  std::vector<std::string> header = {"config", "mode", "t", "sparsity"};
  if (other_models) header.insert(header.begin() + 1, "model");
  for (const char* column :
       {"stream time (s)", "params changed / update", "bytes / update",
        "bytes / step", "trainer prequential", "served prequential",
        "served test accuracy"}) {
    header.push_back(column);
  }
  absl::StrAppend(&text, "| ", absl::StrJoin(header, " | "), " |\n|");
  for (size_t i = 0; i < header.size(); ++i) {
    absl::StrAppend(&text, i < size_t{4} + other_models ? " --- |" : " ---: |");
  }
  absl::StrAppend(&text, "\n");
  std::vector<std::string> notes;
  for (const ExperimentResult& result : results) {
    const TrainingConfig* config = nullptr;
    for (const ExperimentConfig& candidate : grid.configs()) {
      if (candidate.name() == result.config) config = &candidate.config();
    }
    std::vector<std::string> row = {
        result.config, ModeCell(result, config),
        result.mode == "full" ? "-" : absl::StrCat(result.trigger_size),
        result.mode == "full" ? "dense" : SparsityCell(result)};
    if (other_models) row.insert(row.begin() + 1, result.model);
    row.push_back(absl::StrFormat("%.1f", result.stream_seconds));
    row.push_back(absl::StrFormat("%.1f (%.3g%%)", result.entries_per_update(),
                                  result.entries_per_update_percent()));
    row.push_back(absl::StrFormat("%.0f", result.bytes_per_update()));
    row.push_back(result.steps > 0 ? absl::StrFormat("%.0f", result.bytes_per_step())
                                   : "-");
    row.push_back(absl::StrFormat("%.4f", result.trainer_prequential));
    row.push_back(absl::StrFormat("%.4f", result.served_prequential));
    row.push_back(absl::StrFormat("%.4f", result.served_test_accuracy));
    absl::StrAppend(&text, "| ", absl::StrJoin(row, " | "), " |\n");
    if (result.skipped_steps > 0) {
      notes.push_back(absl::StrCat(result.config, " skipped ", result.skipped_steps,
                                   " steps whose loss was not finite."));
    }
  }
  if (!notes.empty()) {
    absl::StrAppend(&text, "\n", absl::StrJoin(notes, "\n"), "\n");
  }
  return text;
}

absl::Status WriteMarkdownTable(const std::vector<ExperimentResult>& results,
                                const ExperimentGrid& grid,
                                const std::string& path) {
  return WriteStringToFile(path, MarkdownTable(results, grid));
}

namespace {

// True when an executable `name` is on PATH.
bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// `text` as one single-quoted shell word.
std::string ShellQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

}  // namespace

// Filled and open circles, squares, triangles and diamonds.
constexpr int kPointTypes[] = {7, 5, 9, 13, 6, 4, 8, 12};

absl::Status WritePlot(const std::vector<ExperimentResult>& results,
                       const std::string& dir) {
  std::string script =
      "# Cumulative prequential accuracy of the served model, one line per\n"
      "# configuration. Written by //trainer:experiment; run it again with\n"
      "#   gnuplot curves.gp\n"
      "# in this folder.\n";
  std::vector<std::string> plots;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].curve.empty()) continue;
    absl::StrAppend(&script, "$c", i, " << EOD\n");
    for (const StreamTrainer::CurvePoint& point : results[i].curve) {
      absl::StrAppendFormat(&script, "%d %.6f\n", point.examples, point.served_accuracy);
    }
    absl::StrAppend(&script, "EOD\n");
    // gnuplot cycles through 8 colours: vary the point shape and the dash
    // pattern too, so that no two lines look alike.
    plots.push_back(absl::StrCat("$c", i, " using 1:2 with linespoints linetype ",
                                 i % 8 + 1, " dashtype ", i / 8 + 1, " pointtype ",
                                 kPointTypes[i % 8],
                                 " pointsize 0.7 title \"", results[i].config, "\""));
  }
  if (plots.empty()) {
    return absl::InvalidArgumentError("no curve points to plot");
  }
  absl::StrAppend(
      &script,
      "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
      "  set terminal pngcairo size 1000,600 noenhanced\n"
      "} else {\n"
      "  set terminal png size 1000,600 noenhanced\n"
      "}\n"
      "set output \"curves.png\"\n"
      "set title \"Cumulative prequential accuracy of the served model\"\n"
      "set xlabel \"streamed examples\"\n"
      "set ylabel \"cumulative prequential accuracy\"\n"
      "set grid\n"
      "set key outside right top\n"
      "plot ",
      absl::StrJoin(plots, ", \\\n     "), "\n");
  const std::string script_path = absl::StrCat(dir, "/curves.gp");
  CONTRAIL_RETURN_IF_ERROR(WriteStringToFile(script_path, script));

  if (!OnPath("gnuplot")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "gnuplot is not installed, so ", dir, "/curves.png was not drawn; "
        "install it (apt-get install gnuplot-nox) and run `gnuplot curves.gp` in ",
        dir));
  }
  const std::string command =
      absl::StrCat("cd ", ShellQuote(dir), " && gnuplot curves.gp 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot run gnuplot: ", std::strerror(errno)));
  }
  std::string output;
  char buffer[4096];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, read);
  }
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("gnuplot ", script_path,
                                            " failed (status ", status, "): ", output));
  }
  return absl::OkStatus();
}

}  // namespace contrail
