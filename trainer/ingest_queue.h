// The source of --source=ingest: examples that producers stream in over
// IngestService, validated against the model and queued for the training
// thread. The queue is bounded: a producer that adds to a full queue waits
// for room (and its RPC stops reading, so that gRPC flow control holds the
// producer back); nothing accepted is dropped.
//
// Thread-safe: any number of producer threads Add() while the training
// thread Read()s. Waits are in real time.
#ifndef CONTRAIL_TRAINER_INGEST_QUEUE_H_
#define CONTRAIL_TRAINER_INGEST_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/contrail.pb.h"
#include "trainer/example_source.h"
#include "trainer/example_validator.h"

namespace contrail {

class IngestQueue final : public ExampleSource {
 public:
  // Examples of `input_shape` with labels in [0, num_classes); at most
  // `capacity` (> 0) wait at a time.
  IngestQueue(std::vector<int64_t> input_shape, int64_t num_classes, int64_t capacity);

  // Validates `example`: a bad one is counted and its rejection returned
  // (`position` and the example's id describe it). A good one is queued,
  // waiting while the queue is full; CANCELLED when `cancelled()` (polled
  // while waiting) turns true, and the Close() status once closed. Neither
  // leaves the example queued.
  absl::StatusOr<std::optional<Rejection>> Add(const Example& example, int64_t position,
                                               const std::function<bool()>& cancelled)
      ABSL_LOCKS_EXCLUDED(mu_);

  // From now on Add() fails with `why` (which must not be OK), waiters
  // included; Read() hands out what is queued, then ends the stream.
  void Close(absl::Status why) override ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<int64_t> input_shape() const override {
    return validator_.input_shape();
  }
  int64_t num_classes() const override { return validator_.num_classes(); }
  absl::StatusOr<ReadResult> Read(int64_t max_count, absl::Time deadline,
                                  Examples* out) override ABSL_LOCKS_EXCLUDED(mu_);
  std::string name() const override { return "ingest"; }
  SourceCounters counters() const override ABSL_LOCKS_EXCLUDED(mu_);

  int64_t capacity() const { return capacity_; }

 private:
  struct Queued {
    std::vector<float> inputs;
    int64_t label;
  };

  const ExampleValidator validator_;
  const int64_t capacity_;
  RejectionCounter rejections_;

  mutable absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  int64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);  // OK while open
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_INGEST_QUEUE_H_
