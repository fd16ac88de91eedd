// The deploy guard: stops deploying when the trainer's recent accuracy
// falls well below what the servers recently achieved, and asks for a
// rollback when the served model itself has fallen (bad updates already
// went out). What ModelCI-e's validation and Ekko's SLO-aware rollback do
// for whole models, here for per-step deltas.
//
// It sees the prequential test of every arrival: how many of its examples
// the trainer's model and the served one (the mirror) predicted right
// before training on them. Over the last `window` examples that gives a
// windowed accuracy of each. Every `window` examples the served figure is
// recorded; the best of the last `memory_windows` records is the "best
// recent served" accuracy B. Then, with drop d:
//  - deploying, trainer < B - d: hold (deployment stops);
//  - holding, served < B - d, once per hold: roll back (the deployer takes
//    the servers back to the last good version, as an ordinary update);
//  - holding, trainer >= B - d: resume.
// A window boundary where both trainer and served are within d of B while
// deploying marks the served model good: the deployer keeps the mirror
// then as a candidate, and the previous candidate (confirmed one window
// later) as the last good version. B only looks back memory_windows
// windows, so that a lasting change of the stream (concept drift that
// every model scores worse on) ends a hold once the old records age out.
//
// Torch-free. Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_QUALITY_GUARD_H_
#define CONTRAIL_TRAINER_QUALITY_GUARD_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/status/statusor.h"

namespace contrail {

class QualityGuard {
 public:
  struct Options {
    // How far (accuracy, in [0, 1]) the trainer's windowed accuracy may
    // fall below the best recent served one before deployment stops
    // (--guard_drop). 0 turns the guard off.
    double drop = 0;
    // Examples in each windowed accuracy (--guard_window).
    int64_t window = 1000;
    // Windows of served accuracy the best recent figure looks back over.
    int64_t memory_windows = 20;
  };

  enum class State { kOff, kDeploying, kHolding };

  // What the deployer should do after an arrival.
  struct Verdict {
    bool deploy = true;      // the trainer's changes may go out
    bool roll_back = false;  // take the servers back to the last good version now
    bool good = false;       // the served model is good: remember the mirror
  };

  // INVALID_ARGUMENT naming the field (the flag) for a drop outside
  // [0, 1), or a window or memory below 1.
  static absl::StatusOr<QualityGuard> Create(const Options& options);

  // Records an arrival's prequential test: `count` examples, of which the
  // trainer predicted `trainer_correct` and the served model
  // `served_correct` right.
  Verdict Observe(int64_t count, int64_t trainer_correct, int64_t served_correct);

  State state() const { return state_; }
  bool enabled() const { return options_.drop > 0; }
  // Accuracies over the last window (fewer examples until it fills).
  double trainer_accuracy() const { return Fraction(trainer_correct_); }
  double served_accuracy() const { return Fraction(served_correct_); }
  // The best served windowed accuracy recorded in the last memory_windows
  // windows; 0 before the first window ends.
  double best_served_accuracy() const;
  int64_t holds() const { return holds_; }
  int64_t rollbacks() const { return rollbacks_; }
  // "off", "deploying" or "holding".
  static std::string StateName(State state);

 private:
  explicit QualityGuard(const Options& options)
      : options_(options), state_(options.drop > 0 ? State::kDeploying : State::kOff) {}

  double Fraction(int64_t correct) const {
    return in_window_ == 0 ? 0.0 : static_cast<double>(correct) / in_window_;
  }

  struct Arrival {
    int64_t count;
    int64_t trainer_correct;
    int64_t served_correct;
  };

  Options options_;
  State state_;
  // The arrivals of the current window, oldest first, and their sums.
  std::deque<Arrival> arrivals_;
  int64_t in_window_ = 0;
  int64_t trainer_correct_ = 0;
  int64_t served_correct_ = 0;
  // Examples since the last window boundary.
  int64_t since_boundary_ = 0;
  // Served windowed accuracy at the latest boundaries, oldest first.
  std::deque<double> served_records_;
  bool rolled_back_ = false;  // in the current hold
  int64_t holds_ = 0;
  int64_t rollbacks_ = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_QUALITY_GUARD_H_
