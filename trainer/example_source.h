// Where a trainer's labelled examples come from. Today's IDX replay is one
// implementation (trainer/replay_source.h); a live ingest queue and a
// durable log are others. The trainer reads the first examples for its
// initial training, then the stream, in arrival order.
//
// Torch-free. Read() is called by the training thread only;
// implementations say what else is thread-safe.
#ifndef CONTRAIL_TRAINER_EXAMPLE_SOURCE_H_
#define CONTRAIL_TRAINER_EXAMPLE_SOURCE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace contrail {

// Labelled examples, row-major: `inputs` holds labels.size() examples of
// example_size floats each.
struct Examples {
  std::vector<float> inputs;
  std::vector<int64_t> labels;

  int64_t count() const { return static_cast<int64_t>(labels.size()); }
  void clear() {
    inputs.clear();
    labels.clear();
  }
};

// What a source took in, for GetStatus. A source that validates what it is
// sent (ingest, JetStream) counts what it accepted and rejected.
struct SourceCounters {
  int64_t accepted = 0;  // examples validated and queued (or replayed)
  int64_t rejected = 0;
  std::map<std::string, int64_t> rejected_by_reason;
  int64_t queued = 0;  // accepted, not yet handed to the trainer by Read()
};

class ExampleSource {
 public:
  struct ReadResult {
    int64_t count = 0;           // examples appended
    bool end_of_stream = false;  // nothing will ever follow them
  };

  virtual ~ExampleSource() = default;

  // The shape of one example's inputs (e.g. [1, 28, 28]) and the number
  // of classes its labels index, for checking against the model.
  virtual std::vector<int64_t> input_shape() const = 0;
  virtual int64_t num_classes() const = 0;

  // Appends up to `max_count` examples to `out`: waits until that many
  // have arrived, the stream ends, or `deadline` passes (a deadline of now
  // takes what has arrived without waiting). Every label is in
  // [0, num_classes()) and every example has the input shape.
  virtual absl::StatusOr<ReadResult> Read(int64_t max_count, absl::Time deadline,
                                          Examples* out) = 0;

  // The first `count` examples Read() handed out (counted from the first
  // read; never decreasing) have been trained on. A durable source
  // acknowledges them now, so that a restarted trainer resumes after them.
  virtual absl::Status Commit(int64_t count) { return absl::OkStatus(); }

  // The trainer reads no more (its stream ended, it failed or it stops): a
  // source that producers feed refuses them from now on with `why`.
  // Thread-safe.
  virtual void Close(absl::Status why) {}

  // "replay", "ingest", or the JetStream URL. Thread-safe.
  virtual std::string name() const = 0;
  // Thread-safe.
  virtual SourceCounters counters() const = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_EXAMPLE_SOURCE_H_
