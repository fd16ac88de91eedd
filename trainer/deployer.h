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
//  - Observe(): each arrival's prequential test goes to the QualityGuard
//    (trainer/quality_guard.h). While it holds, nothing of the trainer's
//    goes out; when it asks for a rollback, updates take the mirror (and
//    so every server) back to the weights of the last good version, as
//    new versions (versions never go backwards, and the servers need
//    nothing new). When it resumes, trainer - mirror goes out as usual.
//
// All of it goes through the UpdatePublisher, which owns versions, the
// mirror and retention. With `overlap`, AfterStep()'s update is published
// on a PublishingThread (trainer/publishing_thread.h) while the training
// thread goes on with the next step: at most one update is in flight, and
// every other call (and the next AfterStep()) first waits for it (Drain()),
// so the updates, their order and the mirror are what they would be
// without overlap. Until then counters(), has_held_back() and the
// publisher's version and mirror are those of the update before it, and a
// failure to publish it surfaces at the next call instead.
//
// Torch-free. Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_DEPLOYER_H_
#define CONTRAIL_TRAINER_DEPLOYER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor_views.h"
#include "proto/checkpoint.pb.h"
#include "trainer/publishing_thread.h"
#include "trainer/quality_guard.h"
#include "trainer/update_publisher.h"

namespace contrail {

class Deployer {
 public:
  struct Options {
    // Training steps before the first update goes out.
    int64_t warmup_steps = 0;
    // The deploy guard; off (drop 0) by default.
    QualityGuard::Options guard;
    // Publish each step's update on a publishing thread, overlapped with
    // the next step (see above).
    bool overlap = false;
  };

  // What has gone out so far.
  struct Counters {
    uint64_t version = 0;        // the latest published version
    int64_t entries = 0;         // (index, value) entries in updates
    int64_t payload_bytes = 0;   // their encoded size
  };

  // INVALID_ARGUMENT naming the flag when the guard's options are out of
  // range (see QualityGuard::Create()).
  static absl::Status CheckOptions(const Options& options);

  // `publisher` must outlive the deployer; `options` must pass
  // CheckOptions().
  Deployer(const Options& options, UpdatePublisher* publisher);

  void Start(const ConstTensorViews& trainer);
  // With `overlap`, copies `trainer` and returns once its update is in
  // flight (after waiting for the one before it, whose error it returns).
  absl::Status AfterStep(const ConstTensorViews& trainer);
  // Waits for the update in flight, if any, and takes its result: its
  // error (once) when it could not be published. OK at once without one.
  absl::Status Drain();
  // True while an update is in flight (overlap only).
  bool publishing() const { return in_flight_; }
  // The latest update's publishing time on the publishing thread (overlap
  // only, after Drain()).
  absl::Duration last_publish_time() const { return last_publish_time_; }
  // True when SendHeldBack() has something to send: the last finished
  // update left entries out, and sending more has not stalled.
  bool has_held_back() const {
    return held_back_entries_ > 0 && !stalled_ && !holding();
  }
  absl::Status SendHeldBack(const ConstTensorViews& trainer);
  absl::Status Flush(const ConstTensorViews& trainer);
  // Records an arrival's prequential test (before training on it) with
  // the guard, and acts on its verdict.
  absl::Status Observe(int64_t count, int64_t trainer_correct, int64_t served_correct);

  const QualityGuard& guard() const { return guard_; }
  // The version whose weights a rollback restores; 0 while none.
  uint64_t good_version() const { return good_version_; }
  // True while the guard holds deployment back.
  bool holding() const { return guard_.state() == QualityGuard::State::kHolding; }

  const Counters& counters() const { return counters_; }
  // Entries where trainer and mirror differed after the last update.
  int64_t held_back_entries() const { return held_back_entries_; }

  // Its progress, for a checkpoint (after Drain()), and back.
  void SaveState(DeployerState* out) const;
  void RestoreState(const DeployerState& state);

 private:
  // Publishes trainer - mirror (within the budget); true when a new
  // version went out.
  absl::StatusOr<bool> Publish(const ConstTensorViews& trainer);
  // Takes a publish result into the counters; true when a new version
  // went out.
  absl::StatusOr<bool> TakeResult(absl::StatusOr<UpdatePublisher::PublishResult> published);

  // Takes the mirror to the weights kept for the last good version.
  absl::Status RollBack();

  const Options options_;
  UpdatePublisher* const publisher_;
  QualityGuard guard_;
  // The mirror at the latest window the guard found good, with its
  // version, and at the one before (the last good version: confirmed by
  // the window after it).
  std::vector<std::vector<float>> candidate_;
  uint64_t candidate_version_ = 0;
  std::vector<std::vector<float>> good_;
  uint64_t good_version_ = 0;
  int64_t steps_ = 0;
  int64_t held_back_entries_ = 0;
  // Set when an update of held-back entries made no progress; cleared by
  // the next step.
  bool stalled_ = false;
  Counters counters_;
  // With `overlap`: the thread AfterStep()'s updates are published on, and
  // whether one is in flight.
  std::unique_ptr<PublishingThread> publishing_;
  bool in_flight_ = false;
  absl::Duration last_publish_time_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_DEPLOYER_H_
