// One config path: the trainer daemon's flags and every experiment
// configuration are a TrainingConfig (proto/experiment.proto), and this
// resolves one into the options of the classes that train and deploy.
//
// Every default has one source, the Options struct of the class it
// configures; DefaultTrainingConfig() reads them, the daemon's flags show
// them, and ResolveTrainingConfig() fills them into unset fields.
//
// Stateless; thread-safe.
#ifndef CONTRAIL_TRAINER_TRAINING_CONFIG_H_
#define CONTRAIL_TRAINER_TRAINING_CONFIG_H_

#include <google/protobuf/generated_enum_reflection.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model.h"
#include "proto/experiment.pb.h"
#include "trainer/replay_source.h"
#include "trainer/stream_trainer.h"
#include "trainer/update_publisher.h"

namespace contrail {

// The default architecture.
inline constexpr char kDefaultModel[] = "lenet5";

// A resolved configuration and the options it makes.
struct TrainingPlan {
  TrainingConfig config;  // every field set: what runs
  StreamTrainer::Options trainer;
  // How the default source replays the data (its clock is left unset).
  ReplaySource::Options replay;
  // The publisher's options (torchscript_module is the model's to set).
  UpdatePublisher::Options publisher;
  // What the model is asked to take and give (Model::Load): the config's
  // input_shape and num_classes, unset where the config leaves them unset.
  ModelSignature signature;
};

// Every field set to its default, but input_shape and num_classes, whose
// default depends on the model (Model::Signature).
const TrainingConfig& DefaultTrainingConfig();

// `base` overridden by what `overrides` sets: MergeFrom, except that a
// repeated field that `overrides` sets (input_shape) replaces base's
// instead of extending it.
TrainingConfig MergeTrainingConfig(const TrainingConfig& base,
                                   const TrainingConfig& overrides);

// Fills the unset fields of `config` with their defaults, checks every
// field (INVALID_ARGUMENT naming it and saying what is allowed) and makes
// the options. Online mode trains on batches of b new examples, so its
// trigger_size becomes batch_size; full retraining is dense, so its
// sparsity becomes SPARSITY_NONE; an unset deploy_ratio is resolved.
absl::StatusOr<TrainingPlan> ResolveTrainingConfig(const TrainingConfig& config);

namespace internal {
absl::StatusOr<int> ParseEnumName(const google::protobuf::EnumDescriptor* descriptor,
                                  absl::string_view name);
std::string EnumName(const google::protobuf::EnumDescriptor* descriptor, int value);
std::string EnumNames(const google::protobuf::EnumDescriptor* descriptor);
}  // namespace internal

// A TrainingConfig enum by the name users write, its value name without
// the type's prefix in lower case: "proactive", "topk", "permute_labels",
// "adam". INVALID_ARGUMENT listing the names otherwise.
template <typename Enum>
absl::StatusOr<Enum> ParseConfigEnum(absl::string_view name) {
  absl::StatusOr<int> value =
      internal::ParseEnumName(google::protobuf::GetEnumDescriptor<Enum>(), name);
  if (!value.ok()) return value.status();
  return static_cast<Enum>(*value);
}

// The name ParseConfigEnum() takes for `value`.
template <typename Enum>
std::string ConfigEnumName(Enum value) {
  return internal::EnumName(google::protobuf::GetEnumDescriptor<Enum>(),
                            static_cast<int>(value));
}

// The names of every value but the unspecified one, joined by ", ".
template <typename Enum>
std::string ConfigEnumNames() {
  return internal::EnumNames(google::protobuf::GetEnumDescriptor<Enum>());
}

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_TRAINING_CONFIG_H_
