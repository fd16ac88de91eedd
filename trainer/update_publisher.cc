#include "trainer/update_publisher.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/model_spec.h"
#include "common/sparse_selector.h"
#include "common/top_k.h"
#include "common/update_codec.h"

namespace contrail {
namespace {

// Bit-wise inequality: -0.0 differs from 0.0 and a NaN equals itself, so
// that "equal" means "same checksum".
inline bool BitsDiffer(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, sizeof(x));
  std::memcpy(&y, &b, sizeof(y));
  return x != y;
}

}  // namespace

double ResolveDeployRatio(double requested, const SparseSelector::Options& sparsity) {
  if (requested != 0) return requested;
  return sparsity.sparsity == Sparsity::kNone ? 1.0 : sparsity.ratio;
}

absl::StatusOr<std::unique_ptr<UpdatePublisher>> UpdatePublisher::Create(
    const ModelSpec& spec, TensorViews mirror, const Options& options) {
  if (static_cast<int>(mirror.size()) != spec.tensors_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the mirror has ", mirror.size(), " tensors, the spec of ", spec.architecture(),
        " ", spec.tensors_size()));
  }
  for (int i = 0; i < spec.tensors_size(); ++i) {
    if (static_cast<int64_t>(mirror[i].size()) != TensorSize(spec.tensors(i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mirror tensor ", i, " (", spec.tensors(i).name(), ") has ", mirror[i].size(),
          " entries, the spec says ", TensorSize(spec.tensors(i))));
    }
  }
  if (!(options.deploy_ratio > 0 && options.deploy_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("deploy_ratio must be in (0, 1], got ", options.deploy_ratio));
  }
  if (options.encoding != FP32_ASSIGN && !IsDeltaEncoding(options.encoding)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown value encoding ", static_cast<int>(options.encoding)));
  }
  auto publisher =
      std::unique_ptr<UpdatePublisher>(new UpdatePublisher(spec, std::move(mirror), options));
  UpdateRetention::Options retention;
  retention.max_updates = options.max_retained_updates;
  retention.max_bytes = options.max_retained_bytes;
  retention.owner = "the trainer";
  absl::StatusOr<std::unique_ptr<UpdateRetention>> created = UpdateRetention::Create(
      retention, [p = publisher.get()](const UpdateRetention::Head& head) { return p->Snapshot(head); });
  if (!created.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the publisher must retain at least one update: ", created.status().message()));
  }
  publisher->retention_ = *std::move(created);
  return publisher;
}

UpdatePublisher::UpdatePublisher(const ModelSpec& spec, TensorViews mirror,
                                 const Options& options)
    : spec_(spec),
      mirror_(std::move(mirror)),
      options_(options),
      run_(options.run != 0 ? options.run
                            : absl::Uniform<uint64_t>(absl::BitGen(), 1, UINT64_MAX)) {}

UpdateRetention::Head UpdatePublisher::HeadAt(uint64_t version, uint64_t checksum) const {
  UpdateRetention::Head head;
  head.run = run_;
  head.fingerprint = spec_.fingerprint();
  head.version = version;
  head.checksum = checksum;
  return head;
}

void UpdatePublisher::Start(const ConstTensorViews& trainer) {
  // The mirror becomes a bit-wise copy: its checksum is the trainer's.
  retention_
      ->Reset(HeadAt(1, ChecksumTensors(trainer)),
              [&] {
                for (size_t i = 0; i < mirror_.size(); ++i) {
                  std::memcpy(mirror_[i].data(), trainer[i].data(),
                              trainer[i].size() * sizeof(float));
                }
                return absl::OkStatus();
              })
      .IgnoreError();  // the copy cannot fail
}

absl::Status UpdatePublisher::Resume(uint64_t version, uint64_t checksum) {
  return retention_->Reset(HeadAt(version, checksum), [&] {
    const uint64_t actual = ChecksumTensors(AsConst(mirror_));
    if (version == 0 || actual != checksum) {
      return absl::DataLossError(absl::StrCat(
          "the checkpoint's mirror at version ", version, " has checksum ",
          absl::Hex(actual, absl::kZeroPad16), ", it says ",
          absl::Hex(checksum, absl::kZeroPad16)));
    }
    return absl::OkStatus();
  });
}

absl::Status UpdatePublisher::Replay(const Update& update) {
  const absl::Status replayed = retention_->Advance(
      std::make_shared<Update>(update), [&](Update* logged) {
        absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(*logged, spec_);
        if (!decoded.ok()) {
          return absl::DataLossError(absl::StrCat("logged update ", logged->version(), ": ",
                                                  decoded.status().message()));
        }
        // Decoded first, so a bad update leaves the mirror as it was; a
        // checksum mismatch after applying leaves it changed, and the
        // caller gives up.
        ApplyDecoded(*decoded, mirror_);
        const uint64_t checksum = ChecksumTensors(AsConst(mirror_));
        if (checksum != logged->model_checksum()) {
          return absl::DataLossError(absl::StrCat(
              "logged update ", logged->version(), " leaves the mirror with checksum ",
              absl::Hex(checksum, absl::kZeroPad16), ", it says ",
              absl::Hex(logged->model_checksum(), absl::kZeroPad16)));
        }
        return absl::OkStatus();
      });
  if (absl::IsFailedPrecondition(replayed)) {
    return absl::DataLossError(absl::StrCat("logged update ", update.version(), " (base ",
                                            update.base_version(),
                                            ") does not follow version ", version(),
                                            " of this run"));
  }
  return replayed;
}

absl::StatusOr<UpdatePublisher::PublishResult> UpdatePublisher::Publish(
    const ConstTensorViews& trainer) {
  const uint64_t base_version = version();
  if (base_version == 0) return absl::FailedPreconditionError("Publish() before Start()");
  // Only this thread writes the mirror, so reading it unlocked is safe.
  auto update = std::make_shared<Update>();
  update->set_version(base_version + 1);
  update->set_base_version(base_version);
  update->set_fingerprint(spec_.fingerprint());
  update->set_run(run_);
  update->set_encoding(options_.encoding);
  const bool delta = IsDeltaEncoding(options_.encoding);
  PublishResult result;
  SparseUpdateWriter writer(spec_, update.get());
  for (size_t t = 0; t < mirror_.size(); ++t) {
    const absl::Span<const float> now = trainer[t];
    const absl::Span<const float> held = mirror_[t];
    changed_.clear();
    values_.clear();
    // One pass finds trainer - mirror. Exact updates assign the new value
    // wherever the bits differ; delta updates send the difference wherever
    // the values differ (a delta cannot turn 0.0 into -0.0).
    for (size_t i = 0; i < now.size(); ++i) {
      const bool differs = delta ? now[i] != held[i] && std::isfinite(now[i] - held[i])
                                 : BitsDiffer(now[i], held[i]);
      if (differs) {
        changed_.push_back(static_cast<uint32_t>(i));
        values_.push_back(delta ? now[i] - held[i] : now[i]);
      }
    }
    if (changed_.empty()) continue;
    // Buffers (batch-norm statistics) change densely at every training
    // forward pass and are a small part of a model: they go out whole, or
    // the served model's statistics would lag its weights.
    const int64_t budget = options_.deploy_ratio >= 1 || spec_.tensors(t).is_buffer()
                               ? static_cast<int64_t>(now.size())
                               : KeepCount(static_cast<int64_t>(now.size()),
                                           options_.deploy_ratio);
    if (static_cast<int64_t>(changed_.size()) > budget) {
      // Send the largest differences; the rest stay in trainer - mirror.
      magnitudes_.resize(changed_.size());
      for (size_t j = 0; j < changed_.size(); ++j) {
        magnitudes_[j] = delta ? values_[j] : now[changed_[j]] - held[changed_[j]];
      }
      SelectTopK(magnitudes_, budget, &picked_);
      for (size_t j = 0; j < picked_.size(); ++j) {
        changed_[j] = changed_[picked_[j]];
        values_[j] = values_[picked_[j]];
      }
      changed_.resize(picked_.size());
      values_.resize(picked_.size());
      result.remaining_entries += static_cast<int64_t>(magnitudes_.size() - picked_.size());
    }
    const int64_t sent = writer.Append(static_cast<uint32_t>(t), changed_, values_);
    result.entries += sent;
    result.remaining_entries += static_cast<int64_t>(changed_.size()) - sent;
  }
  if (result.entries == 0) return result;
  writer.Finish();
  update->set_publish_time_us(absl::ToUnixMicros(absl::Now()));
  SealUpdate(update.get());
  // The mirror takes the update through the decoder, as a server does.
  absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(*update, spec_);
  if (!decoded.ok()) {
    return absl::InternalError(absl::StrCat("the mirror rejected update ",
                                            update->version(), ": ",
                                            decoded.status().message()));
  }

  const absl::Status advanced = retention_->Advance(update, [&](Update* sealed) {
    ApplyDecoded(*decoded, mirror_);
    if (delta) {
      // Rounded differences leave a remainder where they landed.
      for (const DecodedTensor& t : *decoded) {
        for (uint32_t i : t.indices) {
          result.remaining_entries += trainer[t.tensor][i] != mirror_[t.tensor][i];
        }
      }
    }
    sealed->set_model_checksum(ChecksumTensors(AsConst(mirror_)));
    if (options_.sink == nullptr) return absl::OkStatus();
    // Durable before anyone can see it.
    const absl::Status logged = options_.sink->Append(*sealed);
    if (logged.ok()) return absl::OkStatus();
    return absl::Status(logged.code(), absl::StrCat("update ", sealed->version(),
                                                    " could not be logged: ",
                                                    logged.message()));
  });
  if (!advanced.ok()) {
    // The mirror is ahead of the published version and must never be
    // served: close.
    retention_->Close();
    return advanced;
  }
  result.published = true;
  result.version = update->version();
  result.payload_bytes = static_cast<int64_t>(update->ByteSizeLong());
  return result;
}

std::shared_ptr<const Update> UpdatePublisher::Snapshot(
    const UpdateRetention::Head& head) const {
  return MakeSnapshot(spec_, options_.torchscript_module, run_, head.version, head.checksum,
                      absl::ToUnixMicros(absl::Now()), AsConst(mirror_));
}

absl::Status UpdatePublisher::Next(uint64_t have_run, uint64_t have_version,
                                   uint64_t have_fingerprint, absl::Duration timeout,
                                   std::vector<std::shared_ptr<const Update>>* out) {
  return retention_->Next(have_run, have_version, have_fingerprint, timeout, out);
}

void UpdatePublisher::Close() { retention_->Close(); }

uint64_t UpdatePublisher::AddListener(std::function<void()> listener) {
  return retention_->AddListener(std::move(listener));
}

void UpdatePublisher::RemoveListener(uint64_t handle) { retention_->RemoveListener(handle); }

uint64_t UpdatePublisher::version() const { return retention_->head().version; }

uint64_t UpdatePublisher::mirror_checksum() const { return retention_->head().checksum; }

}  // namespace contrail
