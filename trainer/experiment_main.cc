// contrail experiment: runs a grid of training configurations
// (proto/experiment.proto; examples in docs/experiments/) on the same stream
// and writes, into --out: results.md (the table, also printed on stdout),
// curves.csv (cumulative prequential accuracy every curve_every examples),
// curves.gp and curves.png (the served model's curves), and grid.textproto
// (the grid as run, defaults filled in). The log goes to stderr.
#include <google/protobuf/text_format.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "trainer/experiment_runner.h"

ABSL_FLAG(std::string, grid, "",
          "the experiment grid, a text-format contrail.ExperimentGrid (required)");
ABSL_FLAG(std::string, out, "",
          "folder for the results (required; created if missing)");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads; 0 keeps LibTorch's default");

namespace {

// Ends the process with one clear line, as every input error should.
[[noreturn]] void Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "experiment: %s\n", message.c_str());
  std::exit(code);
}

void Write(const absl::Status& written) {
  if (!written.ok()) Fail(std::string(written.message()), 1);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs a grid of contrail training configurations on one stream and "
      "writes a results table, prequential curves and their plot.\n"
      "Usage: experiment --grid=docs/experiments/smoke.textproto --out=/tmp/smoke "
      "[--threads=N]");
  absl::ParseCommandLine(argc, argv);
  // Stdout carries only the final table.
  spdlog::set_default_logger(spdlog::stderr_color_mt("experiment"));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e experiment %^%l%$ %v");

  const std::string grid_path = absl::GetFlag(FLAGS_grid);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (grid_path.empty()) Fail("--grid is required");
  if (out.empty()) Fail("--out is required");
  if (absl::GetFlag(FLAGS_threads) < 0) Fail("--threads must be >= 0");
  if (absl::GetFlag(FLAGS_threads) > 0) torch::set_num_threads(absl::GetFlag(FLAGS_threads));

  absl::StatusOr<contrail::ExperimentGrid> grid = contrail::ReadExperimentGrid(grid_path);
  if (!grid.ok()) Fail(std::string(grid.status().message()));
  absl::StatusOr<std::unique_ptr<contrail::ExperimentRunner>> runner =
      contrail::ExperimentRunner::Create(*grid);
  if (!runner.ok()) Fail(absl::StrCat(grid_path, ": ", runner.status().message()));

  std::error_code error;
  std::filesystem::create_directories(out, error);
  if (error) Fail(absl::StrCat("--out: cannot create ", out, ": ", error.message()));
  std::string grid_text;
  google::protobuf::TextFormat::PrintToString((*runner)->grid(), &grid_text);
  Write(contrail::WriteStringToFile(
      absl::StrCat(out, "/grid.textproto"),
      absl::StrCat("# The grid as run, from ", grid_path,
                   ", with every default filled in.\n", grid_text)));

  absl::StatusOr<std::vector<contrail::ExperimentResult>> results = (*runner)->Run();
  if (!results.ok()) Fail(std::string(results.status().message()), 1);

  const std::string table = contrail::MarkdownTable(*results, (*runner)->grid());
  Write(contrail::WriteStringToFile(absl::StrCat(out, "/results.md"), table));
  Write(contrail::WriteCurvesCsv(*results, absl::StrCat(out, "/curves.csv")));
  const absl::Status plotted = contrail::WritePlot(*results, out);
  if (plotted.ok()) {
    spdlog::info("wrote {}/results.md, curves.csv, curves.gp, curves.png", out);
  } else {
    // The numbers are in; a missing plot can be drawn later from curves.gp.
    spdlog::warn("no plot: {}", std::string(plotted.message()));
    spdlog::info("wrote {}/results.md, curves.csv, curves.gp", out);
  }
  std::fputs(table.c_str(), stdout);
  return 0;
}
