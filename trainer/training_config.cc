#include "trainer/training_config.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace contrail {
namespace {

TrainingConfig::Mode ToConfig(TrainingMode mode) {
  switch (mode) {
    case TrainingMode::kProactive:
      return TrainingConfig::MODE_PROACTIVE;
    case TrainingMode::kOnline:
      return TrainingConfig::MODE_ONLINE;
    case TrainingMode::kFull:
      return TrainingConfig::MODE_FULL;
  }
  return TrainingConfig::MODE_UNSPECIFIED;
}

TrainingConfig::Sparsity ToConfig(Sparsity sparsity) {
  switch (sparsity) {
    case Sparsity::kNone:
      return TrainingConfig::SPARSITY_NONE;
    case Sparsity::kTopK:
      return TrainingConfig::SPARSITY_TOPK;
    case Sparsity::kRandomK:
      return TrainingConfig::SPARSITY_RANDOMK;
  }
  return TrainingConfig::SPARSITY_UNSPECIFIED;
}

TrainingConfig::Optimizer ToConfig(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdam:
      return TrainingConfig::OPTIMIZER_ADAM;
    case OptimizerKind::kSgd:
      return TrainingConfig::OPTIMIZER_SGD;
  }
  return TrainingConfig::OPTIMIZER_UNSPECIFIED;
}

TrainingConfig::Drift ToConfig(Drift drift) {
  switch (drift) {
    case Drift::kNone:
      return TrainingConfig::DRIFT_NONE;
    case Drift::kPermuteLabels:
      return TrainingConfig::DRIFT_PERMUTE_LABELS;
    case Drift::kRotate:
      return TrainingConfig::DRIFT_ROTATE;
    case Drift::kRandomLabels:
      return TrainingConfig::DRIFT_RANDOM_LABELS;
  }
  return TrainingConfig::DRIFT_UNSPECIFIED;
}

absl::Status Invalid(absl::string_view field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

template <typename Enum>
absl::Status Unknown(absl::string_view field, Enum value) {
  return Invalid(field, absl::StrCat("unknown value ", static_cast<int>(value),
                                     "; expected one of ", ConfigEnumNames<Enum>()));
}

absl::StatusOr<TrainingMode> FromConfig(TrainingConfig::Mode mode) {
  switch (mode) {
    case TrainingConfig::MODE_PROACTIVE:
      return TrainingMode::kProactive;
    case TrainingConfig::MODE_ONLINE:
      return TrainingMode::kOnline;
    case TrainingConfig::MODE_FULL:
      return TrainingMode::kFull;
    default:
      return Unknown("mode", mode);
  }
}

absl::StatusOr<Sparsity> FromConfig(TrainingConfig::Sparsity sparsity) {
  switch (sparsity) {
    case TrainingConfig::SPARSITY_NONE:
      return Sparsity::kNone;
    case TrainingConfig::SPARSITY_TOPK:
      return Sparsity::kTopK;
    case TrainingConfig::SPARSITY_RANDOMK:
      return Sparsity::kRandomK;
    default:
      return Unknown("sparsity", sparsity);
  }
}

absl::StatusOr<OptimizerKind> FromConfig(TrainingConfig::Optimizer optimizer) {
  switch (optimizer) {
    case TrainingConfig::OPTIMIZER_ADAM:
      return OptimizerKind::kAdam;
    case TrainingConfig::OPTIMIZER_SGD:
      return OptimizerKind::kSgd;
    default:
      return Unknown("optimizer", optimizer);
  }
}

absl::StatusOr<Drift> FromConfig(TrainingConfig::Drift drift) {
  switch (drift) {
    case TrainingConfig::DRIFT_NONE:
      return Drift::kNone;
    case TrainingConfig::DRIFT_PERMUTE_LABELS:
      return Drift::kPermuteLabels;
    case TrainingConfig::DRIFT_ROTATE:
      return Drift::kRotate;
    case TrainingConfig::DRIFT_RANDOM_LABELS:
      return Drift::kRandomLabels;
    default:
      return Unknown("drift", drift);
  }
}

// The checks of one integer field.
absl::Status CheckAtLeast(absl::string_view field, int64_t value, int64_t minimum) {
  if (value >= minimum) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be >= ", minimum, ", got ", value));
}

// `value` in (0, 1].
absl::Status CheckFraction(absl::string_view field, double value) {
  if (value > 0 && value <= 1) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be in (0, 1], got ", value));
}

}  // namespace

namespace internal {

std::string EnumPrefix(const google::protobuf::EnumDescriptor* descriptor) {
  return absl::StrCat(absl::AsciiStrToUpper(descriptor->name()), "_");
}

absl::StatusOr<int> ParseEnumName(const google::protobuf::EnumDescriptor* descriptor,
                                  absl::string_view name) {
  const google::protobuf::EnumValueDescriptor* value = descriptor->FindValueByName(
      absl::StrCat(EnumPrefix(descriptor), absl::AsciiStrToUpper(name)));
  if (value == nullptr || value->number() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown ", absl::AsciiStrToLower(descriptor->name()), " \"", name,
                     "\"; expected one of ", EnumNames(descriptor)));
  }
  return value->number();
}

std::string EnumNames(const google::protobuf::EnumDescriptor* descriptor) {
  std::string names;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() == 0) continue;
    if (!names.empty()) names += ", ";
    names += EnumName(descriptor, descriptor->value(i)->number());
  }
  return names;
}

std::string EnumName(const google::protobuf::EnumDescriptor* descriptor, int value) {
  const google::protobuf::EnumValueDescriptor* found = descriptor->FindValueByNumber(value);
  if (found == nullptr) return absl::StrCat(value);
  return absl::AsciiStrToLower(
      absl::StripPrefix(found->name(), EnumPrefix(descriptor)));
}

}  // namespace internal

const TrainingConfig& DefaultTrainingConfig() {
  static const TrainingConfig* const defaults = [] {
    const StreamTrainer::Options trainer;
    const ReplaySource::Options replay;
    const UpdatePublisher::Options publisher;
    auto* config = new TrainingConfig;
    config->set_model(kDefaultModel);
    config->set_mode(ToConfig(trainer.mode));
    config->set_initial_examples(trainer.initial_examples);
    config->set_initial_epochs(trainer.initial_epochs);
    config->set_stream_examples(trainer.stream_examples);
    config->set_trigger_size(trainer.trigger_size);
    config->set_batch_size(trainer.batch_size);
    config->set_optimizer(ToConfig(trainer.optimizer.kind));
    config->set_lr(trainer.optimizer.lr);
    config->set_sparsity(ToConfig(trainer.sparsity.sparsity));
    config->set_ratio(trainer.sparsity.ratio);
    config->set_update_values(publisher.encoding);
    // deploy_ratio stays unset: automatic.
    config->set_retrain_every(trainer.retrain_every);
    config->set_retrain_epochs(trainer.retrain_epochs);
    config->set_warmup_updates(trainer.warmup_updates);
    config->set_drift(ToConfig(replay.drift));
    config->set_drift_at(0);  // from the start of the stream
    config->set_drift_until(0);  // never ends
    config->set_guard_drop(trainer.guard.drop);
    config->set_guard_window(trainer.guard.window);
    config->set_seed(trainer.seed);
    config->set_curve_every(trainer.curve_every);
    config->set_replay_rate(replay.rate);
    config->set_retain_updates(static_cast<int64_t>(publisher.max_retained_updates));
    config->set_retain_mb(static_cast<int64_t>(publisher.max_retained_bytes >> 20));
    config->set_device(trainer.device);
    config->set_history_size(trainer.history_size);
    config->set_max_wait_ms(absl::ToInt64Milliseconds(trainer.max_wait));
    return config;
  }();
  return *defaults;
}

TrainingConfig MergeTrainingConfig(const TrainingConfig& base,
                                   const TrainingConfig& overrides) {
  TrainingConfig merged = base;
  if (overrides.input_shape_size() > 0) merged.clear_input_shape();
  merged.MergeFrom(overrides);
  return merged;
}

absl::StatusOr<TrainingPlan> ResolveTrainingConfig(const TrainingConfig& input) {
  TrainingPlan plan;
  TrainingConfig& config = plan.config;
  config = MergeTrainingConfig(DefaultTrainingConfig(), input);

  StreamTrainer::Options& trainer = plan.trainer;
  if (config.model().empty()) return Invalid("model", "must name an architecture or a .pt file");
  absl::StatusOr<TrainingMode> mode = FromConfig(config.mode());
  if (!mode.ok()) return mode.status();
  trainer.mode = *mode;
  // Online learning uses each example once, in batches of b new ones
  // (t = b in the paper's terms); full retraining trains densely.
  if (trainer.mode == TrainingMode::kOnline) config.set_trigger_size(config.batch_size());
  if (trainer.mode == TrainingMode::kFull) config.set_sparsity(TrainingConfig::SPARSITY_NONE);

  for (const absl::Status& status :
       {CheckAtLeast("initial_examples", config.initial_examples(), 0),
        CheckAtLeast("initial_epochs", config.initial_epochs(), 0),
        CheckAtLeast("stream_examples", config.stream_examples(), 0),
        CheckAtLeast("batch_size", config.batch_size(), 1),
        CheckAtLeast("trigger_size", config.trigger_size(), 1),
        CheckAtLeast("retrain_every", config.retrain_every(), 1),
        CheckAtLeast("retrain_epochs", config.retrain_epochs(), 1),
        CheckAtLeast("warmup_updates", config.warmup_updates(), 0),
        CheckAtLeast("drift_at", config.drift_at(), 0),
        CheckAtLeast("drift_until", config.drift_until(), 0),
        CheckAtLeast("guard_window", config.guard_window(), 1),
        CheckAtLeast("curve_every", config.curve_every(), 1),
        CheckAtLeast("retain_updates", config.retain_updates(), 1),
        CheckAtLeast("retain_mb", config.retain_mb(), 1),
        CheckAtLeast("history_size", config.history_size(), 0),
        CheckAtLeast("max_wait_ms", config.max_wait_ms(), 0),
        CheckFraction("ratio", config.ratio())}) {
    if (!status.ok()) return status;
  }
  if (config.history_size() != 0 &&
      (config.history_size() < config.initial_examples() ||
       config.history_size() < config.batch_size())) {
    return Invalid("history_size",
                   absl::StrCat("must be 0 (every example) or at least initial_examples (",
                                config.initial_examples(), ") and batch_size (",
                                config.batch_size(), "), got ", config.history_size()));
  }
  if (config.drift_until() != 0 && config.drift_until() <= config.drift_at()) {
    return Invalid("drift_until", absl::StrCat("must be 0 (never) or after drift_at (",
                                               config.drift_at(), "), got ",
                                               config.drift_until()));
  }
  if (!(config.guard_drop() >= 0 && config.guard_drop() < 1)) {
    return Invalid("guard_drop", absl::StrCat("must be in [0, 1) (0 = off), got ",
                                              config.guard_drop()));
  }
  if (config.trigger_size() > config.batch_size()) {
    return Invalid("trigger_size", absl::StrCat(config.trigger_size(),
                                                " exceeds batch_size ", config.batch_size()));
  }
  if (!(config.lr() > 0) || !std::isfinite(config.lr())) {
    return Invalid("lr", absl::StrCat("must be a positive number, got ", config.lr()));
  }
  if (!(config.replay_rate() >= 0) || !std::isfinite(config.replay_rate())) {
    return Invalid("replay_rate",
                   absl::StrCat("must be >= 0 (0 = as fast as training), got ",
                                config.replay_rate()));
  }
  if (!ValueEncoding_IsValid(config.update_values()) ||
      config.update_values() == VALUE_ENCODING_UNSPECIFIED) {
    return Invalid("update_values",
                   absl::StrCat("unknown value encoding ", config.update_values()));
  }

  for (int64_t d : config.input_shape()) {
    if (d < 1) {
      return Invalid("input_shape", absl::StrCat("sizes must be >= 1, got [",
                                                 absl::StrJoin(config.input_shape(), ", "),
                                                 "]"));
    }
  }
  if (config.has_num_classes() &&
      (config.num_classes() < 1 || config.num_classes() > INT32_MAX)) {
    return Invalid("num_classes", absl::StrCat("must be >= 1, got ", config.num_classes()));
  }
  plan.signature.input_shape.assign(config.input_shape().begin(),
                                    config.input_shape().end());
  plan.signature.num_classes = config.has_num_classes() ? config.num_classes() : 0;

  absl::StatusOr<OptimizerKind> optimizer = FromConfig(config.optimizer());
  if (!optimizer.ok()) return optimizer.status();
  absl::StatusOr<Sparsity> sparsity = FromConfig(config.sparsity());
  if (!sparsity.ok()) return sparsity.status();
  absl::StatusOr<Drift> drift = FromConfig(config.drift());
  if (!drift.ok()) return drift.status();

  trainer.initial_examples = config.initial_examples();
  trainer.initial_epochs = config.initial_epochs();
  trainer.stream_examples = config.stream_examples();
  trainer.trigger_size = config.trigger_size();
  trainer.batch_size = config.batch_size();
  trainer.optimizer.kind = *optimizer;
  trainer.optimizer.lr = config.lr();
  trainer.sparsity.sparsity = *sparsity;
  trainer.sparsity.ratio = config.ratio();
  trainer.sparsity.seed = config.seed();
  trainer.seed = config.seed();
  trainer.retrain_every = config.retrain_every();
  trainer.retrain_epochs = config.retrain_epochs();
  trainer.warmup_updates = config.warmup_updates();
  trainer.curve_every = config.curve_every();
  trainer.device = config.device();
  trainer.history_size = config.history_size();
  trainer.max_wait = absl::Milliseconds(config.max_wait_ms());
  trainer.guard.drop = config.guard_drop();
  trainer.guard.window = config.guard_window();

  if (!config.has_deploy_ratio()) {
    config.set_deploy_ratio(ResolveDeployRatio(/*requested=*/0, trainer.sparsity));
  }
  if (absl::Status deploy = CheckFraction("deploy_ratio", config.deploy_ratio());
      !deploy.ok()) {
    return deploy;
  }
  plan.publisher.encoding = config.update_values();
  plan.publisher.deploy_ratio = config.deploy_ratio();
  plan.publisher.max_retained_updates = static_cast<size_t>(config.retain_updates());
  plan.publisher.max_retained_bytes = static_cast<size_t>(config.retain_mb()) << 20;

  ReplaySource::Options& replay = plan.replay;
  replay.count = config.stream_examples() > 0
                     ? config.initial_examples() + config.stream_examples()
                     : 0;
  replay.unpaced_examples = config.initial_examples();
  replay.rate = config.replay_rate();
  replay.drift = *drift;
  replay.drift_begin = config.initial_examples() + config.drift_at();
  replay.drift_end =
      config.drift_until() > 0 ? config.initial_examples() + config.drift_until() : 0;
  replay.drift_seed = config.seed();
  return plan;
}

}  // namespace contrail
