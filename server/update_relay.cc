#include "server/update_relay.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model.h"
#include "common/status_macros.h"

namespace contrail {
namespace {

UpdateRetention::Head HeadOf(const Update& update) {
  UpdateRetention::Head head;
  head.run = update.run();
  head.fingerprint = update.fingerprint();
  head.version = update.version();
  head.checksum = update.model_checksum();
  return head;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpdateRelay>> UpdateRelay::Create(const Options& options,
                                                                  LiveModel* live) {
  if (live == nullptr) return absl::InvalidArgumentError("live model must not be null");
  if (options.max_retained_updates < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "relay_retain must be >= 1 (updates a relay keeps), got ",
        options.max_retained_updates));
  }
  if (options.max_retained_bytes < 1) {
    return absl::InvalidArgumentError("max_retained_bytes must be >= 1");
  }
  auto relay = std::unique_ptr<UpdateRelay>(new UpdateRelay(live));
  UpdateRetention::Options retention;
  retention.max_updates = options.max_retained_updates;
  retention.max_bytes = options.max_retained_bytes;
  retention.owner = "this relay";
  CONTRAIL_ASSIGN_OR_RETURN(
      relay->retention_,
      UpdateRetention::Create(retention, [r = relay.get()](const UpdateRetention::Head& head) {
        return r->Snapshot(head);
      }));
  if (const std::shared_ptr<const LiveModel::Version> held = live->Current()) {
    UpdateRetention::Head head;
    head.run = held->run;
    head.fingerprint = held->model->spec().fingerprint();
    head.version = held->version;
    head.checksum = held->checksum;
    CONTRAIL_RETURN_IF_ERROR(relay->retention_->Reset(head, [] { return absl::OkStatus(); }));
  }
  return relay;
}

absl::Status UpdateRelay::Apply(const Update& update) {
  if (update.snapshot()) {
    return retention_->Reset(HeadOf(update), [&] {
      CONTRAIL_RETURN_IF_ERROR(live_->Apply(update));
      upstream_snapshot_ = std::make_shared<const Update>(update);
      head_publish_time_us_ = update.publish_time_us();
      return absl::OkStatus();
    });
  }
  return retention_->Advance(std::make_shared<Update>(update), [&](Update*) {
    CONTRAIL_RETURN_IF_ERROR(live_->Apply(update));
    upstream_snapshot_.reset();
    head_publish_time_us_ = update.publish_time_us();
    return absl::OkStatus();
  });
}

std::shared_ptr<const Update> UpdateRelay::Snapshot(const UpdateRetention::Head& head) const {
  if (upstream_snapshot_ != nullptr && upstream_snapshot_->version() == head.version &&
      upstream_snapshot_->run() == head.run) {
    return upstream_snapshot_;
  }
  const std::shared_ptr<const LiveModel::Version> held = live_->Current();
  // Every change of the live model runs under the retention's lock, so it
  // holds the head's version; anything else is a bug, answered INTERNAL.
  if (held == nullptr || held->version != head.version || held->run != head.run) {
    return nullptr;
  }
  const Model& model = *held->model;
  return MakeSnapshot(model.spec(), model.torchscript_module(), held->run, held->version,
                      held->checksum, head_publish_time_us_, model.Views());
}

absl::Status UpdateRelay::Next(uint64_t have_run, uint64_t have_version,
                               uint64_t have_fingerprint, absl::Duration timeout,
                               std::vector<std::shared_ptr<const Update>>* out) {
  return retention_->Next(have_run, have_version, have_fingerprint, timeout, out);
}

void UpdateRelay::Close() { retention_->Close(); }

uint64_t UpdateRelay::AddListener(std::function<void()> listener) {
  return retention_->AddListener(std::move(listener));
}

void UpdateRelay::RemoveListener(uint64_t handle) { retention_->RemoveListener(handle); }

}  // namespace contrail
