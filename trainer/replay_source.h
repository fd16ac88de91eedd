// The embedded default source: replays a labelled IDX data set (Fashion-
// MNIST's train split) in file order, optionally paced at a fixed rate and
// with synthetic concept drift (trainer/drift.h), as the paper's
// experiments stream it.
//
// The first `unpaced_examples` examples (the trainer's initial data) are
// there at once; pacing starts with the first read after them: example
// unpaced_examples + k (k counted from 1) arrives k / rate seconds later.
//
// Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_REPLAY_SOURCE_H_
#define CONTRAIL_TRAINER_REPLAY_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/idx_reader.h"
#include "trainer/drift.h"
#include "trainer/example_source.h"

namespace contrail {

class ReplaySource final : public ExampleSource {
 public:
  struct Options {
    // Examples replayed from the head of the data; the stream ends after
    // them. 0 = all of it.
    int64_t count = 0;
    // Examples at the head that are not paced (the initial data).
    int64_t unpaced_examples = 0;
    // Where the replay starts (a restarted trainer's position): examples
    // before it are skipped, and pacing counts from it.
    int64_t start = 0;
    // Examples per second after those; 0 = all at once.
    double rate = 0;
    // Drift applied from example drift_begin on (counted from the head of
    // the data), seeded by drift_seed.
    Drift drift = Drift::kNone;
    int64_t drift_begin = 0;
    // ... up to example drift_end (exclusive); 0 = to the end of the data.
    int64_t drift_end = 0;
    uint64_t drift_seed = 1;
    // Where time comes from; null = the real clock. Must outlive the source.
    Clock* clock = nullptr;
  };

  // INVALID_ARGUMENT for a count beyond the data, a negative or non-finite
  // rate, a label outside [0, num_classes), or a drift the images do not
  // allow. `data` is copied no further: it is moved in.
  static absl::StatusOr<std::unique_ptr<ReplaySource>> Create(const Options& options,
                                                              LabelledImages data,
                                                              int64_t num_classes);

  std::vector<int64_t> input_shape() const override;
  int64_t num_classes() const override { return num_classes_; }
  absl::StatusOr<ReadResult> Read(int64_t max_count, absl::Time deadline,
                                  Examples* out) override;
  std::string name() const override { return "replay"; }
  // Replayed examples count as accepted; nothing is ever rejected or queued.
  SourceCounters counters() const override;

  // Examples handed out so far.
  int64_t position() const { return next_; }

 private:
  // `count`: options.count resolved (0 = all of the data).
  ReplaySource(const Options& options, LabelledImages data, int64_t num_classes,
               int64_t count);

  // How many examples have arrived by `time` (all of them when unpaced).
  int64_t ArrivedBy(absl::Time time) const;

  // Constant after construction.
  const Options options_;
  const LabelledImages data_;
  const int64_t num_classes_;
  const int64_t count_;
  Clock* const clock_;

  int64_t next_ = 0;
  // next_, for counters() on other threads.
  std::atomic<int64_t> handed_out_{0};
  // When pacing started: the first read after the unpaced examples.
  std::optional<absl::Time> paced_since_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_REPLAY_SOURCE_H_
