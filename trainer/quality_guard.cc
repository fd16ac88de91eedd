#include "trainer/quality_guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace contrail {

absl::StatusOr<QualityGuard> QualityGuard::Create(const Options& options) {
  if (!(options.drop >= 0 && options.drop < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "guard_drop must be in [0, 1) (an accuracy drop; 0 = off), got ", options.drop));
  }
  if (options.window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("guard_window must be >= 1 example, got ", options.window));
  }
  if (options.memory_windows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("guard memory_windows must be >= 1, got ", options.memory_windows));
  }
  return QualityGuard(options);
}

std::string QualityGuard::StateName(State state) {
  switch (state) {
    case State::kOff:
      return "off";
    case State::kDeploying:
      return "deploying";
    case State::kHolding:
      return "holding";
  }
  return "unknown";
}

double QualityGuard::best_served_accuracy() const {
  if (served_records_.empty()) return 0;
  return *std::max_element(served_records_.begin(), served_records_.end());
}

QualityGuard::Verdict QualityGuard::Observe(int64_t count, int64_t trainer_correct,
                                            int64_t served_correct) {
  Verdict verdict;
  if (count <= 0) {
    verdict.deploy = state_ != State::kHolding;
    return verdict;
  }
  arrivals_.push_back({count, trainer_correct, served_correct});
  in_window_ += count;
  trainer_correct_ += trainer_correct;
  served_correct_ += served_correct;
  // Keep at least window examples: drop whole arrivals while the rest
  // still cover it.
  while (in_window_ - arrivals_.front().count >= options_.window) {
    in_window_ -= arrivals_.front().count;
    trainer_correct_ -= arrivals_.front().trainer_correct;
    served_correct_ -= arrivals_.front().served_correct;
    arrivals_.pop_front();
  }
  if (state_ == State::kOff) return verdict;

  const bool full = in_window_ >= options_.window;
  since_boundary_ += count;
  const bool boundary = full && since_boundary_ >= options_.window;
  if (boundary) {
    since_boundary_ = 0;
    served_records_.push_back(served_accuracy());
    while (static_cast<int64_t>(served_records_.size()) > options_.memory_windows) {
      served_records_.pop_front();
    }
  }
  if (!full || served_records_.empty()) return verdict;

  const double floor = best_served_accuracy() - options_.drop;
  const bool trainer_ok = trainer_accuracy() >= floor;
  const bool served_ok = served_accuracy() >= floor;
  if (state_ == State::kDeploying && !trainer_ok) {
    state_ = State::kHolding;
    rolled_back_ = false;
    ++holds_;
  } else if (state_ == State::kHolding && trainer_ok) {
    state_ = State::kDeploying;
  }
  if (state_ == State::kHolding) {
    verdict.deploy = false;
    if (!served_ok && !rolled_back_) {
      rolled_back_ = true;
      ++rollbacks_;
      verdict.roll_back = true;
    }
  } else {
    verdict.good = boundary && served_ok;
  }
  return verdict;
}

}  // namespace contrail
