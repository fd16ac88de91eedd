#include "server/predict_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace contrail {
namespace {

int64_t Rows(absl::Span<const int64_t> shape) { return shape.empty() ? 0 : shape[0]; }

// Whether `values` holds exactly the floats `shape` (all dimensions >= 1)
// describes: only then may its rows be laid next to another request's.
bool Consistent(absl::Span<const int64_t> shape, absl::Span<const float> values) {
  uint64_t expected = 1;
  for (const int64_t dimension : shape) {
    if (dimension < 1 || static_cast<uint64_t>(dimension) > values.size()) return false;
    expected *= static_cast<uint64_t>(dimension);
    if (expected > values.size()) return false;
  }
  return expected == values.size();
}

}  // namespace

absl::Status PredictBatcher::CheckOptions(const Options& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "predict_threads must be >= 0 (0: one per core), got ", options.threads));
  }
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch must be >= 1, got ", options.max_batch));
  }
  if (options.batch_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_timeout_us must be >= 0, got ",
        absl::ToInt64Microseconds(options.batch_timeout)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PredictBatcher>> PredictBatcher::Create(const Options& options,
                                                                       LiveModel* live) {
  if (absl::Status checked = CheckOptions(options); !checked.ok()) return checked;
  if (live == nullptr) return absl::InvalidArgumentError("live model must not be null");
  return std::unique_ptr<PredictBatcher>(new PredictBatcher(options, live));
}

PredictBatcher::PredictBatcher(const Options& options, LiveModel* live)
    : options_(options), live_(live) {
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

PredictBatcher::~PredictBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
  std::deque<Request> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (Request& request : left) {
    request.done(absl::UnavailableError("the server is shutting down"));
  }
}

void PredictBatcher::Submit(absl::Span<const int64_t> shape, absl::Span<const float> values,
                            Done done) {
  Request request{shape, values, std::move(done), absl::Now()};
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(std::move(request));
      return;
    }
  }
  request.done(absl::UnavailableError("the server is shutting down"));
}

void PredictBatcher::Work() {
  while (true) {
    std::vector<Request> batch = NextBatch();
    if (batch.empty()) return;
    Run(batch);
  }
}

bool PredictBatcher::Joins(const Request& first, int64_t rows, const Request& request) const {
  // Only requests LiveModel would take alone: [N] + the first's example
  // shape (the first is known to be consistent).
  if (request.shape.size() != first.shape.size()) return false;
  if (rows + request.shape[0] > options_.max_batch) return false;
  if (!Consistent(request.shape, request.values)) return false;
  return std::equal(first.shape.begin() + 1, first.shape.end(), request.shape.begin() + 1);
}

std::vector<PredictBatcher::Request> PredictBatcher::NextBatch() {
  std::vector<Request> batch;
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](PredictBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
        return b->stopping_ || (!b->forming_ && !b->queue_.empty());
      },
      this));
  if (stopping_) return batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  // A request LiveModel will refuse runs at once, alone.
  if (!options_.dynamic_batching || batch[0].shape.size() < 2 ||
      !Consistent(batch[0].shape, batch[0].values)) {
    return batch;
  }

  forming_ = true;
  int64_t rows = Rows(batch[0].shape);
  const absl::Time deadline = batch[0].arrived + options_.batch_timeout;
  while (true) {
    while (!queue_.empty() && Joins(batch[0], rows, queue_.front())) {
      rows += Rows(queue_.front().shape);
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    // Full, or the next request cannot join: run what was gathered.
    if (stopping_ || !queue_.empty() || rows >= options_.max_batch) {
      break;
    }
    const bool more = mu_.AwaitWithDeadline(
        absl::Condition(
            +[](PredictBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
              return b->stopping_ || !b->queue_.empty();
            },
            this),
        deadline);
    if (!more) break;
  }
  forming_ = false;
  return batch;
}

absl::StatusOr<LiveModel::Predictions> PredictBatcher::Predict(
    absl::Span<const int64_t> shape, absl::Span<const float> values, size_t requests) {
  const absl::Time start = absl::Now();
  absl::StatusOr<LiveModel::Predictions> predictions = live_->Predict(shape, values);
  if (options_.observer != nullptr && predictions.ok()) {
    options_.observer->Ran(requests, absl::Now() - start);
  }
  return predictions;
}

void PredictBatcher::Run(std::vector<Request>& batch) {
  ++batches_run_;
  requests_run_ += batch.size();
  if (batch.size() == 1) {
    batch[0].done(Predict(batch[0].shape, batch[0].values, 1));
    return;
  }
  std::vector<int64_t> shape(batch[0].shape.begin(), batch[0].shape.end());
  shape[0] = 0;
  size_t floats = 0;
  for (const Request& request : batch) {
    shape[0] += request.shape[0];
    floats += request.values.size();
  }
  std::vector<float> values;
  values.reserve(floats);
  for (const Request& request : batch) {
    values.insert(values.end(), request.values.begin(), request.values.end());
  }
  absl::StatusOr<LiveModel::Predictions> merged = Predict(shape, values, batch.size());
  if (!merged.ok()) {
    // Whatever failed, each request gets its own answer.
    for (Request& request : batch) request.done(Predict(request.shape, request.values, 1));
    return;
  }
  const int64_t classes = merged->num_classes;
  int64_t row = 0;
  for (Request& request : batch) {
    const int64_t n = request.shape[0];
    LiveModel::Predictions own;
    own.version = merged->version;
    own.num_classes = classes;
    own.probabilities.assign(merged->probabilities.begin() + row * classes,
                             merged->probabilities.begin() + (row + n) * classes);
    own.labels.assign(merged->labels.begin() + row, merged->labels.begin() + row + n);
    row += n;
    request.done(std::move(own));
  }
}

}  // namespace contrail
