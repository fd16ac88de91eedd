// contrail trainer: learns from a labelled stream with sparse proactive SGD
// and streams every step's changes to subscribed servers.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/model.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/trainer_daemon.h"
#include "trainer/trainer_flags.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve SubscribeUpdates and GetStatus on (port 0 picks "
          "a free port; see --port_file)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once listening");
ABSL_FLAG(int32_t, threads, 0, "LibTorch intra-op threads; 0 keeps LibTorch's default");
ABSL_FLAG(std::string, data_dir, contrail::kFashionMnistDir,
          "folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz");

namespace {

// Ends the process with one clear line, as every start-up error should.
[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "trainer: %s\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains a model on a labelled stream with sparse proactive SGD and "
      "streams sparse updates to contrail servers.\n"
      "Usage: trainer [--listen=127.0.0.1:50051] [--data_dir=...] "
      "[--sparsity=topk --ratio=0.001] ...");
  absl::ParseCommandLine(argc, argv);
  contrail::BlockTerminationSignals();
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e trainer %^%l%$ %v");
  if (absl::GetFlag(FLAGS_threads) < 0) Fail("--threads must be >= 0");
  if (absl::GetFlag(FLAGS_threads) > 0) contrail::SetLibTorchThreads(absl::GetFlag(FLAGS_threads));

  contrail::TrainerDaemon::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<contrail::TrainingConfig> training = contrail::TrainingConfigFromFlags();
  if (!training.ok()) Fail(std::string(training.status().message()));
  options.training = *std::move(training);
  auto daemon = contrail::TrainerDaemon::Create(options);
  if (!daemon.ok()) Fail(std::string(daemon.status().message()));
  const absl::Status started = (*daemon)->Start();
  if (!started.ok()) Fail(std::string(started.message()));
  const absl::Status port_written =
      contrail::WritePortFile(absl::GetFlag(FLAGS_port_file), (*daemon)->port());
  if (!port_written.ok()) Fail(std::string(port_written.message()));

  const int signal = contrail::WaitForTerminationSignal();
  spdlog::info("signal {} received: shutting down", signal);
  (*daemon)->Shutdown();
  return 0;
}
