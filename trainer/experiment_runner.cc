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

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/sparse_selector.h"
#include "common/status_macros.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/drift.h"
#include "trainer/sparse_optimizer.h"

namespace contrail {
namespace {

// Defaults of the zero-means-default fields (proto/experiment.proto).
constexpr char kDefaultDataDir[] = "/usr/share/datasets/fashion-mnist";
constexpr char kDefaultModel[] = "lenet5";
constexpr char kDefaultOptimizer[] = "adam";
constexpr char kDefaultMode[] = "proactive";
constexpr char kDefaultSparsity[] = "none";
constexpr char kDefaultUpdateValues[] = "fp32";
constexpr char kDefaultDrift[] = "none";
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

// `value` if nonzero, else `fallback`.
template <typename T>
T OrDefault(T value, T fallback) {
  return value == T{} ? fallback : value;
}

std::string OrDefault(const std::string& value, const char* fallback) {
  return value.empty() ? std::string(fallback) : value;
}

// "1%", "0.1%", "0.01%" for fractions.
std::string Percent(double fraction) {
  return absl::StrFormat("%g%%", fraction * 100);
}

absl::Status CheckArchitecture(const std::string& model,
                               const std::string& where) {
  const std::vector<std::string> known = Model::Architectures();
  if (std::find(known.begin(), known.end(), model) != known.end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, "model: unknown architecture \"", model,
                   "\"; expected one of ", absl::StrJoin(known, ", ")));
}

// Fills in the grid's defaults and checks its shared fields.
absl::Status ResolveGridFields(ExperimentGrid* grid) {
  const StreamTrainer::Options defaults;
  const SparseOptimizer::Options optimizer_defaults;
  grid->set_data_dir(OrDefault(grid->data_dir(), kDefaultDataDir));
  grid->set_model(OrDefault(grid->model(), kDefaultModel));
  CONTRAIL_RETURN_IF_ERROR(CheckArchitecture(grid->model(), "grid "));
  struct Count {
    const char* field;
    int64_t value;
  };
  for (const Count& count :
       {Count{"initial_examples", grid->initial_examples()},
        Count{"initial_epochs", grid->initial_epochs()},
        Count{"stream_examples", grid->stream_examples()},
        Count{"batch_size", grid->batch_size()},
        Count{"curve_every", grid->curve_every()}}) {
    if (count.value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grid ", count.field, ": must be >= 0 (0 = default), got ", count.value));
    }
  }
  grid->set_initial_examples(
      OrDefault<int64_t>(grid->initial_examples(), defaults.initial_examples));
  grid->set_initial_epochs(
      OrDefault<int32_t>(grid->initial_epochs(), defaults.initial_epochs));
  grid->set_stream_examples(
      OrDefault<int64_t>(grid->stream_examples(), defaults.stream_examples));
  grid->set_batch_size(OrDefault<int64_t>(grid->batch_size(), defaults.batch_size));
  grid->set_curve_every(OrDefault<int64_t>(grid->curve_every(), defaults.curve_every));
  grid->set_optimizer(OrDefault(grid->optimizer(), kDefaultOptimizer));
  const absl::StatusOr<OptimizerKind> optimizer =
      ParseOptimizerKind(grid->optimizer());
  if (!optimizer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid optimizer: ", optimizer.status().message()));
  }
  if (!(grid->lr() >= 0) || !std::isfinite(grid->lr())) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid lr: must be finite and >= 0 (0 = default), got ", grid->lr()));
  }
  grid->set_lr(OrDefault(grid->lr(), optimizer_defaults.lr));
  grid->set_seed(OrDefault<uint64_t>(grid->seed(), defaults.seed));
  if (grid->configs().empty()) {
    return absl::InvalidArgumentError("grid configs: the grid has no configs");
  }
  return absl::OkStatus();
}

// `parsed`, or its error prefixed with where it came from.
template <typename T>
absl::StatusOr<T> ParseField(absl::StatusOr<T> parsed, const std::string& where,
                             const char* field) {
  if (parsed.ok()) return parsed;
  return absl::InvalidArgumentError(
      absl::StrCat(where, field, ": ", parsed.status().message()));
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
  CONTRAIL_RETURN_IF_ERROR(ResolveGridFields(&grid));
  const StreamTrainer::Options defaults;
  const SparseSelector::Options sparsity_defaults;

  std::vector<Plan> plans;
  std::set<std::string> names;
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
    struct Count {
      const char* field;
      int64_t value;
    };
    for (const Count& count : {Count{"trigger_size", config.trigger_size()},
                               Count{"retrain_every", config.retrain_every()},
                               Count{"retrain_epochs", config.retrain_epochs()},
                               Count{"warmup_updates", config.warmup_updates()},
                               Count{"drift_at", config.drift_at()}}) {
      if (count.value < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, count.field, ": must be >= 0, got ", count.value));
      }
    }
    if (!(config.lr() >= 0) || !std::isfinite(config.lr())) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "lr: must be finite and >= 0 (0 = the grid's), got ", config.lr()));
    }
    if (!(config.ratio() >= 0 && config.ratio() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "ratio: must be in [0, 1] (0 = default), got ", config.ratio()));
    }
    if (!(config.deploy_ratio() >= 0 && config.deploy_ratio() <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "deploy_ratio: must be in [0, 1] (0 = automatic), got ",
                       config.deploy_ratio()));
    }

    Plan plan;
    StreamTrainer::Options& options = plan.trainer;
    config.set_mode(OrDefault(config.mode(), kDefaultMode));
    CONTRAIL_ASSIGN_OR_RETURN(options.mode,
                              ParseField(ParseTrainingMode(config.mode()), where, "mode"));
    config.set_sparsity(OrDefault(config.sparsity(), kDefaultSparsity));
    CONTRAIL_ASSIGN_OR_RETURN(
        options.sparsity.sparsity,
        ParseField(ParseSparsity(config.sparsity()), where, "sparsity"));
    config.set_update_values(OrDefault(config.update_values(), kDefaultUpdateValues));
    CONTRAIL_ASSIGN_OR_RETURN(
        plan.publisher.encoding,
        ParseField(ParseValueEncoding(config.update_values()), where, "update_values"));
    config.set_drift(OrDefault(config.drift(), kDefaultDrift));
    CONTRAIL_ASSIGN_OR_RETURN(options.drift,
                              ParseField(ParseDrift(config.drift()), where, "drift"));
    config.set_model(OrDefault(config.model(), grid.model().c_str()));
    CONTRAIL_RETURN_IF_ERROR(CheckArchitecture(config.model(), where));

    // Online learning uses each example once, in batches of b new ones
    // (t = b in the paper's terms); the trainer ignores trigger_size then.
    config.set_trigger_size(options.mode == TrainingMode::kOnline
                                ? grid.batch_size()
                                : OrDefault<int64_t>(config.trigger_size(),
                                                     defaults.trigger_size));
    if (config.trigger_size() > grid.batch_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "trigger_size: ", config.trigger_size(),
                       " exceeds the grid's batch_size ", grid.batch_size()));
    }
    config.set_ratio(OrDefault(config.ratio(), sparsity_defaults.ratio));
    config.set_retrain_every(
        OrDefault<int64_t>(config.retrain_every(), defaults.retrain_every));
    config.set_retrain_epochs(
        OrDefault<int32_t>(config.retrain_epochs(), defaults.retrain_epochs));

    options.initial_examples = grid.initial_examples();
    options.initial_epochs = grid.initial_epochs();
    options.stream_examples = grid.stream_examples();
    options.trigger_size = config.trigger_size();
    options.batch_size = grid.batch_size();
    options.optimizer.kind = *ParseOptimizerKind(grid.optimizer());
    config.set_lr(OrDefault(config.lr(), grid.lr()));
    options.optimizer.lr = config.lr();
    options.sparsity.ratio = config.ratio();
    options.sparsity.seed = grid.seed();
    config.set_deploy_ratio(ResolveDeployRatio(config.deploy_ratio(), options.sparsity));
    options.seed = grid.seed();
    options.retrain_every = config.retrain_every();
    options.retrain_epochs = config.retrain_epochs();
    options.warmup_updates = config.warmup_updates();
    options.drift_at = config.drift_at();
    options.curve_every = grid.curve_every();
    options.log_interval = absl::Seconds(5);
    plan.publisher.deploy_ratio = config.deploy_ratio();
    // Nobody subscribes: keep only what the publisher needs.
    plan.publisher.max_retained_updates = 1;
    plan.config = config;
    plans.push_back(std::move(plan));
  }

  spdlog::info("reading Fashion-MNIST from {}", grid.data_dir());
  absl::StatusOr<LabelledImages> train = ReadFashionMnist(grid.data_dir(), /*train=*/true);
  if (!train.ok()) return train.status();
  absl::StatusOr<LabelledImages> test = ReadFashionMnist(grid.data_dir(), /*train=*/false);
  if (!test.ok()) return test.status();
  const int64_t needed = grid.initial_examples() + grid.stream_examples();
  if (needed > train->count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grid initial_examples + stream_examples = ", needed, " but ",
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
    const ExperimentConfig& config = plans_[i].config;
    spdlog::info("config {}/{} \"{}\": {} model {}, t={}, sparsity {} ratio {}, "
                 "update values {}, deploy ratio {}",
                 i + 1, plans_.size(), config.name(), config.mode(), config.model(),
                 config.trigger_size(), config.sparsity(), config.ratio(),
                 config.update_values(), config.deploy_ratio());
    absl::StatusOr<ExperimentResult> result = RunOne(plans_[i]);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("config \"", config.name(),
                                       "\": ", result.status().message()));
    }
    spdlog::info(
        "config \"{}\" done: prequential accuracy {:.4f} (served {:.4f}), "
        "served test accuracy {:.4f}, {:.1f} s",
        config.name(), result->trainer_prequential, result->served_prequential,
        result->served_test_accuracy, result->stream_seconds);
    results.push_back(*std::move(result));
  }
  return results;
}

namespace {

// Accuracy of `model` on `data`, in inference mode.
absl::StatusOr<double> TestAccuracy(Model& model, const LabelledImages& data) {
  if (data.count == 0) return 0.0;
  CONTRAIL_RETURN_IF_ERROR(
      model.CheckInputShape({data.count, 1, data.rows, data.cols}));
  try {
    c10::InferenceMode inference;
    model.SetTraining(false);
    const torch::Tensor images =
        torch::from_blob(const_cast<float*>(data.pixels.data()),
                         {data.count, 1, data.rows, data.cols}, torch::kFloat32);
    int64_t correct = 0;
    for (int64_t begin = 0; begin < data.count; begin += kEvalBatch) {
      const int64_t end = std::min(data.count, begin + kEvalBatch);
      const torch::Tensor predicted =
          model.Forward(images.slice(0, begin, end)).argmax(1).contiguous();
      const int64_t* labels = predicted.data_ptr<int64_t>();
      for (int64_t i = 0; i < end - begin; ++i) {
        correct += labels[i] == data.labels[begin + i];
      }
    }
    return static_cast<double>(correct) / data.count;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("test-set evaluation failed: ", e.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<ExperimentResult> ExperimentRunner::RunOne(const Plan& plan) const {
  const ExperimentConfig& config = plan.config;
  const StreamTrainer::Options& options = plan.trainer;
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                            Model::Create(config.model(), options.seed));
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<Model> served,
                            Model::Create(config.model(), options.seed));
  // The trainer owns the served model from here on and keeps it alive until
  // it is destroyed; nothing writes it once the training thread has ended.
  Model* const served_model = served.get();
  const ModelSpec spec = model->spec();
  // Declared before the trainer, so that it outlives it.
  UpdatePublisher publisher(spec, served->Views(), plan.publisher);
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<StreamTrainer> trainer,
      StreamTrainer::Create(options, train_, std::move(model), std::move(served),
                            &publisher));
  trainer->Start();
  trainer->WaitUntilFinished(absl::InfiniteDuration());
  const StreamTrainer::Stats stats = trainer->stats();
  if (stats.phase != "done") {
    return absl::InternalError(absl::StrCat(
        "training ended in phase \"", stats.phase, "\" after ",
        stats.examples_seen, " streamed examples (see the log)"));
  }

  // The test set shows the concept at the end of the stream.
  LabelledImages test = test_;
  if (options.drift != Drift::kNone && options.drift_at < options.stream_examples) {
    CONTRAIL_RETURN_IF_ERROR(ApplyDrift(options.drift, /*begin=*/0, options.seed,
                                        spec.num_classes(), &test));
  }
  CONTRAIL_ASSIGN_OR_RETURN(const double test_accuracy,
                            TestAccuracy(*served_model, test));

  ExperimentResult result;
  result.config = config.name();
  result.mode = config.mode();
  result.model = config.model();
  result.trigger_size = config.trigger_size();
  result.sparsity = config.sparsity();
  result.ratio = config.ratio();
  result.update_values = config.update_values();
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
  return result;
}

std::string CurvesCsv(const std::vector<ExperimentResult>& results) {
  std::string csv = "config,examples,trainer_prequential,served_prequential\n";
  for (const ExperimentResult& result : results) {
    for (const StreamTrainer::CurvePoint& point : result.curve) {
      absl::StrAppendFormat(&csv, "%s,%d,%.6f,%.6f\n", result.config, point.examples,
                            point.trainer_accuracy, point.served_accuracy);
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
std::string ModeCell(const ExperimentResult& result, const ExperimentConfig* config) {
  std::string cell = result.mode;
  if (config != nullptr && result.mode == "full") {
    absl::StrAppend(&cell, " (c=", config->retrain_every(), ", e=",
                    config->retrain_epochs(), ", ", result.retrains, " retrains)");
  }
  if (config != nullptr && config->drift() != "none") {
    absl::StrAppend(&cell, ", ", config->drift(), " drift at ", config->drift_at());
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
      grid.model(), grid.data_dir(), grid.initial_examples(), grid.initial_epochs(),
      grid.initial_epochs() == 1 ? "" : "s", grid.stream_examples(), grid.batch_size(), grid.optimizer(), grid.lr(),
      grid.seed());
  bool other_models = false;
  for (const ExperimentResult& result : results) {
    other_models |= result.model != grid.model();
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
    const ExperimentConfig* config = nullptr;
    for (const ExperimentConfig& candidate : grid.configs()) {
      if (candidate.name() == result.config) config = &candidate;
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
