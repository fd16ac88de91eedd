// The trainer's side of deployment: keeps the mirror (the model exactly as
// every up-to-date server holds it), turns trainer - mirror into versioned
// updates, and hands each subscriber what it misses.
//
// Each update is encoded from the entries where the trainer's tensors differ
// bit-wise from the mirror's, then applied to the mirror with ApplyUpdate,
// the code a server runs, so mirror and servers stay bit-identical. The
// latest updates are retained (common/update_retention.h, which a relaying
// server shares); a subscriber whose version is older than the retained
// window, or who holds no model or another model, gets a snapshot of the
// mirror instead.
//
// Lifecycle: construct, Start() once (version 1), Publish() after every
// training step, Close() at shutdown to end every subscription.
// Thread-safety: Start() and Publish() are called by one thread at a time,
// the only writer of the mirror: the training thread, or the publishing
// thread it hands an update to (trainer/publishing_thread.h) until it has
// waited for it; Next(), the listeners and the accessors are thread-safe
// (Next() is called by the UpdateService, listeners run on the thread that
// published, after the change).
#ifndef CONTRAIL_TRAINER_UPDATE_PUBLISHER_H_
#define CONTRAIL_TRAINER_UPDATE_PUBLISHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sparse_selector.h"
#include "common/tensor_views.h"
#include "common/update_feed.h"
#include "common/update_retention.h"
#include "proto/contrail.pb.h"

namespace contrail {

// The deploy budget for a requested --deploy_ratio: 0 means automatic, the
// trainer's own ratio when its steps are sparse (each step changes at most
// that many entries per tensor, so every change goes out), else 1.
double ResolveDeployRatio(double requested, const SparseSelector::Options& sparsity);

// Where published updates go before any subscriber sees them: the
// trainer's update log (trainer/update_log.h), so that a restarted trainer
// can serve them again.
class UpdateSink {
 public:
  virtual ~UpdateSink() = default;
  // Durable once it returns OK.
  virtual absl::Status Append(const Update& update) = 0;
};

class UpdatePublisher final : public UpdateFeed {
 public:
  struct Options {
    // How many of the latest updates are kept for subscribers that fall
    // behind or reconnect; older subscribers get a snapshot.
    size_t max_retained_updates = 4096;
    // Cap on the retained updates' encoded size.
    size_t max_retained_bytes = size_t{256} << 20;
    // How values travel: FP32_ASSIGN (exact), FP16_DELTA or BF16_DELTA
    // (2 bytes per value; the rounding error is sent later).
    ValueEncoding encoding = FP32_ASSIGN;
    // Largest fraction of each parameter tensor sent per update (at least
    // one entry): the largest differences go first, the rest stay in
    // trainer - mirror for later updates. 1 sends every difference.
    // Buffers always go out whole.
    double deploy_ratio = 1.0;
    // The TorchScript module file of a "torchscript:" model, sent with
    // every snapshot; empty for built-in architectures.
    std::string torchscript_module;
    // The run id; 0 draws a random one. A restarted trainer continues its
    // checkpoint's run.
    uint64_t run = 0;
    // Each update is appended here before subscribers can see it; a failed
    // append fails Publish() and closes the publisher. Null: none. Must
    // outlive the publisher.
    UpdateSink* sink = nullptr;
  };

  struct PublishResult {
    bool published = false;  // false when trainer equals mirror
    uint64_t version = 0;
    int64_t entries = 0;        // (index, value) pairs in the update
    int64_t payload_bytes = 0;  // encoded size of the update message
    // Entries where trainer and mirror still differ after this update
    // (over the budget, or rounded away by a lossy encoding).
    int64_t remaining_entries = 0;
  };

  // `mirror` must outlive the publisher; only the publisher writes to it
  // after creation. INVALID_ARGUMENT, before anything is copied, when the
  // mirror's tensors do not have the sizes `spec` gives them, or an option
  // is out of range.
  // Each publisher draws a random run id: versions of different trainer
  // processes are unrelated, so a subscriber from another run gets a
  // snapshot even when its version number matches.
  static absl::StatusOr<std::unique_ptr<UpdatePublisher>> Create(const ModelSpec& spec,
                                                                 TensorViews mirror,
                                                                 const Options& options);
  UpdatePublisher(const UpdatePublisher&) = delete;
  UpdatePublisher& operator=(const UpdatePublisher&) = delete;

  // Copies `trainer` into the mirror and makes it version 1.
  void Start(const ConstTensorViews& trainer);

  // A restarted trainer: the mirror already holds its checkpoint's
  // contents, which become `version`. DATA_LOSS unless they have
  // `checksum`.
  absl::Status Resume(uint64_t version, uint64_t checksum);
  // Then each update logged after the checkpoint, in order: applied to the
  // mirror and retained for subscribers, as when it was first published
  // (it is not appended to the sink again). DATA_LOSS when it does not
  // follow the current version, or the mirror's checksum after it differs
  // from the one it carries.
  absl::Status Replay(const Update& update);

  // Publishes the entries where `trainer` differs from the mirror (all of
  // them, or the largest within the deploy budget) as the next version.
  // FAILED_PRECONDITION before Start().
  absl::StatusOr<PublishResult> Publish(const ConstTensorViews& trainer);

  // UpdateFeed: the retained updates after `have_version`, or a snapshot
  // of the mirror at version(). UNAVAILABLE once closed.
  absl::Status Next(uint64_t have_run, uint64_t have_version,
                    uint64_t have_fingerprint,
                    absl::Duration timeout,
                    std::vector<std::shared_ptr<const Update>>* out) override;

  // UpdateFeed: listeners run after every Start(), Resume(), Replay() and
  // Publish() that changes the version, and after Close().
  uint64_t AddListener(std::function<void()> listener) override;
  void RemoveListener(uint64_t handle) override;

  // Ends every Next() with UNAVAILABLE, now and later.
  void Close();

  uint64_t version() const;
  // Checksum of the mirror at version().
  uint64_t mirror_checksum() const;
  const ModelSpec& spec() const { return spec_; }
  uint64_t run() const { return run_; }
  // The mirror's contents at version(), for the training thread (its only
  // writer, through this publisher) between Publish() calls.
  ConstTensorViews mirror() const { return AsConst(mirror_); }

 private:
  UpdatePublisher(const ModelSpec& spec, TensorViews mirror, const Options& options);

  // The head of a new start of the mirror at `version`.
  UpdateRetention::Head HeadAt(uint64_t version, uint64_t checksum) const;
  // A snapshot of the mirror at `head`; runs under the retention's lock.
  std::shared_ptr<const Update> Snapshot(const UpdateRetention::Head& head) const;

  // Constant after construction.
  const ModelSpec spec_;
  const TensorViews mirror_;
  const Options options_;
  const uint64_t run_;
  // The version, checksum and retained updates of the mirror; its lock
  // keeps snapshots from reading the mirror while it changes (every write
  // to the mirror runs inside Reset() or Advance()). Set once by Create().
  std::unique_ptr<UpdateRetention> retention_;

  // Scratch for Publish(); training thread only.
  std::vector<uint32_t> changed_;
  std::vector<float> values_;
  std::vector<float> magnitudes_;
  std::vector<uint32_t> picked_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_UPDATE_PUBLISHER_H_
