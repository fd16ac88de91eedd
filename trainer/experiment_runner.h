// Runs a grid of training configurations (proto/experiment.proto) on the
// same stream and reports them as in Tables 1-3 of Prapas et al. (2021):
// stream training time, parameters changed and bytes sent per update,
// cumulative prequential accuracy of the trainer and of the served model
// (the publisher's mirror, exactly what every up-to-date server holds), and
// the served model's final accuracy on the held-out test set.
//
// Each configuration runs in process, without gRPC: a StreamTrainer with its
// own UpdatePublisher and mirror, replaying a fresh copy of the same data
// from the same seed, so configurations differ only in what their config
// says. A configuration is the grid's defaults merged with its own fields,
// resolved by the daemon's function (trainer/training_config.h).
//
// The writers below turn results into the experiment's output files: a CSV
// of the prequential curves, a Markdown table, and a gnuplot script with its
// PNG.
//
// Lifecycle: Create() validates the whole grid and reads the data once;
// Run() runs every configuration in turn and may be called again (each call
// trains from scratch). Not thread-safe; owned by one thread. Run() uses
// LibTorch's intra-op thread pool as configured by the caller.
#ifndef CONTRAIL_TRAINER_EXPERIMENT_RUNNER_H_
#define CONTRAIL_TRAINER_EXPERIMENT_RUNNER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/idx_reader.h"
#include "proto/experiment.pb.h"
#include "trainer/stream_trainer.h"
#include "trainer/training_config.h"
#include "trainer/update_publisher.h"

namespace contrail {

// What one configuration of a grid achieved.
struct ExperimentResult {
  std::string config;         // ExperimentConfig.name
  std::string mode;           // "proactive", "online", "full"
  std::string model;          // architecture
  int64_t trigger_size = 0;   // t as run (online: b)
  std::string sparsity;       // "none", "topk", "randomk"
  double ratio = 0;           // selected fraction per tensor when sparse
  std::string update_values;  // "fp32", "fp16", "bf16"
  double deploy_ratio = 1;    // as resolved

  double stream_seconds = 0;  // wall time of the stream (Stats.stream_time)
  int64_t steps = 0;          // training steps on the stream
  int64_t retrains = 0;       // full retrainings finished
  int64_t skipped_steps = 0;  // steps whose loss was not finite
  // Updates after the initial snapshot (version 1), their (index, value)
  // entries and encoded bytes, as published.
  int64_t updates = 0;
  int64_t entries = 0;
  int64_t payload_bytes = 0;
  int64_t model_size = 0;  // floats in the model (parameters and buffers)

  // Cumulative prequential accuracy over the whole stream: each example is
  // predicted before the step that trains on it.
  double trainer_prequential = 0;
  double served_prequential = 0;
  // Accuracy of the served model after the stream on the held-out test set
  // (drifted like the end of the stream when the config has drift).
  double served_test_accuracy = 0;

  std::vector<StreamTrainer::CurvePoint> curve;

  // The deploy guard (guard_drop > 0): times it held deployment and rolled
  // the servers back.
  int64_t guard_holds = 0;
  int64_t guard_rollbacks = 0;

  // Entries per update, also as a percentage of model_size; 0 without
  // updates.
  double entries_per_update() const;
  double entries_per_update_percent() const;
  // Payload bytes per update, and per training step on the stream (what a
  // server receives per step, whatever the deploy budget batched).
  double bytes_per_update() const;
  double bytes_per_step() const;
};

// Parses a grid in text format; errors are INVALID_ARGUMENT naming `source`
// (the file name) with line and column.
absl::StatusOr<ExperimentGrid> ParseExperimentGrid(absl::string_view text,
                                                   absl::string_view source);
// Reads and parses the grid at `path`.
absl::StatusOr<ExperimentGrid> ReadExperimentGrid(const std::string& path);

class ExperimentRunner {
 public:
  // Validates every field of `grid` (INVALID_ARGUMENT naming the config and
  // the field: unknown mode, sparsity, encoding, drift, model or optimizer,
  // out-of-range numbers, duplicate names, a stream longer than the data),
  // then reads the training and test sets from grid.data_dir.
  static absl::StatusOr<std::unique_ptr<ExperimentRunner>> Create(
      const ExperimentGrid& grid);

  ExperimentRunner(const ExperimentRunner&) = delete;
  ExperimentRunner& operator=(const ExperimentRunner&) = delete;

  // Runs every configuration in grid order and returns one result each.
  // Fails (naming the config) when a configuration's training fails.
  absl::StatusOr<std::vector<ExperimentResult>> Run();

  // The grid as run: every config's fields resolved (trainer/
  // training_config.h), the defaults filled in.
  const ExperimentGrid& grid() const { return grid_; }

 private:
  // One configuration, ready to run.
  struct Plan {
    std::string name;
    TrainingPlan training;
  };

  ExperimentRunner(ExperimentGrid grid, std::vector<Plan> plans,
                   LabelledImages train, LabelledImages test);

  absl::StatusOr<ExperimentResult> RunOne(const Plan& plan) const;

  // Constant after construction.
  const ExperimentGrid grid_;
  const std::vector<Plan> plans_;
  const LabelledImages train_;
  const LabelledImages test_;
};

// Writes `contents` to `path`, replacing what was there.
absl::Status WriteStringToFile(const std::string& path, absl::string_view contents);

// "config,examples,trainer_prequential,served_prequential" and one row per
// curve point, configs in order.
std::string CurvesCsv(const std::vector<ExperimentResult>& results);
absl::Status WriteCurvesCsv(const std::vector<ExperimentResult>& results,
                            const std::string& path);

// A paragraph stating the grid's shared settings, then a table with one row
// per configuration.
std::string MarkdownTable(const std::vector<ExperimentResult>& results,
                          const ExperimentGrid& grid);
absl::Status WriteMarkdownTable(const std::vector<ExperimentResult>& results,
                                const ExperimentGrid& grid,
                                const std::string& path);

// Writes <dir>/curves.gp, a self-contained gnuplot script (the curves are
// inline data blocks) that draws the served model's cumulative prequential
// accuracy against streamed examples, one line per configuration, into
// <dir>/curves.png (1000x600, pngcairo when gnuplot has it), and runs it.
// FAILED_PRECONDITION when gnuplot is not on PATH (the script is still
// written), INTERNAL when it fails.
absl::Status WritePlot(const std::vector<ExperimentResult>& results,
                       const std::string& dir);

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_EXPERIMENT_RUNNER_H_
