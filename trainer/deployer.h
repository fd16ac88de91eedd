// The deploy policy: when the trainer's changes go out to the servers.
//
//  - Start(): the initial model becomes version 1.
//  - AfterStep(): after each training step, trainer - mirror goes out as
//    the next version, once `warmup_steps` steps have been taken (the
//    paper's warm-up, which holds back Adam's early dip).
//  - SendHeldBack(): one more update of what the deploy budget held back;
//    the trainer calls it while it waits for examples.
//  - Flush(): updates until the mirror equals the trainer, or until an
//    update makes no progress (values a lossy encoding rounds away).
//
// All of it goes through the UpdatePublisher, which owns versions, the
// mirror and retention. Torch-free. Not thread-safe; owned by the training
// thread.
#ifndef CONTRAIL_TRAINER_DEPLOYER_H_
#define CONTRAIL_TRAINER_DEPLOYER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor_views.h"
#include "proto/checkpoint.pb.h"
#include "trainer/update_publisher.h"

namespace contrail {

class Deployer {
 public:
  struct Options {
    // Training steps before the first update goes out.
    int64_t warmup_steps = 0;
  };

  // What has gone out so far.
  struct Counters {
    uint64_t version = 0;        // the latest published version
    int64_t entries = 0;         // (index, value) entries in updates
    int64_t payload_bytes = 0;   // their encoded size
  };

  // `publisher` must outlive the deployer.
  Deployer(const Options& options, UpdatePublisher* publisher)
      : options_(options), publisher_(publisher) {}

  void Start(const ConstTensorViews& trainer);
  absl::Status AfterStep(const ConstTensorViews& trainer);
  // True when SendHeldBack() has something to send: the last update left
  // entries out, and sending more has not stalled.
  bool has_held_back() const { return held_back_entries_ > 0 && !stalled_; }
  absl::Status SendHeldBack(const ConstTensorViews& trainer);
  absl::Status Flush(const ConstTensorViews& trainer);

  const Counters& counters() const { return counters_; }
  // Entries where trainer and mirror differed after the last update.
  int64_t held_back_entries() const { return held_back_entries_; }

  // Its progress, for a checkpoint, and back.
  void SaveState(DeployerState* out) const;
  void RestoreState(const DeployerState& state);

 private:
  // Publishes trainer - mirror (within the budget); true when a new
  // version went out.
  absl::StatusOr<bool> Publish(const ConstTensorViews& trainer);

  const Options options_;
  UpdatePublisher* const publisher_;
  int64_t steps_ = 0;
  int64_t held_back_entries_ = 0;
  // Set when an update of held-back entries made no progress; cleared by
  // the next step.
  bool stalled_ = false;
  Counters counters_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_DEPLOYER_H_
