#include "server/live_model.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/update_codec.h"

namespace contrail {
namespace {

// The trainer sends the checksum of its mirror with every update and
// snapshot: a replica that computes another one is not bit-identical and
// must not serve it. No value means "unchecked".
absl::Status VerifyModelChecksum(const Update& update, uint64_t checksum) {
  if (update.model_checksum() == checksum) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "after applying version ", update.version(), " the model checksum is ",
      absl::Hex(checksum, absl::kZeroPad16), ", the trainer's is ",
      absl::Hex(update.model_checksum(), absl::kZeroPad16)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LiveModel>> LiveModel::Create(const Options& options) {
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch must be >= 1, got ", options.max_batch));
  }
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock must not be null");
  return std::unique_ptr<LiveModel>(new LiveModel(options));
}

absl::StatusOr<std::shared_ptr<LiveModel::Version>> LiveModel::Stamp(
    std::shared_ptr<Version> next, const Update& update) {
  next->version = update.version();
  next->run = update.run();
  next->checksum = next->model->Checksum();
  const absl::Status verified = VerifyModelChecksum(update, next->checksum);
  if (!verified.ok()) return verified;
  return next;
}

std::shared_ptr<const LiveModel::Version> LiveModel::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Duration LiveModel::SinceLastUpdate() const {
  const std::shared_ptr<const Version> current = Current();
  if (current == nullptr) return absl::ZeroDuration();
  return options_.clock->Now() - current->applied_at;
}

void LiveModel::Publish(std::shared_ptr<Version> next) {
  std::shared_ptr<Version> previous;
  {
    absl::MutexLock lock(&mu_);
    previous = std::move(current_);
    current_ = std::move(next);
  }
  spare_ = std::move(previous);
}

absl::Status LiveModel::Apply(const Update& update) {
  return ApplyAt(update, options_.clock->Now());
}

absl::Status LiveModel::Restore(const Update& snapshot, absl::Time applied_at) {
  if (!snapshot.snapshot()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "only a snapshot can be restored; version ", snapshot.version(), " is an update"));
  }
  return ApplyAt(snapshot, applied_at);
}

absl::Status LiveModel::ApplyAt(const Update& update, absl::Time applied_at) {
  std::shared_ptr<Version> current;
  {
    absl::MutexLock lock(&mu_);
    current = current_;
  }
  absl::StatusOr<std::shared_ptr<Version>> next =
      update.snapshot() ? ApplySnapshot(update) : ApplyDelta(current, update);
  if (!next.ok()) return next.status();
  (*next)->applied_at = applied_at;
  current.reset();
  Publish(*std::move(next));
  spare_missed_ = update.snapshot() ? nullptr : std::make_shared<Update>(update);
  if (update.snapshot()) spare_.reset();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LiveModel::Version>> LiveModel::ApplySnapshot(
    const Update& update) {
  if (update.spec().fingerprint() != update.fingerprint()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot ", update.version(), " carries a spec whose fingerprint ",
        absl::Hex(update.spec().fingerprint()), " differs from its own ",
        absl::Hex(update.fingerprint())));
  }
  // The model as the trainer described it: architecture, input shape and
  // class count from the spec, a TorchScript module from the snapshot.
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::CreateFromSpec(update.spec(), update.torchscript_module());
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("snapshot ", update.version(), ": ",
                                     model.status().message()));
  }
  auto next = std::make_shared<Version>();
  next->model = *std::move(model);
  next->model->SetTraining(false);
  const absl::Status applied =
      ApplyUpdate(update, next->model->spec(), next->model->Views());
  if (!applied.ok()) return applied;
  return Stamp(std::move(next), update);
}

absl::StatusOr<std::shared_ptr<LiveModel::Version>> LiveModel::ApplyDelta(
    const std::shared_ptr<Version>& current, const Update& update) {
  if (current == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "update ", update.version(), " arrived before any snapshot"));
  }
  if (update.run() != current->run || update.base_version() != current->version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "update ", update.version(), " applies on top of version ",
        update.base_version(), ", this server holds version ", current->version,
        update.run() != current->run ? " of another trainer run" : ""));
  }
  if (update.version() != update.base_version() + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "update ", update.version(), " claims base version ", update.base_version(),
        "; an update moves one version forward"));
  }
  const ModelSpec& spec = current->model->spec();
  // Decode (and so validate) before touching any model.
  absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(update, spec);
  if (!decoded.ok()) return decoded.status();

  std::shared_ptr<Version> next;
  if (spare_ != nullptr && spare_.use_count() == 1 && spare_missed_ != nullptr &&
      spare_missed_->version() == current->version) {
    // No prediction holds the previous version any more: bring it up to
    // the current version, then apply the new update on top.
    // use_count() is a relaxed load: this fence orders the last reader's
    // reads of the model (released when it dropped its reference) before
    // the writes below.
    std::atomic_thread_fence(std::memory_order_acquire);
    next = std::move(spare_);
    const absl::Status caught_up = ApplyUpdate(*spare_missed_, spec, next->model->Views());
    if (!caught_up.ok()) return caught_up;
  } else {
    absl::StatusOr<std::unique_ptr<Model>> model =
        Model::CreateLike(*current->model, /*seed=*/0);
    if (!model.ok()) return model.status();
    next = std::make_shared<Version>();
    next->model = *std::move(model);
    next->model->SetTraining(false);
    const absl::Status copied = next->model->CopyFrom(*current->model);
    if (!copied.ok()) return copied;
  }
  spare_.reset();
  ApplyDecoded(*decoded, next->model->Views());
  return Stamp(std::move(next), update);
}

absl::StatusOr<LiveModel::Predictions> LiveModel::Predict(
    absl::Span<const int64_t> shape, absl::Span<const float> values) {
  std::shared_ptr<const Version> served = Current();
  if (served == nullptr) {
    return absl::UnavailableError(
        "this server holds no model yet: it is waiting for the trainer's snapshot");
  }
  if (!shape.empty() && shape[0] > options_.max_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch of ", shape[0], " examples exceeds the limit of ", options_.max_batch));
  }
  absl::StatusOr<Model::Predictions> predictions = served->model->Predict(shape, values);
  if (!predictions.ok()) return predictions.status();
  Predictions out;
  out.version = served->version;
  out.num_classes = predictions->num_classes;
  out.probabilities = std::move(predictions->probabilities);
  out.labels = std::move(predictions->labels);
  return out;
}

}  // namespace contrail
