#include "trainer/replay_source.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace contrail {

absl::StatusOr<std::unique_ptr<ReplaySource>> ReplaySource::Create(
    const Options& options, LabelledImages data, int64_t num_classes) {
  if (options.count < 0 || options.count > data.count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot replay ", options.count, " examples: the data has ", data.count));
  }
  if (!(options.rate >= 0) || !std::isfinite(options.rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("replay_rate must be >= 0, got ", options.rate));
  }
  if (options.unpaced_examples < 0 || options.drift_begin < 0 || options.drift_end < 0) {
    return absl::InvalidArgumentError("unpaced and drift positions must be >= 0");
  }
  const int64_t count = options.count == 0 ? data.count : options.count;
  if (options.start < 0 || options.start > count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot start the replay at example ", options.start, " of ", count));
  }
  for (int64_t i = 0; i < count; ++i) {
    if (data.labels[i] < 0 || data.labels[i] >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("example ", i, " has label ", data.labels[i],
                       ", outside the model's ", num_classes, " classes"));
    }
  }
  CONTRAIL_RETURN_IF_ERROR(ApplyDrift(options.drift, options.drift_begin,
                                      options.drift_end > 0 ? options.drift_end : data.count,
                                      options.drift_seed,
                                      static_cast<int32_t>(num_classes), &data));
  return std::unique_ptr<ReplaySource>(
      new ReplaySource(options, std::move(data), num_classes, count));
}

ReplaySource::ReplaySource(const Options& options, LabelledImages data,
                           int64_t num_classes, int64_t count)
    : options_(options),
      data_(std::move(data)),
      num_classes_(num_classes),
      count_(count),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      next_(options.start),
      handed_out_(options.start) {}

std::vector<int64_t> ReplaySource::input_shape() const {
  return {1, data_.rows, data_.cols};
}

int64_t ReplaySource::ArrivedBy(absl::Time time) const {
  if (options_.rate == 0) return count_;
  const int64_t unpaced =
      std::min(std::max(options_.unpaced_examples, options_.start), count_);
  if (!paced_since_.has_value()) return unpaced;
  // The small slack keeps an example whose arrival time was computed from
  // its index from being counted one short by rounding.
  const double paced =
      std::floor(absl::ToDoubleSeconds(time - *paced_since_) * options_.rate + 1e-6);
  return std::min(count_, unpaced + static_cast<int64_t>(std::max(0.0, paced)));
}

absl::StatusOr<ExampleSource::ReadResult> ReplaySource::Read(int64_t max_count,
                                                             absl::Time deadline,
                                                             Examples* out) {
  if (max_count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", max_count, " examples"));
  }
  if (options_.rate > 0 && !paced_since_.has_value() &&
      next_ >= options_.unpaced_examples) {
    paced_since_ = clock_->Now();
  }
  const int64_t target = std::min(count_, next_ + max_count);
  int64_t arrived = ArrivedBy(clock_->Now());
  if (arrived < target) {
    const absl::Time arrival =
        *paced_since_ +
        absl::Seconds((target - options_.unpaced_examples) / options_.rate);
    clock_->SleepUntil(std::min(arrival, deadline), nullptr);
    arrived = clock_->Now() >= arrival ? target : ArrivedBy(clock_->Now());
  }
  const int64_t n = std::max<int64_t>(0, std::min(target, arrived) - next_);
  const int64_t size = data_.example_size();
  out->inputs.insert(out->inputs.end(), data_.pixels.begin() + next_ * size,
                     data_.pixels.begin() + (next_ + n) * size);
  out->labels.insert(out->labels.end(), data_.labels.begin() + next_,
                     data_.labels.begin() + next_ + n);
  next_ += n;
  handed_out_.store(next_, std::memory_order_relaxed);
  return ReadResult{n, next_ == count_};
}

SourceCounters ReplaySource::counters() const {
  SourceCounters counters;
  counters.accepted = handed_out_.load(std::memory_order_relaxed);
  return counters;
}

}  // namespace contrail
