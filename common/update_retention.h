// The versioned head of a model that subscribers follow, and the window of
// its latest updates kept for them: what the trainer's UpdatePublisher and a
// relaying server's UpdateRelay share to serve the UpdateService
// (common/update_feed.h).
//
// The owner changes its model only through Reset() (a new starting point:
// the trainer's start or resume, a snapshot a relay received) and Advance()
// (one update on top of the current version), each of which runs the
// owner's change under this class's lock; a snapshot is built by the
// owner's SnapshotFn under the same lock, so it always shows the model at
// version() and never a half-applied update. Next() answers a subscriber
// that holds a version inside the window with the updates after it, and
// one that is older than the window, holds nothing, or holds another run
// or model with a snapshot of the current version; one of the same run
// that is ahead (a relay restored from an older saved model) waits until
// the head reaches it, so that no subscriber's version goes backwards.
//
// Lifecycle: Create(), then Reset() once the model has a first version,
// Advance() per update, Close() to end every subscription.
// This class is thread-safe: Reset() and Advance() are called by the one
// thread that writes the model, Next() by many threads; listeners
// (AddListener()) run on the thread that called Reset(), Advance() or
// Close(), after the change, outside the lock that guards the model.
#ifndef CONTRAIL_COMMON_UPDATE_RETENTION_H_
#define CONTRAIL_COMMON_UPDATE_RETENTION_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tensor_views.h"
#include "common/update_feed.h"
#include "proto/contrail.pb.h"

namespace contrail {

// A snapshot of `tensors`, the model `spec` describes, as version
// `head.version` of `head.run` with model checksum `head.checksum`: every
// tensor dense in FP32, sealed, with the TorchScript module of a
// "torchscript:" model and `publish_time_us`.
std::shared_ptr<Update> MakeSnapshot(const ModelSpec& spec, const std::string& torchscript_module,
                                     uint64_t run, uint64_t version, uint64_t checksum,
                                     uint64_t publish_time_us,
                                     const ConstTensorViews& tensors);

class UpdateRetention final : public UpdateFeed {
 public:
  struct Options {
    // How many of the latest updates are kept for subscribers that fall
    // behind or reconnect; older subscribers get a snapshot.
    size_t max_updates = 4096;
    // Cap on the retained updates' encoded size (the newest one is kept
    // whatever its size).
    size_t max_bytes = size_t{256} << 20;
    // Who serves, for the UNAVAILABLE message once closed: "the trainer",
    // "this relay".
    std::string owner = "the update source";
  };

  // What identifies the model at the head: subscribers holding the same
  // run and fingerprint can follow it by updates.
  struct Head {
    uint64_t run = 0;
    uint64_t fingerprint = 0;
    uint64_t version = 0;  // 0 while there is no model
    uint64_t checksum = 0;  // ChecksumTensors of the model at version
  };

  // Builds a snapshot of the model at `head` (the current head); runs with
  // the lock held, so it must not call back into this class.
  using SnapshotFn = std::function<std::shared_ptr<const Update>(const Head& head)>;

  // INVALID_ARGUMENT naming the field unless both limits are >= 1 and
  // `snapshot` is set.
  static absl::StatusOr<std::unique_ptr<UpdateRetention>> Create(const Options& options,
                                                                 SnapshotFn snapshot);
  UpdateRetention(const UpdateRetention&) = delete;
  UpdateRetention& operator=(const UpdateRetention&) = delete;

  // Runs `change`, which makes the model `head`, and on success makes
  // `head` current with nothing retained: every subscriber not already at
  // `head` gets a snapshot next. On error nothing here changes and its
  // status is returned.
  absl::Status Reset(const Head& head, absl::FunctionRef<absl::Status()> change)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `apply`, which applies `update` to the model (and may fill in its
  // model_checksum), then retains it and moves the head to its version.
  // FAILED_PRECONDITION, without running `apply`, unless `update` is a
  // delta of the head's run whose base is the head's version; `apply`'s
  // error otherwise, with nothing retained.
  absl::Status Advance(std::shared_ptr<Update> update,
                       absl::FunctionRef<absl::Status(Update*)> apply)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status Next(uint64_t have_run, uint64_t have_version, uint64_t have_fingerprint,
                    absl::Duration timeout,
                    std::vector<std::shared_ptr<const Update>>* out) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every Next() with UNAVAILABLE, now and later.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // UpdateFeed: listeners run after every Reset() and Advance() that
  // succeeds, and after Close().
  uint64_t AddListener(std::function<void()> listener) override
      ABSL_LOCKS_EXCLUDED(listeners_mu_);
  void RemoveListener(uint64_t handle) override ABSL_LOCKS_EXCLUDED(listeners_mu_);

  Head head() const ABSL_LOCKS_EXCLUDED(mu_);
  // Updates retained now.
  size_t retained() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  UpdateRetention(const Options& options, SnapshotFn snapshot)
      : options_(options), snapshot_fn_(std::move(snapshot)) {}

  void RetainLocked(std::shared_ptr<const Update> update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const Update> SnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs every listener; called after a change, with mu_ released.
  void NotifyListeners() ABSL_LOCKS_EXCLUDED(mu_, listeners_mu_);

  // Constant after construction.
  const Options options_;
  const SnapshotFn snapshot_fn_;

  // Protects everything below, and the owner's model against a snapshot
  // taken while it changes.
  mutable absl::Mutex mu_;
  Head head_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // The latest updates, in version order, each based on its predecessor;
  // the last one's version is head_.version.
  std::deque<std::shared_ptr<const Update>> retained_ ABSL_GUARDED_BY(mu_);
  size_t retained_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Snapshot of the model at some version, built on demand and reused
  // until the head moves on.
  std::shared_ptr<const Update> snapshot_ ABSL_GUARDED_BY(mu_);

  // Protects the listeners; held while they run, so that RemoveListener()
  // waits for a running one. Never held together with mu_.
  absl::Mutex listeners_mu_;
  std::map<uint64_t, std::function<void()>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  uint64_t next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_UPDATE_RETENTION_H_
