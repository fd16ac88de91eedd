// The model a server answers predictions from, updated in place of a copy.
//
// Readers take a reference-counted pointer to the current version and run
// inference without holding any lock, so a prediction never sees a torn
// update and never delays one. The apply path writes into another copy and
// then swaps the pointer. That copy comes from a small pool of retired
// versions: one that no prediction still uses is brought up to date by
// replaying the decoded updates it missed (kept for the last few
// versions), or, when it lags further, by copying the current tensors; only
// while every retired version is still read is a new copy built. Every
// update is verified (base version, fingerprint, payload checksum, and the
// model checksum after applying) before it becomes visible.
//
// ApplyBatch() applies several consecutive updates as one swap: the
// updates a subscriber found queued cost one copy, one model checksum and
// one swap, and the versions between are never served.
//
// Lifecycle: Create(), then Apply() a snapshot and the updates after it; a
// restarted server first Restore()s the snapshot it saved.
// Thread-safety: Predict() and the accessors are thread-safe; Apply() and
// Restore() are called by one thread at a time (the daemon restores before
// the subscriber's apply thread starts, which then applies).
#ifndef CONTRAIL_SERVER_LIVE_MODEL_H_
#define CONTRAIL_SERVER_LIVE_MODEL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/model.h"
#include "common/update_codec.h"
#include "proto/contrail.pb.h"

namespace contrail {

class LiveModel {
 public:
  struct Options {
    // Largest batch one Predict may carry.
    int64_t max_batch = 1024;
    // Retired versions kept for reuse by later updates, each a copy of the
    // model in memory. More lets updates recycle a version while
    // predictions still read the ones before it.
    int max_spare_versions = 3;
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

  // Applies `updates`, consecutive updates (no snapshot) of which the
  // first follows the current version, as one swap to the last one's
  // version. The model checksum is verified once, against the last
  // update's; the versions between are never visible. All or nothing: on
  // any error (as Apply's, naming the update) nothing visible changes.
  // INVALID_ARGUMENT for an empty batch or one holding a snapshot.
  absl::Status ApplyBatch(absl::Span<const Update> updates) ABSL_LOCKS_EXCLUDED(mu_);

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

  // Copies of the model built for updates because no retired version was
  // free (snapshots not counted). Thread-safe.
  uint64_t copies_built() const { return copies_built_.load(); }

 private:
  // One applied update, decoded, kept to bring lagging spares up to date.
  struct Delta {
    uint64_t version = 0;  // the version it produced
    std::vector<DecodedTensor> decoded;
    int64_t values = 0;  // entries in decoded
  };

  explicit LiveModel(const Options& options) : options_(options) {}

  absl::Status ApplyAt(absl::Span<const Update> updates, absl::Time applied_at)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<Version>> ApplySnapshot(const Update& update);
  // Checks that `updates` follow `current` one version at a time and
  // decodes them into `deltas`.
  static absl::Status DecodeChain(const Version* current,
                                  absl::Span<const Update> updates,
                                  std::vector<Delta>* deltas);
  // A version no prediction reads, holding the tensors of `current`: a
  // spare brought up to date, or a new copy.
  absl::StatusOr<std::shared_ptr<Version>> Writable(const Version& current);
  // Retires `previous` into the spares and remembers `deltas`, which
  // produced the current version.
  void Retire(std::shared_ptr<Version> previous, std::vector<Delta> deltas);
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

  // Apply thread only: retired versions, oldest first (some may still be
  // read by predictions), and the decoded updates that produced the last
  // versions of the current run, in order, the last one current_'s; with
  // their entry count and the model's, which bounds it.
  std::vector<std::shared_ptr<Version>> spares_;
  std::deque<Delta> history_;
  int64_t history_values_ = 0;
  int64_t model_values_ = 0;

  std::atomic<uint64_t> copies_built_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_LIVE_MODEL_H_
