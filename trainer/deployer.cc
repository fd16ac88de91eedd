#include "trainer/deployer.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

std::vector<std::vector<float>> Copy(const ConstTensorViews& views) {
  std::vector<std::vector<float>> copy;
  copy.reserve(views.size());
  for (absl::Span<const float> t : views) copy.emplace_back(t.begin(), t.end());
  return copy;
}

ConstTensorViews View(const std::vector<std::vector<float>>& tensors) {
  ConstTensorViews views;
  views.reserve(tensors.size());
  for (const std::vector<float>& t : tensors) views.push_back(absl::MakeConstSpan(t));
  return views;
}

}  // namespace

absl::Status Deployer::CheckOptions(const Options& options) {
  return QualityGuard::Create(options.guard).status();
}

Deployer::Deployer(const Options& options, UpdatePublisher* publisher)
    : options_(options),
      publisher_(publisher),
      // CheckOptions() passed: Create() cannot fail.
      guard_(*QualityGuard::Create(options.guard)),
      publishing_(options.overlap ? std::make_unique<PublishingThread>(publisher) : nullptr) {}

void Deployer::Start(const ConstTensorViews& trainer) {
  publisher_->Start(trainer);
  counters_.version = publisher_->version();
}

absl::StatusOr<bool> Deployer::Publish(const ConstTensorViews& trainer) {
  return TakeResult(publisher_->Publish(trainer));
}

absl::StatusOr<bool> Deployer::TakeResult(
    absl::StatusOr<UpdatePublisher::PublishResult> published) {
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

absl::Status Deployer::Drain() {
  if (!in_flight_) return absl::OkStatus();
  in_flight_ = false;
  std::optional<PublishingThread::Result> result = publishing_->Wait();
  if (!result.has_value()) return absl::InternalError("no update was in flight");
  last_publish_time_ = result->publish_time;
  return TakeResult(std::move(result->published)).status();
}

absl::Status Deployer::AfterStep(const ConstTensorViews& trainer) {
  // The update before this one is published first: one at a time, in order.
  CONTRAIL_RETURN_IF_ERROR(Drain());
  stalled_ = false;
  if (++steps_ <= options_.warmup_steps || holding()) return absl::OkStatus();
  if (publishing_ == nullptr) return Publish(trainer).status();
  CONTRAIL_RETURN_IF_ERROR(publishing_->Submit(trainer));
  in_flight_ = true;
  return absl::OkStatus();
}

absl::Status Deployer::Observe(int64_t count, int64_t trainer_correct,
                               int64_t served_correct) {
  // The guard's verdict reads the mirror and may publish a rollback.
  CONTRAIL_RETURN_IF_ERROR(Drain());
  const bool was_holding = holding();
  const QualityGuard::Verdict verdict = guard_.Observe(count, trainer_correct, served_correct);
  if (!was_holding && holding()) {
    spdlog::warn("guard: holding deployment at version {}: trainer {:.2f} < served best {:.2f} - "
                 "{:.2f}",
                 counters_.version, guard_.trainer_accuracy(), guard_.best_served_accuracy(),
                 options_.guard.drop);
  } else if (was_holding && !holding()) {
    spdlog::info("guard: resuming deployment at version {}: trainer {:.2f} >= served best {:.2f} "
                 "- {:.2f}",
                 counters_.version, guard_.trainer_accuracy(), guard_.best_served_accuracy(),
                 options_.guard.drop);
  }
  if (verdict.good) {
    // The candidate has stayed good a whole window since it was kept.
    if (candidate_version_ != 0) {
      good_ = std::move(candidate_);
      good_version_ = candidate_version_;
    }
    candidate_ = Copy(publisher_->mirror());
    candidate_version_ = publisher_->version();
  }
  if (verdict.roll_back) return RollBack();
  return absl::OkStatus();
}

absl::Status Deployer::RollBack() {
  if (good_version_ == 0) {
    spdlog::warn("guard: served accuracy {:.2f} < served best {:.2f} - {:.2f}, but no good "
                 "version is known yet to roll back to",
                 guard_.served_accuracy(), guard_.best_served_accuracy(), options_.guard.drop);
    return absl::OkStatus();
  }
  const uint64_t from = counters_.version;
  // Ordinary updates from the mirror to the good weights, within the
  // deploy budget, until they are equal.
  const ConstTensorViews good = View(good_);
  CONTRAIL_ASSIGN_OR_RETURN(bool published, Publish(good));
  while (published && held_back_entries_ > 0) {
    CONTRAIL_ASSIGN_OR_RETURN(published, Publish(good));
  }
  // The budget's leftovers are the trainer's, not the good version's.
  held_back_entries_ = 0;
  spdlog::warn("guard: rolled the servers back from version {} to the weights of version {} "
               "as version {}: served {:.2f} < served best {:.2f} - {:.2f}",
               from, good_version_, counters_.version, guard_.served_accuracy(),
               guard_.best_served_accuracy(), options_.guard.drop);
  return absl::OkStatus();
}

absl::Status Deployer::SendHeldBack(const ConstTensorViews& trainer) {
  CONTRAIL_RETURN_IF_ERROR(Drain());
  if (!has_held_back() || holding()) return absl::OkStatus();
  CONTRAIL_ASSIGN_OR_RETURN(const bool published, Publish(trainer));
  // Every entry sent moves the mirror strictly closer to the trainer (the
  // codec drops differences that round to zero), so rounds end; a round
  // that sends nothing means the rest cannot be sent.
  if (!published) stalled_ = true;
  return absl::OkStatus();
}

absl::Status Deployer::Flush(const ConstTensorViews& trainer) {
  CONTRAIL_RETURN_IF_ERROR(Drain());
  stalled_ = false;
  if (holding()) {
    spdlog::warn("guard: not flushing the trainer's changes: deployment is held at version {}",
                 counters_.version);
    return absl::OkStatus();
  }
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
