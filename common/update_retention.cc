#include "common/update_retention.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/update_codec.h"

namespace contrail {

std::shared_ptr<Update> MakeSnapshot(const ModelSpec& spec, const std::string& torchscript_module,
                                     uint64_t run, uint64_t version, uint64_t checksum,
                                     uint64_t publish_time_us,
                                     const ConstTensorViews& tensors) {
  auto snapshot = std::make_shared<Update>();
  snapshot->set_version(version);
  snapshot->set_base_version(0);
  snapshot->set_snapshot(true);
  snapshot->set_fingerprint(spec.fingerprint());
  snapshot->set_run(run);
  snapshot->set_encoding(FP32_ASSIGN);
  *snapshot->mutable_spec() = spec;
  snapshot->set_torchscript_module(torchscript_module);
  snapshot->set_publish_time_us(publish_time_us);
  for (size_t t = 0; t < tensors.size(); ++t) {
    AppendDenseTensor(static_cast<uint32_t>(t), tensors[t], snapshot.get());
  }
  SealUpdate(snapshot.get());
  snapshot->set_model_checksum(checksum);
  return snapshot;
}

absl::StatusOr<std::unique_ptr<UpdateRetention>> UpdateRetention::Create(
    const Options& options, SnapshotFn snapshot) {
  if (options.max_updates < 1) {
    return absl::InvalidArgumentError("max_updates must be >= 1: at least one update is kept");
  }
  if (options.max_bytes < 1) {
    return absl::InvalidArgumentError("max_bytes must be >= 1");
  }
  if (!snapshot) return absl::InvalidArgumentError("snapshot function must be set");
  return std::unique_ptr<UpdateRetention>(new UpdateRetention(options, std::move(snapshot)));
}

absl::Status UpdateRetention::Reset(const Head& head,
                                    absl::FunctionRef<absl::Status()> change) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status changed = change(); !changed.ok()) return changed;
    head_ = head;
    retained_.clear();
    retained_bytes_ = 0;
    snapshot_.reset();
  }
  NotifyListeners();
  return absl::OkStatus();
}

absl::Status UpdateRetention::Advance(std::shared_ptr<Update> update,
                                      absl::FunctionRef<absl::Status(Update*)> apply) {
  {
    absl::MutexLock lock(&mu_);
    if (update->snapshot() || update->run() != head_.run ||
        update->base_version() != head_.version || update->version() != head_.version + 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          update->snapshot() ? "snapshot " : "update ", update->version(), " (base ",
          update->base_version(), ") does not follow version ", head_.version,
          update->run() != head_.run ? " of another run" : ""));
    }
    if (absl::Status applied = apply(update.get()); !applied.ok()) return applied;
    head_.version = update->version();
    head_.checksum = update->model_checksum();
    snapshot_.reset();
    RetainLocked(std::move(update));
  }
  NotifyListeners();
  return absl::OkStatus();
}

void UpdateRetention::RetainLocked(std::shared_ptr<const Update> update) {
  retained_bytes_ += update->ByteSizeLong();
  retained_.push_back(std::move(update));
  while (retained_.size() > options_.max_updates ||
         (retained_bytes_ > options_.max_bytes && retained_.size() > 1)) {
    retained_bytes_ -= retained_.front()->ByteSizeLong();
    retained_.pop_front();
  }
}

std::shared_ptr<const Update> UpdateRetention::SnapshotLocked() {
  if (snapshot_ == nullptr || snapshot_->version() != head_.version) {
    snapshot_ = snapshot_fn_(head_);
  }
  return snapshot_;
}

absl::Status UpdateRetention::Next(uint64_t have_run, uint64_t have_version,
                                   uint64_t have_fingerprint, absl::Duration timeout,
                                   std::vector<std::shared_ptr<const Update>>* out) {
  out->clear();
  absl::MutexLock lock(&mu_);
  auto same_model = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return have_run == head_.run && have_fingerprint == head_.fingerprint;
  };
  // A subscriber of this run ahead of the head waits for it: a snapshot
  // would take its version backwards.
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || (head_.version > 0 && (!same_model() || have_version < head_.version));
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closed_) return absl::UnavailableError(absl::StrCat(options_.owner, " is shutting down"));
  if (!ready()) return absl::OkStatus();
  const uint64_t oldest_base =
      retained_.empty() ? head_.version : retained_.front()->base_version();
  if (same_model() && have_version >= oldest_base) {
    for (const auto& update : retained_) {
      if (update->version() > have_version) out->push_back(update);
    }
    return absl::OkStatus();
  }
  std::shared_ptr<const Update> snapshot = SnapshotLocked();
  if (snapshot == nullptr) {
    return absl::InternalError(absl::StrCat(options_.owner, " could not snapshot version ",
                                            head_.version));
  }
  out->push_back(std::move(snapshot));
  return absl::OkStatus();
}

void UpdateRetention::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  NotifyListeners();
}

uint64_t UpdateRetention::AddListener(std::function<void()> listener) {
  absl::MutexLock lock(&listeners_mu_);
  const uint64_t handle = next_listener_++;
  listeners_.emplace(handle, std::move(listener));
  return handle;
}

void UpdateRetention::RemoveListener(uint64_t handle) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(handle);
}

void UpdateRetention::NotifyListeners() {
  absl::MutexLock lock(&listeners_mu_);
  for (const auto& [handle, listener] : listeners_) listener();
}

UpdateRetention::Head UpdateRetention::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

size_t UpdateRetention::retained() const {
  absl::MutexLock lock(&mu_);
  return retained_.size();
}

}  // namespace contrail
