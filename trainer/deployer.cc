#include "trainer/deployer.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {

void Deployer::Start(const ConstTensorViews& trainer) {
  publisher_->Start(trainer);
  counters_.version = publisher_->version();
}

absl::StatusOr<bool> Deployer::Publish(const ConstTensorViews& trainer) {
  absl::StatusOr<UpdatePublisher::PublishResult> published = publisher_->Publish(trainer);
  if (!published.ok()) {
    return absl::Status(published.status().code(),
                        absl::StrCat("publishing failed: ", published.status().message()));
  }
  held_back_entries_ = published->remaining_entries;
  if (!published->published) return false;
  counters_.version = published->version;
  counters_.entries += published->entries;
  counters_.payload_bytes += published->payload_bytes;
  return true;
}

absl::Status Deployer::AfterStep(const ConstTensorViews& trainer) {
  stalled_ = false;
  if (++steps_ <= options_.warmup_steps) return absl::OkStatus();
  return Publish(trainer).status();
}

absl::Status Deployer::SendHeldBack(const ConstTensorViews& trainer) {
  if (!has_held_back()) return absl::OkStatus();
  CONTRAIL_ASSIGN_OR_RETURN(const bool published, Publish(trainer));
  // Every entry sent moves the mirror strictly closer to the trainer (the
  // codec drops differences that round to zero), so rounds end; a round
  // that sends nothing means the rest cannot be sent.
  if (!published) stalled_ = true;
  return absl::OkStatus();
}

absl::Status Deployer::Flush(const ConstTensorViews& trainer) {
  stalled_ = false;
  CONTRAIL_ASSIGN_OR_RETURN(bool published, Publish(trainer));
  int64_t rounds = 0;
  while (published && held_back_entries_ > 0) {
    CONTRAIL_ASSIGN_OR_RETURN(published, Publish(trainer));
    rounds += published;
  }
  if (rounds > 0) {
    spdlog::info("flushed in {} more updates; {} entries still differ", rounds,
                 held_back_entries_);
  }
  return absl::OkStatus();
}

void Deployer::SaveState(DeployerState* out) const {
  out->set_steps(steps_);
  out->set_held_back_entries(held_back_entries_);
  out->set_stalled(stalled_);
  out->set_version(counters_.version);
  out->set_entries(counters_.entries);
  out->set_payload_bytes(counters_.payload_bytes);
}

void Deployer::RestoreState(const DeployerState& state) {
  steps_ = state.steps();
  held_back_entries_ = state.held_back_entries();
  stalled_ = state.stalled();
  counters_.version = state.version();
  counters_.entries = state.entries();
  counters_.payload_bytes = state.payload_bytes();
}

}  // namespace contrail
