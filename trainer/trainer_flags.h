// The trainer binary's training flags (--mode, --trigger_size, --sparsity,
// ...), each named after its TrainingConfig field, with that field's
// default (DefaultTrainingConfig()). Linked into //trainer:trainer only:
// libraries never read flags.
#ifndef CONTRAIL_TRAINER_TRAINER_FLAGS_H_
#define CONTRAIL_TRAINER_TRAINER_FLAGS_H_

#include "absl/status/statusor.h"
#include "proto/experiment.pb.h"

namespace contrail {

// The TrainingConfig the flags say. INVALID_ARGUMENT naming the flag for an
// unknown enum name; ranges are checked by ResolveTrainingConfig().
absl::StatusOr<TrainingConfig> TrainingConfigFromFlags();

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_TRAINER_FLAGS_H_
