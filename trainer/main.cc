// contrail trainer: learns from a labelled stream with sparse proactive SGD
// and streams every step's changes to subscribed servers.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/idx_reader.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"
#include "trainer/stream_trainer.h"
#include "trainer/trainer_status_service_impl.h"
#include "trainer/update_publisher.h"
#include "trainer/update_service_impl.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve SubscribeUpdates and GetStatus on (port 0 picks "
          "a free port; see --port_file)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once listening");
ABSL_FLAG(std::string, data_dir, "/usr/share/datasets/fashion-mnist",
          "folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz");
ABSL_FLAG(std::string, model, "lenet5",
          "lenet5, mlp, resnet18, mobilenet_v2, or the path of a TorchScript "
          "file (*.pt) mapping [N, 1, 28, 28] inputs to [N, 10] logits");
ABSL_FLAG(std::string, mode, "proactive",
          "proactive (t new + b-t sampled from history per step), online (each "
          "example used once, t = b) or full (retrain from scratch every "
          "--retrain_every examples)");
ABSL_FLAG(int64_t, retrain_every, 10000, "full mode: examples between retrainings");
ABSL_FLAG(int32_t, retrain_epochs, 5, "full mode: epochs of each retraining");
ABSL_FLAG(int64_t, warmup_updates, 0,
          "training steps on the stream before deployment starts");
ABSL_FLAG(std::string, drift, "none",
          "none, permute_labels or rotate: concept drift applied to streamed "
          "examples from --drift_at on");
ABSL_FLAG(int64_t, drift_at, 0, "streamed examples before the drift starts");
ABSL_FLAG(int64_t, initial_examples, 10000,
          "examples at the head of the training set trained on before deployment");
ABSL_FLAG(int32_t, initial_epochs, 5, "epochs of initial training");
ABSL_FLAG(int64_t, stream_examples, 20000,
          "examples streamed after the initial ones");
ABSL_FLAG(int64_t, trigger_size, 8,
          "t: new examples that trigger one proactive training step");
ABSL_FLAG(int64_t, batch_size, 128,
          "b: examples per step (t new + b-t sampled from the history)");
ABSL_FLAG(std::string, optimizer, "adam", "adam or sgd");
ABSL_FLAG(double, lr, 1e-3, "learning rate");
ABSL_FLAG(std::string, sparsity, "topk",
          "none (dense steps), topk or randomk (each step changes only the "
          "selected entries of each tensor)");
ABSL_FLAG(double, ratio, 0.001,
          "fraction of each tensor's entries selected per step (at least one)");
ABSL_FLAG(std::string, update_values, "fp32",
          "value encoding of updates: fp32 (exact new values), fp16 or bf16 "
          "(rounded differences, 2 bytes each; the rounding error is sent later)");
ABSL_FLAG(double, deploy_ratio, 0,
          "largest fraction of each tensor sent per update (the largest "
          "differences first; the rest follow in later updates and when the "
          "stream pauses or ends). 0 = automatic: --ratio when --sparsity is "
          "topk or randomk, else 1 (every change). With --sparsity=none a "
          "ratio below 1 keeps the wire sparse while training densely");
ABSL_FLAG(double, replay_rate, 0,
          "examples per second arriving on the stream; 0 = as fast as training goes");
ABSL_FLAG(uint64_t, seed, 1, "seed for weights, sampling and data order");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads; 0 keeps LibTorch's default");
ABSL_FLAG(int64_t, retain_updates, 4096,
          "updates kept for servers that reconnect; older servers get a snapshot");

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

  contrail::StreamTrainer::Options options;
  options.initial_examples = absl::GetFlag(FLAGS_initial_examples);
  options.initial_epochs = absl::GetFlag(FLAGS_initial_epochs);
  options.stream_examples = absl::GetFlag(FLAGS_stream_examples);
  options.trigger_size = absl::GetFlag(FLAGS_trigger_size);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.optimizer.lr = absl::GetFlag(FLAGS_lr);
  options.replay_rate = absl::GetFlag(FLAGS_replay_rate);
  options.seed = absl::GetFlag(FLAGS_seed);
  auto mode = contrail::ParseTrainingMode(absl::GetFlag(FLAGS_mode));
  if (!mode.ok()) Fail(absl::StrCat("--mode: ", mode.status().message()));
  options.mode = *mode;
  options.retrain_every = absl::GetFlag(FLAGS_retrain_every);
  options.retrain_epochs = absl::GetFlag(FLAGS_retrain_epochs);
  options.warmup_updates = absl::GetFlag(FLAGS_warmup_updates);
  auto drift = contrail::ParseDrift(absl::GetFlag(FLAGS_drift));
  if (!drift.ok()) Fail(absl::StrCat("--drift: ", drift.status().message()));
  options.drift = *drift;
  options.drift_at = absl::GetFlag(FLAGS_drift_at);
  options.sparsity.ratio = absl::GetFlag(FLAGS_ratio);
  options.sparsity.seed = options.seed;
  auto optimizer = contrail::ParseOptimizerKind(absl::GetFlag(FLAGS_optimizer));
  if (!optimizer.ok()) Fail(absl::StrCat("--optimizer: ", optimizer.status().message()));
  options.optimizer.kind = *optimizer;
  auto sparsity = contrail::ParseSparsity(absl::GetFlag(FLAGS_sparsity));
  if (!sparsity.ok()) Fail(absl::StrCat("--sparsity: ", sparsity.status().message()));
  options.sparsity.sparsity = *sparsity;
  if (absl::GetFlag(FLAGS_threads) < 0) Fail("--threads must be >= 0");
  if (absl::GetFlag(FLAGS_threads) > 0) torch::set_num_threads(absl::GetFlag(FLAGS_threads));
  if (absl::GetFlag(FLAGS_retain_updates) < 1) Fail("--retain_updates must be >= 1");

  auto model = contrail::Model::Load(absl::GetFlag(FLAGS_model), options.seed);
  if (!model.ok()) Fail(absl::StrCat("--model: ", model.status().message()));
  auto mirror = contrail::Model::CreateLike(**model, options.seed);
  if (!mirror.ok()) Fail(std::string(mirror.status().message()));

  spdlog::info("reading training data from {}", absl::GetFlag(FLAGS_data_dir));
  auto data = contrail::ReadFashionMnist(absl::GetFlag(FLAGS_data_dir), /*train=*/true);
  if (!data.ok()) Fail(std::string(data.status().message()));
  spdlog::info("read {} examples of {}x{}", data->count, data->rows, data->cols);

  contrail::UpdatePublisher::Options publisher_options;
  publisher_options.max_retained_updates = absl::GetFlag(FLAGS_retain_updates);
  publisher_options.torchscript_module = (*model)->torchscript_module();
  auto encoding = contrail::ParseValueEncoding(absl::GetFlag(FLAGS_update_values));
  if (!encoding.ok()) Fail(absl::StrCat("--update_values: ", encoding.status().message()));
  publisher_options.encoding = *encoding;
  publisher_options.deploy_ratio = absl::GetFlag(FLAGS_deploy_ratio);
  if (!(publisher_options.deploy_ratio >= 0 && publisher_options.deploy_ratio <= 1)) {
    Fail(absl::StrCat("--deploy_ratio must be in [0, 1], got ",
                      publisher_options.deploy_ratio));
  }
  publisher_options.deploy_ratio =
      contrail::ResolveDeployRatio(publisher_options.deploy_ratio, options.sparsity);
  const contrail::ModelSpec spec = (*model)->spec();
  contrail::UpdatePublisher publisher(spec, (*mirror)->Views(), publisher_options);
  auto trainer = contrail::StreamTrainer::Create(
      options, *std::move(data), *std::move(model), *std::move(mirror), &publisher);
  if (!trainer.ok()) Fail(std::string(trainer.status().message()));

  contrail::UpdateServiceImpl update_service(&publisher);
  contrail::TrainerStatusServiceImpl status_service(trainer->get(), &publisher,
                                                    &update_service);
  auto server = contrail::StartGrpcServer(absl::GetFlag(FLAGS_listen),
                                          {&update_service, &status_service});
  if (!server.ok()) Fail(std::string(server.status().message()));
  const absl::Status port_written =
      contrail::WritePortFile(absl::GetFlag(FLAGS_port_file), server->port);
  if (!port_written.ok()) Fail(std::string(port_written.message()));
  spdlog::info(
      "listening on port {}: model {} ({} parameters), t={} b={} {} lr={} "
      "sparsity={} ratio={} update_values={} deploy_ratio={}",
      server->port, spec.architecture(), contrail::ModelSize(spec),
      options.trigger_size, options.batch_size, absl::GetFlag(FLAGS_optimizer),
      options.optimizer.lr, absl::GetFlag(FLAGS_sparsity), options.sparsity.ratio,
      absl::GetFlag(FLAGS_update_values), publisher_options.deploy_ratio);

  (*trainer)->Start();
  const int signal = contrail::WaitForTerminationSignal();
  spdlog::info("signal {} received: shutting down", signal);
  (*trainer)->Stop();
  publisher.Close();
  server->server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(2));
  spdlog::info("stopped at version {}", publisher.version());
  return 0;
}
