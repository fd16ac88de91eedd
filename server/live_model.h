// The model a server answers predictions from, updated in place of a copy.
//
// Readers take a reference-counted pointer to the current version and run
// inference without holding any lock, so a prediction never sees a torn
// update and never delays one. The apply path writes into a second copy:
// the previous version, recycled once no prediction still uses it (it is
// first brought up to date with the update it missed), or else a fresh
// clone; then it swaps the pointer. Every update is verified (base version,
// fingerprint, payload checksum, and the model checksum after applying)
// before it becomes visible.
//
// Lifecycle: Create(), then Apply() a snapshot and the updates after it; a
// restarted server first Restore()s the snapshot it saved.
// Thread-safety: Predict() and the accessors are thread-safe; Apply() and
// Restore() are called by one thread at a time (the daemon restores before
// the subscriber's apply thread starts, which then applies).
#ifndef CONTRAIL_SERVER_LIVE_MODEL_H_
#define CONTRAIL_SERVER_LIVE_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/model.h"
#include "proto/contrail.pb.h"

namespace contrail {

class LiveModel {
 public:
  struct Options {
    // Largest batch one Predict may carry.
    int64_t max_batch = 1024;
    // Stamps each version with the time it was applied; must outlive the
    // live model.
    Clock* clock = Clock::Real();
  };

  // What one version of the served model is. Immutable once published.
  struct Version {
    std::unique_ptr<Model> model;
    uint64_t version = 0;
    uint64_t run = 0;       // Update.run of the trainer that produced it
    uint64_t checksum = 0;  // ChecksumTensors of model
    // When the update that made it was applied: by this process, or, for a
    // restored version, by the process that saved it.
    absl::Time applied_at = absl::InfinitePast();
  };

  struct Predictions {
    uint64_t version = 0;
    int64_t num_classes = 0;
    std::vector<float> probabilities;  // [N, num_classes], row-major
    std::vector<int32_t> labels;       // [N] arg-max
  };

  // Checks `options` (INVALID_ARGUMENT naming the field) and builds a live
  // model that holds nothing until the first snapshot applies.
  static absl::StatusOr<std::unique_ptr<LiveModel>> Create(const Options& options);

  LiveModel(const LiveModel&) = delete;
  LiveModel& operator=(const LiveModel&) = delete;

  // Applies a snapshot or the update that follows the current version.
  // FAILED_PRECONDITION when it does not apply on top of what is held (base
  // version or fingerprint differ), INVALID_ARGUMENT or DATA_LOSS when it
  // is malformed or its checksums fail. On error nothing visible changes.
  absl::Status Apply(const Update& update) ABSL_LOCKS_EXCLUDED(mu_);

  // Applies `snapshot`, a snapshot this server saved earlier, as Apply()
  // does, stamping it as applied at `applied_at` rather than now.
  // INVALID_ARGUMENT when it is not a snapshot.
  absl::Status Restore(const Update& snapshot, absl::Time applied_at)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Class probabilities for `values` of shape `shape` ([N] + input shape).
  // INVALID_ARGUMENT for a wrong shape, an empty or oversized batch, a value
  // count that does not match the shape, or a non-finite value;
  // UNAVAILABLE while no model is held.
  absl::StatusOr<Predictions> Predict(absl::Span<const int64_t> shape,
                                      absl::Span<const float> values)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The current version; null while no model is held.
  std::shared_ptr<const Version> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  // How long ago the current version was applied (Version::applied_at, by
  // Options::clock): the age of the model served. Zero while none is held.
  absl::Duration SinceLastUpdate() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit LiveModel(const Options& options) : options_(options) {}

  absl::Status ApplyAt(const Update& update, absl::Time applied_at)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<Version>> ApplySnapshot(const Update& update);
  absl::StatusOr<std::shared_ptr<Version>> ApplyDelta(
      const std::shared_ptr<Version>& current, const Update& update);
  // Labels `next`, which now holds what `update` describes, with its
  // version, run and checksum; DATA_LOSS unless the checksum is the
  // trainer's (an update always carries it: 0 is a checksum like any other).
  static absl::StatusOr<std::shared_ptr<Version>> Stamp(
      std::shared_ptr<Version> next, const Update& update);
  void Publish(std::shared_ptr<Version> next) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;

  // Protects the pointer to the current version (not the model it points
  // to, which is immutable while current).
  mutable absl::Mutex mu_;
  std::shared_ptr<Version> current_ ABSL_GUARDED_BY(mu_);

  // Apply thread only: the version before current_, and the update that
  // turns it into current_, for recycling.
  std::shared_ptr<Version> spare_;
  std::shared_ptr<const Update> spare_missed_;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_LIVE_MODEL_H_
