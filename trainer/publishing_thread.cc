#include "trainer/publishing_thread.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"

namespace contrail {

PublishingThread::PublishingThread(UpdatePublisher* publisher)
    : publisher_(publisher), thread_([this] { Loop(); }) {}

PublishingThread::~PublishingThread() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status PublishingThread::Submit(const ConstTensorViews& trainer) {
  {
    absl::MutexLock lock(&mu_);
    if (pending_ || result_.has_value()) {
      return absl::FailedPreconditionError(
          "an update is still in flight: Wait() for it before submitting the next");
    }
  }
  // The mirror's sizes are constant: reading them does not touch its data.
  const ConstTensorViews mirror = publisher_->mirror();
  if (trainer.size() != mirror.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "submitted ", trainer.size(), " tensors, the mirror has ", mirror.size()));
  }
  if (staging_.size() != trainer.size()) {
    staging_.resize(trainer.size());
    staging_views_.resize(trainer.size());
  }
  for (size_t t = 0; t < trainer.size(); ++t) {
    if (trainer[t].size() != mirror[t].size()) {
      return absl::InvalidArgumentError(absl::StrCat("submitted tensor ", t, " has ",
                                                     trainer[t].size(), " entries, the mirror's ",
                                                     mirror[t].size()));
    }
    // Nothing is pending: the publishing thread does not read staging_.
    staging_[t].resize(trainer[t].size());
    std::memcpy(staging_[t].data(), trainer[t].data(), trainer[t].size() * sizeof(float));
    staging_views_[t] = absl::MakeConstSpan(staging_[t]);
  }
  absl::MutexLock lock(&mu_);
  pending_ = true;
  return absl::OkStatus();
}

std::optional<PublishingThread::Result> PublishingThread::Wait() {
  absl::MutexLock lock(&mu_, absl::Condition(this, &PublishingThread::Idle));
  std::optional<Result> result = std::move(result_);
  result_.reset();
  return result;
}

bool PublishingThread::busy() const {
  absl::MutexLock lock(&mu_);
  return pending_ || result_.has_value();
}

void PublishingThread::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_, absl::Condition(this, &PublishingThread::HasWorkOrStopping));
      // An update submitted before the destructor ran still goes out.
      if (!pending_) return;
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<UpdatePublisher::PublishResult> published =
        publisher_->Publish(staging_views_);
    const absl::Duration took = absl::Now() - start;
    absl::MutexLock lock(&mu_);
    result_ = Result{std::move(published), took};
    pending_ = false;
  }
}

}  // namespace contrail
