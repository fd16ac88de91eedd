// A relaying server's side of deployment (--relay): applies what its own
// subscription receives to the LiveModel and passes exactly that on to the
// servers that subscribe to it, so that servers form a tree below the
// trainer and every one of them stays bit-identical to the trainer's mirror.
//
// Each update that applies is retained unchanged (same bytes: version, base
// version, run, checksums, publish time) in a bounded window
// (common/update_retention.h), and served by an UpdateServiceImpl as the
// trainer's are. A subscriber that is older than the window, holds nothing,
// or holds another run or model gets a snapshot at the relay's version: the
// upstream snapshot itself while the relay is still at its version, else
// one built from the live model's tensors (same run and checksum, the
// TorchScript module of a "torchscript:" model, and the publish time of the
// update that made the version). A snapshot from upstream (a new trainer
// run, or a relay that fell too far behind) resets the window, so that
// every subscriber below resynchronises from it.
//
// Lifecycle: Create() once the live model holds what it restored (if
// anything); the UpdateSubscriber's apply thread calls Apply() for every
// update it receives; Close() ends every subscription below.
// This class is thread-safe: Apply() is called by the one apply thread,
// Next() by the UpdateService; listeners run on the apply thread, after the
// change.
#ifndef CONTRAIL_SERVER_UPDATE_RELAY_H_
#define CONTRAIL_SERVER_UPDATE_RELAY_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/update_feed.h"
#include "common/update_retention.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "server/update_subscriber.h"

namespace contrail {

class UpdateRelay final : public UpdateFeed, public UpdateApplier {
 public:
  struct Options {
    // How many of the latest updates are kept for subscribers that fall
    // behind or reconnect; older ones get a snapshot (--relay_retain).
    size_t max_retained_updates = 4096;
    // Cap on the retained updates' encoded size.
    size_t max_retained_bytes = size_t{256} << 20;
  };

  // INVALID_ARGUMENT naming the field for a limit below 1. `live` must
  // outlive the relay; the version it holds now (restored from a state
  // directory) is the relay's first.
  static absl::StatusOr<std::unique_ptr<UpdateRelay>> Create(const Options& options,
                                                             LiveModel* live);
  UpdateRelay(const UpdateRelay&) = delete;
  UpdateRelay& operator=(const UpdateRelay&) = delete;

  // UpdateApplier: applies `update` to the live model and, when it
  // applies, passes it on. The live model's errors unchanged (and nothing
  // passed on) when it does not apply.
  absl::Status Apply(const Update& update) override;

  // UpdateFeed: what a subscriber holding (`have_run`, `have_version`,
  // `have_fingerprint`) misses. UNAVAILABLE once closed.
  absl::Status Next(uint64_t have_run, uint64_t have_version, uint64_t have_fingerprint,
                    absl::Duration timeout,
                    std::vector<std::shared_ptr<const Update>>* out) override;

  // UpdateFeed: listeners run after every update that applies, and after
  // Close().
  uint64_t AddListener(std::function<void()> listener) override;
  void RemoveListener(uint64_t handle) override;

  // Ends every subscription below, now and later.
  void Close();

  // Updates retained now.
  size_t retained() const { return retention_->retained(); }

 private:
  explicit UpdateRelay(LiveModel* live) : live_(live) {}

  // A snapshot at `head`, under the retention's lock.
  std::shared_ptr<const Update> Snapshot(const UpdateRetention::Head& head) const;

  // Constant after construction (retention_ is set once by Create()).
  LiveModel* const live_;
  std::unique_ptr<UpdateRetention> retention_;

  // Written by Apply() inside the retention's Reset()/Advance() and read by
  // Snapshot(): both run under the retention's lock, which protects them.
  // The snapshot received from upstream, passed on while the relay is at
  // its version; null after a restore.
  std::shared_ptr<const Update> upstream_snapshot_;
  // Update.publish_time_us of what made the live model's version.
  uint64_t head_publish_time_us_ = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_UPDATE_RELAY_H_
