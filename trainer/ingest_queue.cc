#include "trainer/ingest_queue.h"

#include <algorithm>
#include <utility>

namespace contrail {
namespace {

// How often a producer waiting for room checks whether its call was
// cancelled.
constexpr absl::Duration kCancelPoll = absl::Milliseconds(50);

}  // namespace

IngestQueue::IngestQueue(std::vector<int64_t> input_shape, int64_t num_classes,
                         int64_t capacity)
    : validator_(std::move(input_shape), num_classes), capacity_(capacity) {}

absl::StatusOr<std::optional<Rejection>> IngestQueue::Add(
    const Example& example, int64_t position, const std::function<bool()>& cancelled) {
  if (std::optional<Rejection> rejection = validator_.Check(example)) {
    rejections_.Record(*rejection, position, example.id());
    return rejection;
  }
  Queued queued{std::vector<float>(example.inputs().values().begin(),
                                   example.inputs().values().end()),
                example.label()};
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !closed_.ok() || static_cast<int64_t>(queue_.size()) < capacity_;
  };
  while (!mu_.AwaitWithTimeout(absl::Condition(&room), kCancelPoll)) {
    if (cancelled()) {
      return absl::CancelledError("the producer went away while the queue was full");
    }
  }
  if (!closed_.ok()) return closed_;
  queue_.push_back(std::move(queued));
  ++accepted_;
  return std::nullopt;
}

void IngestQueue::Close(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (closed_.ok()) closed_ = std::move(why);
}

absl::StatusOr<ExampleSource::ReadResult> IngestQueue::Read(int64_t max_count,
                                                            absl::Time deadline,
                                                            Examples* out) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || !closed_.ok();
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  ReadResult result;
  while (result.count < max_count && !queue_.empty()) {
    Queued& next = queue_.front();
    out->inputs.insert(out->inputs.end(), next.inputs.begin(), next.inputs.end());
    out->labels.push_back(next.label);
    queue_.pop_front();
    ++result.count;
  }
  result.end_of_stream = queue_.empty() && !closed_.ok();
  return result;
}

SourceCounters IngestQueue::counters() const {
  SourceCounters counters;
  counters.rejected = rejections_.total();
  counters.rejected_by_reason = rejections_.by_reason();
  absl::MutexLock lock(&mu_);
  counters.accepted = accepted_;
  counters.queued = static_cast<int64_t>(queue_.size());
  return counters;
}

}  // namespace contrail
