// What checkpoints (--state_dir) cost the training thread: for LeNet-5 and
// ResNet-18, the same stream is trained twice in one run, without and with
// a checkpoint every --every_s seconds, and the mean time per streamed step
// (train + deploy) is compared; the training thread's pause per checkpoint
// (capturing the state) and the background write time are printed.
//
//   bazel run //tests:checkpoint_bench [-- --quick]
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "tests/test_util/idx_writer.h"
#include "trainer/durable_file.h"
#include "trainer/trainer_daemon.h"

ABSL_FLAG(bool, quick, false, "a short smoke run");
ABSL_FLAG(double, every_s, 1.0, "seconds between checkpoints in the measured run");

namespace contrail {
namespace {

struct Run {
  double step_ms = 0;
  int64_t steps = 0;
  int64_t checkpoints = 0;
  double capture_ms = 0;
  double write_ms = 0;
  double megabytes = 0;
};

int64_t DirBytes(const std::string& dir) {
  int64_t total = 0;
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir, "checkpoint-", ".ckpt");
  if (!names.ok() || names->empty()) return 0;
  struct stat info;
  if (stat((dir + "/" + names->back()).c_str(), &info) == 0) total = info.st_size;
  return total;
}

absl::StatusOr<Run> Train(const std::string& model, const std::string& data_dir,
                          int64_t stream, int64_t batch, const std::string& state_dir) {
  TrainerDaemon::Options options;
  options.listen = "127.0.0.1:0";
  options.data_dir = data_dir;
  options.state_dir = state_dir;
  options.checkpoint_every = absl::Seconds(absl::GetFlag(FLAGS_every_s));
  TrainingConfig& training = options.training;
  training.set_model(model);
  training.set_initial_examples(256);
  training.set_initial_epochs(1);
  training.set_stream_examples(stream);
  training.set_batch_size(batch);
  training.set_trigger_size(8);
  training.set_ratio(0.001);
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(options);
  if (!daemon.ok()) return daemon.status();
  if (absl::Status started = (*daemon)->Start(); !started.ok()) return started;
  if (absl::Status done = (*daemon)->trainer().WaitUntilFinished(absl::Hours(1)); !done.ok()) {
    return done;
  }
  const StreamTrainer::Stats stats = (*daemon)->trainer().stats();
  Run run;
  run.steps = stats.steps;
  run.step_ms = absl::ToDoubleMilliseconds(stats.stream_time) / std::max<int64_t>(1, stats.steps);
  run.checkpoints = stats.checkpoints;
  run.capture_ms = absl::ToDoubleMilliseconds(stats.checkpoint_capture);
  run.write_ms = absl::ToDoubleMilliseconds(stats.checkpoint_write);
  (*daemon)->Shutdown();
  if (!state_dir.empty()) run.megabytes = DirBytes(state_dir) / 1e6;
  return run;
}

int Main() {
  const bool quick = absl::GetFlag(FLAGS_quick);
  const std::string tmp = absl::StrCat(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp",
                                       "/checkpoint_bench_", getpid());
  const std::string data_dir = tmp + "/data";
  if (absl::Status written = test::WriteSyntheticFashionMnist(data_dir, 8000, 0, 1);
      !written.ok()) {
    std::fprintf(stderr, "%s\n", written.ToString().c_str());
    return 1;
  }
  SetLibTorchThreads(1);
  struct Case {
    std::string model;
    int64_t stream;
    int64_t batch;
  };
  const std::vector<Case> cases = {
      {"lenet5", quick ? 400 : 4000, 128},
      {"resnet18", quick ? 16 : 160, 32},
  };
  std::printf("| model | b | steps | step ms, no checkpoints | step ms, every %.1f s | ratio | "
              "checkpoints | capture ms (training thread) | write ms (background) | MB |\n",
              absl::GetFlag(FLAGS_every_s));
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const Case& c : cases) {
    absl::StatusOr<Run> plain = Train(c.model, data_dir, c.stream, c.batch, "");
    const std::string state_dir = absl::StrCat(tmp, "/state_", c.model);
    absl::StatusOr<Run> durable = Train(c.model, data_dir, c.stream, c.batch, state_dir);
    if (!plain.ok() || !durable.ok()) {
      std::fprintf(stderr, "%s: %s %s\n", c.model.c_str(), plain.status().ToString().c_str(),
                   durable.status().ToString().c_str());
      return 1;
    }
    std::printf("| %s | %lld | %lld | %.2f | %.2f | %.3f | %lld | %.1f | %.0f | %.1f |\n",
                c.model.c_str(), static_cast<long long>(c.batch),
                static_cast<long long>(durable->steps), plain->step_ms, durable->step_ms,
                durable->step_ms / plain->step_ms, static_cast<long long>(durable->checkpoints),
                durable->capture_ms, durable->write_ms, durable->megabytes);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace contrail

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return contrail::Main();
}
