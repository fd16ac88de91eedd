#include "server/live_model.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_spec.h"
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
  if (options.max_spare_versions < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_spare_versions (--max_spare_versions) must be >= 1, got ",
        options.max_spare_versions));
  }
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
  // Dropped here, outside the lock: the last reference to a version from
  // an older run frees a whole model.
}

absl::Status LiveModel::Apply(const Update& update) {
  return ApplyAt(absl::MakeConstSpan(&update, 1), options_.clock->Now());
}

absl::Status LiveModel::ApplyBatch(absl::Span<const Update> updates) {
  if (updates.empty()) return absl::InvalidArgumentError("an empty batch of updates");
  for (const Update& update : updates) {
    if (update.snapshot()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot ", update.version(), " in a batch of updates: apply it alone"));
    }
  }
  return ApplyAt(updates, options_.clock->Now());
}

absl::Status LiveModel::Restore(const Update& snapshot, absl::Time applied_at) {
  if (!snapshot.snapshot()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "only a snapshot can be restored; version ", snapshot.version(), " is an update"));
  }
  return ApplyAt(absl::MakeConstSpan(&snapshot, 1), applied_at);
}

absl::Status LiveModel::ApplyAt(absl::Span<const Update> updates, absl::Time applied_at) {
  std::shared_ptr<Version> current;
  {
    absl::MutexLock lock(&mu_);
    current = current_;
  }
  if (updates.size() == 1 && updates[0].snapshot()) {
    absl::StatusOr<std::shared_ptr<Version>> next = ApplySnapshot(updates[0]);
    if (!next.ok()) return next.status();
    (*next)->applied_at = applied_at;
    // What was held belongs to another state of the model: neither the
    // spares nor the deltas lead to the snapshot.
    spares_.clear();
    history_.clear();
    history_values_ = 0;
    model_values_ = ModelSize((*next)->model->spec());
    current.reset();
    Publish(*std::move(next));
    return absl::OkStatus();
  }

  std::vector<Delta> deltas;
  if (absl::Status chained = DecodeChain(current.get(), updates, &deltas); !chained.ok()) {
    return chained;
  }
  absl::StatusOr<std::shared_ptr<Version>> next = Writable(*current);
  if (!next.ok()) return next.status();
  const TensorViews views = (*next)->model->Views();
  for (const Delta& delta : deltas) ApplyDecoded(delta.decoded, views);
  // A copy that fails its checksum holds no known version: it is dropped.
  absl::StatusOr<std::shared_ptr<Version>> stamped = Stamp(*std::move(next), updates.back());
  if (!stamped.ok()) return stamped.status();
  (*stamped)->applied_at = applied_at;
  Publish(*stamped);
  Retire(std::move(current), std::move(deltas));
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

absl::Status LiveModel::DecodeChain(const Version* current,
                                    absl::Span<const Update> updates,
                                    std::vector<Delta>* deltas) {
  if (current == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "update ", updates[0].version(), " arrived before any snapshot"));
  }
  uint64_t held = current->version;
  for (const Update& update : updates) {
    if (update.run() != current->run || update.base_version() != held) {
      return absl::FailedPreconditionError(absl::StrCat(
          "update ", update.version(), " applies on top of version ",
          update.base_version(), ", this server holds version ", held,
          update.run() != current->run ? " of another trainer run" : ""));
    }
    if (update.version() != update.base_version() + 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update ", update.version(), " claims base version ", update.base_version(),
          "; an update moves one version forward"));
    }
    // Decode (and so validate) before touching any model.
    absl::StatusOr<std::vector<DecodedTensor>> decoded =
        DecodeUpdate(update, current->model->spec());
    if (!decoded.ok()) return decoded.status();
    Delta delta;
    delta.version = update.version();
    delta.decoded = *std::move(decoded);
    for (const DecodedTensor& tensor : delta.decoded) {
      delta.values += static_cast<int64_t>(tensor.values.size());
    }
    deltas->push_back(std::move(delta));
    held = update.version();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<LiveModel::Version>> LiveModel::Writable(
    const Version& current) {
  // The first version history_ can bring up to current.
  const uint64_t oldest_reachable =
      history_.empty() ? current.version : history_.front().version - 1;
  auto free = [](const std::shared_ptr<Version>& spare) {
    // use_count() is a relaxed load: the acquire fence after a spare is
    // chosen orders the last reader's reads of its model (released when
    // it dropped its reference) before the writes that follow.
    return spare.use_count() == 1;
  };
  int chosen = -1;
  bool reachable = false;
  for (int i = static_cast<int>(spares_.size()) - 1; i >= 0; --i) {
    const Version& spare = *spares_[i];
    if (!free(spares_[i])) continue;
    const bool replayable = spare.run == current.run && spare.version <= current.version &&
                            spare.version >= oldest_reachable;
    if (chosen < 0 || (replayable && !reachable)) {
      chosen = i;
      reachable = replayable;
    }
    if (reachable) break;
  }
  if (chosen >= 0) {
    std::atomic_thread_fence(std::memory_order_acquire);
    std::shared_ptr<Version> next = std::move(spares_[chosen]);
    spares_.erase(spares_.begin() + chosen);
    if (reachable) {
      const TensorViews views = next->model->Views();
      for (const Delta& delta : history_) {
        if (delta.version > next->version) ApplyDecoded(delta.decoded, views);
      }
    } else {
      const absl::Status copied = next->model->CopyFrom(*current.model);
      if (!copied.ok()) return copied;
    }
    return next;
  }
  // Every retired version is still read: build another copy (the pool
  // keeps it afterwards, up to max_spare_versions).
  absl::StatusOr<std::unique_ptr<Model>> model = Model::CreateLike(*current.model, /*seed=*/0);
  if (!model.ok()) return model.status();
  auto next = std::make_shared<Version>();
  next->model = *std::move(model);
  next->model->SetTraining(false);
  const absl::Status copied = next->model->CopyFrom(*current.model);
  if (!copied.ok()) return copied;
  ++copies_built_;
  return next;
}

void LiveModel::Retire(std::shared_ptr<Version> previous, std::vector<Delta> deltas) {
  for (Delta& delta : deltas) {
    history_values_ += delta.values;
    history_.push_back(std::move(delta));
  }
  // Replaying more entries than the model holds costs more than copying
  // it; and no spare lags further than the pool is deep.
  const size_t max_deltas = 4 * static_cast<size_t>(options_.max_spare_versions) + 4;
  while (!history_.empty() &&
         (history_values_ > model_values_ || history_.size() > max_deltas)) {
    history_values_ -= history_.front().values;
    history_.pop_front();
  }
  if (previous != nullptr) spares_.push_back(std::move(previous));
  while (static_cast<int>(spares_.size()) > options_.max_spare_versions) {
    spares_.erase(spares_.begin());
  }
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
