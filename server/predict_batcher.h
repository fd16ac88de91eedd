// Runs a server's predictions on a pool of worker threads, and with dynamic
// batching (as Triton's dynamic batcher) merges the requests that wait into
// one forward pass.
//
// Submit() queues a request and returns at once; a worker runs it and
// calls its callback. Without dynamic batching each request runs alone.
// With it, a worker takes the oldest request and gathers those queued
// behind it (same example shape, together at most Options::max_batch
// examples), waiting up to Options::batch_timeout after the oldest arrived
// for more to come, then runs them as one LiveModel::Predict on one model
// version and hands each its own rows. A merged batch that fails (one
// request holds a non-finite value, say) is run again request by request,
// so that each gets its own answer or error.
//
// The gRPC service (prediction_service_impl.h) submits from gRPC's callback
// threads, which so never run a forward pass themselves.
//
// Lifecycle: Create() starts the workers; the destructor answers what is
// still queued with UNAVAILABLE and joins them.
// This class is thread-safe.
#ifndef CONTRAIL_SERVER_PREDICT_BATCHER_H_
#define CONTRAIL_SERVER_PREDICT_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/live_model.h"

namespace contrail {

class PredictBatcher {
 public:
  // Told of every forward pass that answered, for metrics
  // (server/server_metrics.h). Called on worker threads; must not block.
  class Observer {
   public:
    virtual ~Observer() = default;
    // One LiveModel::Predict over `requests` requests took `forward` (a
    // merged batch that failed is not counted; the requests it held, run
    // again one by one, are).
    virtual void Ran(size_t requests, absl::Duration forward) = 0;
  };

  struct Options {
    // Worker threads running forward passes (--predict_threads); 0: one
    // per core.
    int threads = 0;
    // Merge waiting requests into one forward pass (--dynamic_batching).
    bool dynamic_batching = false;
    // With dynamic batching, how long the oldest request may wait for more
    // to join its batch (--batch_timeout_us); zero merges only what is
    // already queued.
    absl::Duration batch_timeout = absl::Microseconds(500);
    // Largest merged batch, in examples (--max_batch); a request larger
    // than this is LiveModel's to refuse.
    int64_t max_batch = 1024;
    // Told of each forward pass; null: nobody. Must outlive the batcher.
    Observer* observer = nullptr;
  };

  // Called once, on a worker thread, with the request's predictions.
  using Done = std::function<void(absl::StatusOr<LiveModel::Predictions>)>;

  // INVALID_ARGUMENT naming the field for threads < 0, max_batch < 1 or a
  // negative timeout.
  static absl::Status CheckOptions(const Options& options);

  // CheckOptions(), then starts the workers. `live` must outlive the
  // batcher.
  static absl::StatusOr<std::unique_ptr<PredictBatcher>> Create(const Options& options,
                                                                LiveModel* live);
  ~PredictBatcher();
  PredictBatcher(const PredictBatcher&) = delete;
  PredictBatcher& operator=(const PredictBatcher&) = delete;

  // Queues the prediction of `values` of shape `shape` (as
  // LiveModel::Predict takes them). Both must stay valid until `done` has
  // been called.
  void Submit(absl::Span<const int64_t> shape, absl::Span<const float> values, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Forward passes run, and the requests they answered (for the batch
  // sizes a benchmark reports).
  uint64_t batches_run() const { return batches_run_.load(); }
  uint64_t requests_run() const { return requests_run_.load(); }
  // Worker threads.
  int threads() const { return static_cast<int>(workers_.size()); }

 private:
  struct Request {
    absl::Span<const int64_t> shape;
    absl::Span<const float> values;
    Done done;
    absl::Time arrived;
  };

  PredictBatcher(const Options& options, LiveModel* live);

  void Work() ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the next batch off the queue (waiting for it); empty once
  // stopping.
  std::vector<Request> NextBatch() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `request` may join a batch that holds `rows` examples shaped
  // like `first`.
  bool Joins(const Request& first, int64_t rows, const Request& request) const;
  void Run(std::vector<Request>& batch);
  // LiveModel::Predict, reported to the observer as a pass over `requests`.
  absl::StatusOr<LiveModel::Predictions> Predict(absl::Span<const int64_t> shape,
                                                 absl::Span<const float> values,
                                                 size_t requests);

  // Constant after construction.
  const Options options_;
  LiveModel* const live_;

  // Protects the queue.
  absl::Mutex mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);
  // A worker is gathering a batch: the others wait, so that requests join
  // the batch being formed rather than start batches of their own.
  bool forming_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> batches_run_{0};
  std::atomic<uint64_t> requests_run_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_PREDICT_BATCHER_H_
