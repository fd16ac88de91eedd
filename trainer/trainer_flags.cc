#include "trainer/trainer_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/update_codec.h"
#include "trainer/training_config.h"

namespace {

const contrail::TrainingConfig& Defaults() { return contrail::DefaultTrainingConfig(); }

}  // namespace

ABSL_FLAG(std::string, model, Defaults().model(),
          "lenet5, mlp, resnet18, mobilenet_v2, or the path of a TorchScript "
          "file (*.pt) mapping [N] + --input_shape inputs to [N, --num_classes] "
          "logits");
ABSL_FLAG(std::string, input_shape, "",
          "shape of one example without the batch dimension, comma-separated: "
          "16 for vectors of 16 features, 3,32,32 for colour images. Empty = "
          "what the TorchScript module declares in its input_shape attribute, "
          "else 1,28,28 (Fashion-MNIST); set as well, it must agree with the "
          "module. Built-in architectures are built for it");
ABSL_FLAG(int64_t, num_classes, 0,
          "classes the model scores. 0 = what the TorchScript module declares "
          "in its num_classes attribute, else 10; set as well, it must agree "
          "with the module");
ABSL_FLAG(std::string, mode, contrail::ConfigEnumName(Defaults().mode()),
          "proactive (t new + b-t sampled from history per step), online (each "
          "example used once, t = b) or full (retrain from scratch every "
          "--retrain_every examples)");
ABSL_FLAG(int64_t, retrain_every, Defaults().retrain_every(),
          "full mode: examples between retrainings");
ABSL_FLAG(int32_t, retrain_epochs, Defaults().retrain_epochs(),
          "full mode: epochs of each retraining");
ABSL_FLAG(int64_t, warmup_updates, Defaults().warmup_updates(),
          "training steps on the stream before deployment starts");
ABSL_FLAG(std::string, drift, contrail::ConfigEnumName(Defaults().drift()),
          "none, permute_labels, rotate or random_labels (label noise): drift applied to streamed "
          "examples from --drift_at on");
ABSL_FLAG(int64_t, drift_at, Defaults().drift_at(),
          "streamed examples before the drift starts");
ABSL_FLAG(int64_t, drift_until, Defaults().drift_until(),
          "streamed example at which the drift ends (a burst, e.g. of label "
          "noise, from --drift_at to here); 0 = it never ends");
ABSL_FLAG(double, guard_drop, Defaults().guard_drop(),
          "deploy guard: stop deploying while the trainer's windowed "
          "prequential accuracy is more than this below the best recent "
          "served one, and roll the servers back to the last good version "
          "when the served one has fallen too; 0 = off");
ABSL_FLAG(int64_t, guard_window, Defaults().guard_window(),
          "deploy guard: examples in each windowed accuracy");
ABSL_FLAG(int64_t, initial_examples, Defaults().initial_examples(),
          "examples at the head of the training set trained on before deployment");
ABSL_FLAG(int32_t, initial_epochs, Defaults().initial_epochs(), "epochs of initial training");
ABSL_FLAG(int64_t, stream_examples, -1,
          "examples streamed after the initial ones; the stream ends after "
          "them. 0 = until the source ends or the trainer stops. Default (-1): "
          "20000 with --source=replay, 0 with the other sources");
ABSL_FLAG(int64_t, trigger_size, Defaults().trigger_size(),
          "t: new examples that trigger one proactive training step");
ABSL_FLAG(int64_t, batch_size, Defaults().batch_size(),
          "b: examples per step (t new + b-t sampled from the history)");
ABSL_FLAG(std::string, optimizer, contrail::ConfigEnumName(Defaults().optimizer()),
          "adam or sgd");
ABSL_FLAG(double, lr, Defaults().lr(), "learning rate");
ABSL_FLAG(std::string, sparsity, contrail::ConfigEnumName(Defaults().sparsity()),
          "none (dense steps), topk or randomk (each step changes only the "
          "selected entries of each tensor)");
ABSL_FLAG(double, ratio, Defaults().ratio(),
          "fraction of each tensor's entries selected per step (at least one)");
ABSL_FLAG(std::string, update_values, contrail::ValueEncodingName(Defaults().update_values()),
          "value encoding of updates: fp32 (exact new values), fp16 or bf16 "
          "(rounded differences, 2 bytes each; the rounding error is sent later)");
ABSL_FLAG(double, deploy_ratio, 0,
          "largest fraction of each tensor sent per update (the largest "
          "differences first; the rest follow in later updates and when the "
          "stream pauses or ends). 0 = automatic: --ratio when --sparsity is "
          "topk or randomk, else 1 (every change). With --sparsity=none a "
          "ratio below 1 keeps the wire sparse while training densely");
ABSL_FLAG(double, replay_rate, Defaults().replay_rate(),
          "examples per second arriving on the stream; 0 = as fast as training goes");
ABSL_FLAG(uint64_t, seed, Defaults().seed(), "seed for weights, sampling and data order");
ABSL_FLAG(int64_t, retain_updates, Defaults().retain_updates(),
          "updates kept for servers that reconnect; older servers get a snapshot");
ABSL_FLAG(int64_t, retain_mb, Defaults().retain_mb(),
          "cap on the retained updates' encoded size, in MiB");
ABSL_FLAG(int64_t, history_size, Defaults().history_size(),
          "examples kept for the proactive sampler and full retraining: the "
          "newest, the oldest forgotten first (0 = all; memory is about "
          "1.25 x this x 4 bytes x the input size)");
ABSL_FLAG(int64_t, max_wait_ms, Defaults().max_wait_ms(),
          "when fewer than --trigger_size new examples have arrived this many "
          "ms after the first of them, train on those (the rest of the batch "
          "from the history); 0 = always wait for --trigger_size");
ABSL_FLAG(std::string, device, Defaults().device(),
          "where the model trains: cpu, cuda or cuda:N (needs a CUDA build of "
          "LibTorch; selection and the optimizer then run on the GPU)");

namespace contrail {
namespace {

template <typename Enum>
absl::Status ParseInto(const char* flag, const std::string& name, Enum* out) {
  absl::StatusOr<Enum> parsed = ParseConfigEnum<Enum>(name);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", parsed.status().message()));
  }
  *out = *parsed;
  return absl::OkStatus();
}

// "16" or "3,32,32" into `config`'s input_shape; "" leaves it unset.
absl::Status ParseInputShape(const std::string& text, TrainingConfig* config) {
  if (text.empty()) return absl::OkStatus();
  for (absl::string_view size : absl::StrSplit(text, ',')) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(size, &d) || d < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--input_shape: expected comma-separated sizes >= 1 such as 4,8, got \"", text,
          "\""));
    }
    config->add_input_shape(d);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingConfig> TrainingConfigFromFlags() {
  TrainingConfig config;
  config.set_model(absl::GetFlag(FLAGS_model));
  if (absl::Status shape = ParseInputShape(absl::GetFlag(FLAGS_input_shape), &config);
      !shape.ok()) {
    return shape;
  }
  // 0 = the model's: left unset.
  if (absl::GetFlag(FLAGS_num_classes) != 0) {
    config.set_num_classes(absl::GetFlag(FLAGS_num_classes));
  }
  TrainingConfig::Mode mode = TrainingConfig::MODE_UNSPECIFIED;
  TrainingConfig::Drift drift = TrainingConfig::DRIFT_UNSPECIFIED;
  TrainingConfig::Optimizer optimizer = TrainingConfig::OPTIMIZER_UNSPECIFIED;
  TrainingConfig::Sparsity sparsity = TrainingConfig::SPARSITY_UNSPECIFIED;
  for (const absl::Status& parsed :
       {ParseInto("mode", absl::GetFlag(FLAGS_mode), &mode),
        ParseInto("drift", absl::GetFlag(FLAGS_drift), &drift),
        ParseInto("optimizer", absl::GetFlag(FLAGS_optimizer), &optimizer),
        ParseInto("sparsity", absl::GetFlag(FLAGS_sparsity), &sparsity)}) {
    if (!parsed.ok()) return parsed;
  }
  absl::StatusOr<ValueEncoding> encoding =
      ParseValueEncoding(absl::GetFlag(FLAGS_update_values));
  if (!encoding.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--update_values: ", encoding.status().message()));
  }
  config.set_mode(mode);
  config.set_drift(drift);
  config.set_optimizer(optimizer);
  config.set_sparsity(sparsity);
  config.set_update_values(*encoding);
  config.set_retrain_every(absl::GetFlag(FLAGS_retrain_every));
  config.set_retrain_epochs(absl::GetFlag(FLAGS_retrain_epochs));
  config.set_warmup_updates(absl::GetFlag(FLAGS_warmup_updates));
  config.set_drift_at(absl::GetFlag(FLAGS_drift_at));
  config.set_drift_until(absl::GetFlag(FLAGS_drift_until));
  config.set_guard_drop(absl::GetFlag(FLAGS_guard_drop));
  config.set_guard_window(absl::GetFlag(FLAGS_guard_window));
  config.set_initial_examples(absl::GetFlag(FLAGS_initial_examples));
  config.set_initial_epochs(absl::GetFlag(FLAGS_initial_epochs));
  // -1: the source's default (left unset).
  if (absl::GetFlag(FLAGS_stream_examples) != -1) {
    config.set_stream_examples(absl::GetFlag(FLAGS_stream_examples));
  }
  config.set_trigger_size(absl::GetFlag(FLAGS_trigger_size));
  config.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  config.set_lr(absl::GetFlag(FLAGS_lr));
  config.set_ratio(absl::GetFlag(FLAGS_ratio));
  // 0 = automatic: left unset.
  if (absl::GetFlag(FLAGS_deploy_ratio) != 0) {
    config.set_deploy_ratio(absl::GetFlag(FLAGS_deploy_ratio));
  }
  config.set_replay_rate(absl::GetFlag(FLAGS_replay_rate));
  config.set_seed(absl::GetFlag(FLAGS_seed));
  config.set_retain_updates(absl::GetFlag(FLAGS_retain_updates));
  config.set_device(absl::GetFlag(FLAGS_device));
  config.set_history_size(absl::GetFlag(FLAGS_history_size));
  config.set_retain_mb(absl::GetFlag(FLAGS_retain_mb));
  config.set_max_wait_ms(absl::GetFlag(FLAGS_max_wait_ms));
  return config;
}

}  // namespace contrail
