// Serving speed under a live update stream, against the full reloads that
// model servers (TF Serving, Triton, TorchServe) do today. Every number
// comes from one run, printed as Markdown tables:
//
//  1. Bare LibTorch forward of the served model, in-process, per batch: the
//     floor that the server's latency is compared with.
//  2. Closed loop: Predict over gRPC at concurrency 1, 8, 64 and batch 1, 8,
//     64, no updates: p50 / p99 / p999 latency and throughput.
//  3. Open loop: Predict (batch 1) at fixed request rates, latency measured
//     from each request's scheduled send time (no coordinated omission).
//  4. Updates: Predict at a fixed open-loop rate while a replaying publisher
//     streams recorded 0.1 % updates to the server at 0, 50, 500 per second
//     and as fast as the server takes them; Predict latency, the freshness
//     of the model (publish -> visible to Predict) and the apply rate.
//  5. Full reload at the same cadences: the publisher sends a complete
//     snapshot instead of each delta, and the server loads and swaps in a
//     whole model, as a server that reloads model files does; ratios of
//     reload to delta for time to fresh and Predict p99.
//
// The server is the server daemon's serving path, in-process: LiveModel,
// UpdateSubscriber (subscribed over loopback gRPC to the replaying
// publisher) and PredictionServiceImpl behind StartGrpcServer, without the
// status service and the saver. The client is an asynchronous gRPC client
// (one completion-queue thread). Recording happens before any timing: the
// real UpdatePublisher (fp32, deploy ratio --deploy_ratio) publishes a
// model whose parameter tensors change at --deploy_ratio of their entries
// per step, as a top-k sparse step changes them, and the updates are kept
// in memory; the replaying publisher only re-stamps publish_time_us at send
// time, so that no training CPU is in the way.
//
// Freshness is read on the server's side: a watcher thread polls
// LiveModel::Current() every 20 us while an update is in flight and stamps
// each new version with the time it became visible to Predict (at most one
// poll late); "apply start" is the version's applied_at, taken when the
// apply thread began applying it.
//
//   bazel run //tests:serve_bench
//   bazel run //tests:serve_bench -- --models=lenet5 --duration_s=2
//   bazel run //tests:serve_bench -- --quick
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/daemon.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/sparse_selector.h"
#include "common/tensor_views.h"
#include "common/update_codec.h"
#include "proto/contrail.grpc.pb.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "server/predict_batcher.h"
#include "server/prediction_service_impl.h"
#include "server/update_subscriber.h"
#include "trainer/update_publisher.h"
#include "tests/markdown_table.h"

ABSL_FLAG(std::vector<std::string>, models, std::vector<std::string>({"lenet5", "resnet18"}),
          "architectures to serve, in order (common/architectures.h)");
ABSL_FLAG(double, duration_s, 3.0, "seconds of load per measured cell");
ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"1", "8", "64"}),
          "closed-loop concurrencies (requests in flight)");
ABSL_FLAG(std::vector<std::string>, batches, std::vector<std::string>({"1", "8", "64"}),
          "examples per Predict in the closed-loop and bare-forward tables");
ABSL_FLAG(std::vector<std::string>, rates, std::vector<std::string>({"auto"}),
          "open-loop Predict rates (requests/s, batch 1); \"auto\": 25, 50 and "
          "75 % of the closed-loop batch-1 throughput at concurrency 8 (or "
          "the first --concurrency when 8 is not listed)");
ABSL_FLAG(std::vector<std::string>, update_rates,
          std::vector<std::string>({"0", "50", "500", "max"}),
          "update rates (per second) replayed while Predict runs; \"max\": as "
          "fast as the server takes them");
ABSL_FLAG(std::vector<std::string>, reload_rates, std::vector<std::string>({"50", "500"}),
          "full-reload (snapshot) rates per second, compared with deltas at "
          "the same rate");
ABSL_FLAG(double, predict_load, 0.5,
          "open-loop Predict rate (batch 1) during the update and reload "
          "phases, as a fraction of the closed-loop batch-1 throughput at "
          "concurrency 8 (or the first --concurrency when 8 is not listed)");
ABSL_FLAG(double, deploy_ratio, 0.001,
          "fraction of each parameter tensor's entries in an update");
ABSL_FLAG(int64_t, fast_updates, 5000,
          "most updates the as-fast-as-possible phase replays per round");
ABSL_FLAG(double, catch_up_s, 10,
          "how long a phase waits, after its load, for the server to apply "
          "what was sent; a server still behind then is marked lagging and "
          "the next phase starts with its backlog");
ABSL_FLAG(int32_t, rounds, 1,
          "times the update phases (and then the reload phases) run, "
          "interleaved; their samples are pooled");
ABSL_FLAG(int64_t, max_stream_mb, 256,
          "cap on the recorded stream's size per model; phases replay what is left");
ABSL_FLAG(double, max_record_s, 15,
          "cap on the time spent recording the stream per model (a ResNet-18 "
          "update takes the publisher tens of ms); phases replay what is left");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads, as the server's --threads; 0 keeps "
          "LibTorch's default");
ABSL_FLAG(std::vector<std::string>, batching_concurrency,
          std::vector<std::string>({"8", "64"}),
          "concurrency levels of the dynamic batching comparison (batch-1 calls)");
ABSL_FLAG(int64_t, batch_timeout_us, 500,
          "the batching server's --batch_timeout_us");
ABSL_FLAG(int64_t, max_batch, 64, "the batching server's largest merged batch");
ABSL_FLAG(int32_t, batching_threads, 0,
          "the batching server's --predict_threads (0: one per core)");
ABSL_FLAG(bool, quick, false,
          "smoke run: LeNet-5 only, 1 s cells, concurrency 1 and 8, batch 1 "
          "and 8, 2,000 fast updates, one round");

namespace contrail {
namespace {

constexpr uint64_t kSeed = 20210501;
// How often the watcher looks at the served version while an update is in
// flight: the resolution of the freshness figures.
constexpr absl::Duration kWatchInterval = absl::Microseconds(20);
// How long a phase waits, after its load ends, for the Predict calls in
// flight to finish.
constexpr absl::Duration kDrainTimeout = absl::Seconds(60);

using SteadyClock = std::chrono::steady_clock;

double MsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "serve_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T ValueOrDie(absl::StatusOr<T> value, const std::string& what) {
  if (!value.ok()) Die(absl::StrCat(what, ": ", value.status().ToString()));
  return *std::move(value);
}

std::vector<int> IntList(const std::vector<std::string>& items, const char* flag) {
  std::vector<int> out;
  for (const std::string& item : items) {
    int v = 0;
    if (!absl::SimpleAtoi(item, &v) || v < 1) {
      Die(absl::StrCat("--", flag, ": expected positive integers, got \"", item, "\""));
    }
    out.push_back(v);
  }
  return out;
}

// A rate list: numbers >= 0, or `word` (returned as -1).
std::vector<double> RateList(const std::vector<std::string>& items, const char* flag,
                             const std::string& word) {
  std::vector<double> out;
  for (const std::string& item : items) {
    double v = 0;
    if (item == word) {
      out.push_back(-1);
    } else if (absl::SimpleAtod(item, &v) && v >= 0) {
      out.push_back(v);
    } else {
      Die(absl::StrCat("--", flag, ": expected rates >= 0 or \"", word, "\", got \"", item,
                       "\""));
    }
  }
  return out;
}

// ---------------------------------------------------------------- tables ----

// Fixed-point with `precision` decimals, 3 significant digits for small
// values; "-" for NaN (nothing measured).
std::string Num(double v, int precision = 2) {
  if (std::isnan(v)) return "-";
  if (v != 0 && std::fabs(v) < 0.1 && precision < 3) precision = 3;
  return absl::StrFormat("%.*f", precision, v);
}

std::string Ratio(double v) { return std::isnan(v) ? "-" : Num(v) + "x"; }

// Percentiles of a sample, nearest rank; NaN when empty.
struct Percentiles {
  double p50 = NAN, p99 = NAN, p999 = NAN, max = NAN;
  size_t n = 0;
};

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = v.back();
  return p;
}

// ------------------------------------------------------------- recording ----

// A recorded stream: the snapshot a fresh server starts from, the updates
// after it in version order, and a snapshot of the last version for the
// full-reload phases.
struct Recording {
  Update first_snapshot;
  std::vector<Update> updates;
  Update last_snapshot;
  double mean_update_bytes = 0;
  double mean_entries = 0;
  double record_s = 0;
};

Recording Record(const std::string& architecture, int64_t wanted, double ratio,
                 int64_t max_bytes, double max_seconds) {
  const SteadyClock::time_point start = SteadyClock::now();
  std::unique_ptr<Model> trainer =
      ValueOrDie(Model::Create(architecture, kSeed), "creating " + architecture);
  std::vector<std::vector<float>> mirror_storage;
  TensorViews mirror;
  for (absl::Span<float> v : trainer->Views()) mirror_storage.emplace_back(v.size());
  for (std::vector<float>& m : mirror_storage) mirror.push_back(absl::MakeSpan(m));

  UpdatePublisher::Options options;
  options.encoding = FP32_ASSIGN;
  options.deploy_ratio = ratio;
  options.max_retained_updates = 1;
  std::unique_ptr<UpdatePublisher> publisher = ValueOrDie(
      UpdatePublisher::Create(trainer->spec(), mirror, options), "creating the publisher");
  publisher->Start(AsConst(trainer->Views()));

  Recording recording;
  std::vector<std::shared_ptr<const Update>> out;
  auto next = [&](uint64_t have_version) -> const Update& {
    out.clear();
    const uint64_t have_run = have_version == 0 ? 0 : publisher->run();
    const uint64_t have_fingerprint = have_version == 0 ? 0 : trainer->spec().fingerprint();
    const absl::Status status =
        publisher->Next(have_run, have_version, have_fingerprint, absl::ZeroDuration(), &out);
    if (!status.ok() || out.empty()) Die("the publisher has no update to record");
    return *out.back();
  };
  recording.first_snapshot = next(0);

  // A top-k step of ratio r changes at most KeepCount(n, r) entries of each
  // parameter tensor; buffers stay (inference-mode statistics).
  std::mt19937_64 rng(kSeed);
  std::normal_distribution<float> noise(0.0f, 1e-2f);
  TensorViews views = trainer->Views();
  int64_t bytes = 0;
  double entries = 0;
  while (static_cast<int64_t>(recording.updates.size()) < wanted) {
    for (int t = 0; t < trainer->num_parameter_tensors(); ++t) {
      const absl::Span<float> tensor = views[t];
      std::uniform_int_distribution<size_t> pick(0, tensor.size() - 1);
      const int64_t k = KeepCount(static_cast<int64_t>(tensor.size()), ratio);
      for (int64_t j = 0; j < k; ++j) tensor[pick(rng)] += noise(rng);
    }
    const UpdatePublisher::PublishResult published =
        ValueOrDie(publisher->Publish(AsConst(views)), "publishing");
    if (!published.published) continue;
    recording.updates.push_back(next(published.version - 1));
    if (recording.updates.back().snapshot()) Die("recorded a snapshot, not an update");
    bytes += static_cast<int64_t>(recording.updates.back().ByteSizeLong());
    entries += static_cast<double>(published.entries);
    if (bytes >= max_bytes || MsSince(start) >= max_seconds * 1000) break;
  }
  recording.last_snapshot = next(0);
  const double n = static_cast<double>(std::max<size_t>(1, recording.updates.size()));
  recording.mean_update_bytes = static_cast<double>(bytes) / n;
  recording.mean_entries = entries / n;
  recording.record_s = MsSince(start) / 1000;
  return recording;
}

// ------------------------------------------------------------- freshness ----

// When each version was sent, began applying, and became visible.
// This class is thread-safe.
class FreshnessLog {
 public:
  void Sent(uint64_t version, absl::Time at) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    sent_[version] = at;
    max_sent_ = std::max(max_sent_, version);
  }

  void Visible(uint64_t version, absl::Time at, absl::Duration apply)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    visible_[version] = at;
    apply_[version] = apply;
  }

  // Waits up to `timeout` for a version newer than `seen` to be sent; the
  // newest sent.
  uint64_t AwaitSentAfter(uint64_t seen, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto newer = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return max_sent_ > seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
    return max_sent_;
  }

  struct Stats {
    std::vector<double> visible_ms;      // sent -> visible, per version
    std::vector<double> apply_ms;  // the update's share of its apply
    int64_t sent = 0;
    int64_t visible = 0;
    absl::Time first_sent = absl::InfiniteFuture();
    absl::Time last_visible = absl::InfinitePast();
  };

  // Versions [first, last].
  Stats Range(uint64_t first, uint64_t last) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    Stats stats;
    for (uint64_t v = first; v <= last && first != 0; ++v) {
      auto sent = sent_.find(v);
      if (sent == sent_.end()) continue;
      ++stats.sent;
      stats.first_sent = std::min(stats.first_sent, sent->second);
      auto visible = visible_.find(v);
      if (visible == visible_.end()) continue;
      ++stats.visible;
      stats.last_visible = std::max(stats.last_visible, visible->second);
      stats.visible_ms.push_back(absl::ToDoubleMilliseconds(visible->second - sent->second));
      stats.apply_ms.push_back(absl::ToDoubleMilliseconds(apply_.at(v)));
    }
    return stats;
  }

 private:
  // Protects the maps.
  mutable absl::Mutex mu_;
  std::unordered_map<uint64_t, absl::Time> sent_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, absl::Time> visible_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, absl::Duration> apply_ ABSL_GUARDED_BY(mu_);
  uint64_t max_sent_ ABSL_GUARDED_BY(mu_) = 0;
};

// Told by the subscriber of every update the server applied, with the
// time it became visible to Predict (the swap) and its share of the apply;
// records them in the log. Counts swaps (updates applied as one batch share
// their visible time). Runs on the apply thread; this class is thread-safe.
class FreshnessObserver final : public UpdateSubscriber::Observer {
 public:
  explicit FreshnessObserver(FreshnessLog* log) : log_(log) {}

  void Applied(const Update& update, uint64_t /*wire_bytes*/, absl::Duration apply_time,
               absl::Time applied_at) override {
    log_->Visible(update.version(), applied_at, apply_time);
    if (applied_at != last_applied_at_) ++swaps_;
    last_applied_at_ = applied_at;
    ++updates_;
  }

  uint64_t swaps() const { return swaps_.load(); }
  uint64_t updates() const { return updates_.load(); }

 private:
  FreshnessLog* const log_;
  absl::Time last_applied_at_;  // apply thread only
  std::atomic<uint64_t> swaps_{0};
  std::atomic<uint64_t> updates_{0};
};

// ------------------------------------------------- replaying publisher ----

// The trainer's UpdateService, replaying a recording instead of training:
// a subscriber holding nothing gets the first snapshot, then the updates
// of each Replay() job, paced, each re-stamped with publish_time_us at the
// moment it is written. One subscriber at a time. This class is
// thread-safe; the recording is touched only by the subscription's gRPC
// thread.
class ReplayingPublisher final : public UpdateService::Service {
 public:
  struct Job {
    double rate = 0;       // per second; 0: as fast as the stream takes them
    int64_t count = 0;     // updates (or snapshots) to send at most
    bool reload = false;   // send the last snapshot instead of each delta
    absl::Time deadline;   // send nothing after
  };
  struct JobResult {
    int64_t sent = 0;
    uint64_t first_version = 0;  // 0 when none was sent
    uint64_t last_version = 0;
    absl::Duration sending;      // first send to last send
  };

  ReplayingPublisher(Recording* recording, FreshnessLog* log)
      : recording_(recording), log_(log) {}

  grpc::Status SubscribeUpdates(grpc::ServerContext* context, const SubscribeRequest* request,
                                grpc::ServerWriter<Update>* writer) override {
    if (request->have_version() != 0) {
      // A server rejected something and resubscribed: the recording cannot
      // go back, and the figures would be wrong.
      const std::string why =
          absl::StrCat("the server resubscribed from version ", request->have_version(),
                       ": it rejected what followed (see its warning)");
      absl::MutexLock lock(&mu_);
      failure_ = why;
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why);
    }
    Update& snapshot = recording_->first_snapshot;
    snapshot.set_publish_time_us(absl::ToUnixMicros(absl::Now()));
    log_->Sent(snapshot.version(), absl::Now());
    if (!writer->Write(snapshot)) return grpc::Status::OK;
    uint64_t version = snapshot.version();
    while (!context->IsCancelled()) {
      Job job;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !jobs_.empty() || closed_;
        };
        if (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100))) continue;
        if (closed_) break;
        job = jobs_.front();
        jobs_.pop_front();
      }
      JobResult result;
      const absl::Time start = absl::Now();
      absl::Time last = start;
      bool open = true;
      for (int64_t i = 0; i < job.count; ++i) {
        if (!job.reload && next_ >= recording_->updates.size()) break;
        // A Write() blocks while the server is too slow to take more (flow
        // control): the deadline ends the job whatever its pace.
        if (absl::Now() >= job.deadline) break;
        if (job.rate > 0) {
          const absl::Time due = start + absl::Seconds(static_cast<double>(i) / job.rate);
          if (due >= job.deadline) break;
          absl::SleepFor(due - absl::Now());
        }
        Update* update = job.reload ? &recording_->last_snapshot
                                    : &recording_->updates[next_++];
        // A snapshot replaces whatever the server holds: any version
        // number will do, once the payload checksum covers it.
        if (job.reload) {
          update->set_version(version + 1);
          SealUpdate(update);
        }
        last = absl::Now();
        update->set_publish_time_us(absl::ToUnixMicros(last));
        log_->Sent(update->version(), last);
        if (!writer->Write(*update)) {
          open = false;
          break;
        }
        version = update->version();
        if (result.first_version == 0) result.first_version = version;
        result.last_version = version;
        ++result.sent;
      }
      result.sending = last - start;
      absl::MutexLock lock(&mu_);
      results_.push_back(result);
      if (!open) break;
    }
    return grpc::Status::OK;
  }

  // Queues a job for the subscription.
  void Replay(const Job& job) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(job);
  }

  // Waits for the oldest job not yet collected to finish; exits the bench
  // when the server rejected an update instead.
  JobResult Collect() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !results_.empty() || !failure_.empty();
    };
    mu_.Await(absl::Condition(&done));
    if (results_.empty()) Die(failure_);
    JobResult result = results_.front();
    results_.pop_front();
    return result;
  }

  // Recorded updates not replayed yet (read between jobs).
  int64_t remaining() const {
    return static_cast<int64_t>(recording_->updates.size() - next_);
  }

  // Ends the subscription.
  void Close() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

 private:
  Recording* const recording_;
  FreshnessLog* const log_;
  // Subscription thread only.
  size_t next_ = 0;

  // Protects the job queues.
  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<JobResult> results_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Why the replay cannot go on; empty while it can.
  std::string failure_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------- client ----

struct LoadResult {
  std::vector<double> latency_ms;
  int64_t errors = 0;
  double seconds = 0;   // from the first send to the end of the load
  int64_t examples = 0; // in successful responses
  std::string first_error;
};

// An asynchronous Predict client on one completion queue, driven by the
// calling thread.
class LoadClient {
 public:
  explicit LoadClient(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    stub_ = PredictionService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }

  // Round trips of a Predict without inputs, which the server answers with
  // INVALID_ARGUMENT before touching the model: gRPC's share of a call.
  std::vector<double> EmptyRoundTrips(absl::Duration duration) {
    std::vector<double> ms;
    const PredictRequest empty;
    const SteadyClock::time_point start = SteadyClock::now();
    while (MsSince(start) < absl::ToDoubleMilliseconds(duration)) {
      grpc::ClientContext context;
      PredictResponse response;
      const SteadyClock::time_point t = SteadyClock::now();
      const grpc::Status status = stub_->Predict(&context, empty, &response);
      ms.push_back(MsSince(t));
      if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
        Die(absl::StrCat("an empty Predict was answered ", status.error_code(), " ",
                         status.error_message()));
      }
    }
    return ms;
  }

  // `concurrency` calls in flight until `duration` has passed, then until
  // the last one is answered (every call sent is counted: a cell whose
  // calls take longer than `duration` still reports them).
  LoadResult ClosedLoop(const PredictRequest& request, int concurrency,
                        absl::Duration duration) {
    LoadResult result;
    grpc::CompletionQueue cq;
    const SteadyClock::time_point start = SteadyClock::now();
    const SteadyClock::time_point end = start + absl::ToChronoNanoseconds(duration);
    SteadyClock::time_point last = start;
    int outstanding = 0;
    for (int i = 0; i < concurrency; ++i) {
      StartCall(request, SteadyClock::now(), &cq);
      ++outstanding;
    }
    while (outstanding > 0) {
      void* tag = nullptr;
      bool ok = false;
      if (!cq.Next(&tag, &ok)) break;
      --outstanding;
      last = SteadyClock::now();
      Finish(static_cast<Call*>(tag), true, &result);
      if (last < end) {
        StartCall(request, last, &cq);
        ++outstanding;
      }
    }
    result.seconds = std::chrono::duration<double>(last - start).count();
    cq.Shutdown();
    Drain(&cq);
    return result;
  }

  // Calls at `rate` per second (exponential gaps, seeded) for `duration`;
  // latency from each call's scheduled time.
  LoadResult OpenLoop(const PredictRequest& request, double rate, absl::Duration duration) {
    LoadResult result;
    grpc::CompletionQueue cq;
    std::mt19937_64 rng(kSeed);
    std::exponential_distribution<double> gap(rate);
    const SteadyClock::time_point start = SteadyClock::now();
    const SteadyClock::time_point end = start + absl::ToChronoNanoseconds(duration);
    const SteadyClock::time_point drain_end = end + absl::ToChronoNanoseconds(kDrainTimeout);
    SteadyClock::time_point due = start;
    int64_t outstanding = 0;
    while (true) {
      SteadyClock::time_point now = SteadyClock::now();
      while (due <= now && due < end) {
        StartCall(request, due, &cq);
        ++outstanding;
        due += std::chrono::duration_cast<SteadyClock::duration>(
            std::chrono::duration<double>(gap(rng)));
      }
      if (due >= end && outstanding == 0) break;
      const SteadyClock::time_point wake = due < end ? due : drain_end;
      if (now >= drain_end) break;
      void* tag = nullptr;
      bool ok = false;
      const grpc::CompletionQueue::NextStatus status =
          cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + (wake - now));
      if (status == grpc::CompletionQueue::SHUTDOWN) break;
      if (status == grpc::CompletionQueue::GOT_EVENT) {
        --outstanding;
        Finish(static_cast<Call*>(tag), true, &result);
      }
    }
    result.seconds = std::chrono::duration<double>(end - start).count();
    result.errors += outstanding;  // still unanswered after the drain timeout
    cq.Shutdown();
    Drain(&cq);
    return result;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    PredictResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<PredictResponse>> reader;
    SteadyClock::time_point start;
  };

  void StartCall(const PredictRequest& request, SteadyClock::time_point start,
                 grpc::CompletionQueue* cq) {
    auto* call = new Call;
    call->start = start;
    call->reader = stub_->PrepareAsyncPredict(&call->context, request, cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  }

  static void Finish(Call* call, bool count, LoadResult* result) {
    const std::unique_ptr<Call> owned(call);
    if (!count) return;
    if (!call->status.ok()) {
      if (result->errors++ == 0) result->first_error = call->status.error_message();
      return;
    }
    result->latency_ms.push_back(MsSince(call->start));
    result->examples += call->response.predictions_size();
  }

  static void Drain(grpc::CompletionQueue* cq) {
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) delete static_cast<Call*>(tag);
  }

  std::unique_ptr<PredictionService::Stub> stub_;
};

PredictRequest MakeRequest(const ModelSpec& spec, int batch) {
  PredictRequest request;
  Tensor* inputs = request.mutable_inputs();
  inputs->add_shape(batch);
  int64_t per_example = 1;
  for (int64_t d : spec.input_shape()) {
    inputs->add_shape(d);
    per_example *= d;
  }
  std::mt19937_64 rng(kSeed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (int64_t i = 0; i < batch * per_example; ++i) inputs->add_values(pixel(rng));
  return request;
}

// ---------------------------------------------------------- bench server ----

// The serving path of a server daemon, in-process, following the replaying
// publisher. Destroyed in reverse: the subscriber stops before the model
// goes.
class BenchServer {
 public:
  BenchServer(Recording* recording, const PredictBatcher::Options& batching)
      : publisher_(recording, &log_), observer_(&log_) {
    GrpcServerOptions trainer_options;
    trainer_options.reflection = false;
    StartedServer trainer =
        ValueOrDie(StartGrpcServer("127.0.0.1:0", {&publisher_}, trainer_options),
                   "starting the replaying publisher");
    trainer_server_ = std::move(trainer.server);

    live_ = ValueOrDie(LiveModel::Create(LiveModel::Options()), "creating the live model");
    const std::string trainer_address = absl::StrCat("127.0.0.1:", trainer.port);
    UpdateSubscriber::Options subscriber_options;
    subscriber_options.trainer = trainer_address;
    subscriber_options.name = "serve_bench";
    subscriber_options.observer = &observer_;
    subscriber_ = ValueOrDie(
        UpdateSubscriber::Create(subscriber_options,
                                 UpdateSubscriber::MakeChannel(trainer_address), live_.get()),
        "creating the subscriber");
    prediction_service_ =
        std::make_unique<PredictionServiceImpl>(live_.get(), &AccessPolicy::Open(), batching);
    GrpcServerOptions server_options;
    server_options.reflection = false;
    server_options.max_receive_message_bytes = 1 << 30;
    StartedServer server = ValueOrDie(
        StartGrpcServer("127.0.0.1:0", {prediction_service_.get()}, server_options),
        "starting the server");
    server_ = std::move(server.server);
    port_ = server.port;
    subscriber_->Start();
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (live_->Current() == nullptr) {
      if (absl::Now() > deadline) Die("the server never loaded the first snapshot");
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  ~BenchServer() {
    subscriber_->Stop();
    publisher_.Close();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    trainer_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  ReplayingPublisher& publisher() { return publisher_; }
  const FreshnessLog& log() const { return log_; }
  const LiveModel& live() const { return *live_; }
  uint64_t resyncs() const { return subscriber_->resyncs(); }
  const FreshnessObserver& observer() const { return observer_; }
  const PredictBatcher& batcher() const { return prediction_service_->batcher(); }

  // Waits until `version` is visible; false after `timeout`.
  bool AwaitVersion(uint64_t version, absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const std::shared_ptr<const LiveModel::Version> current = live_->Current();
      if (current != nullptr && current->version >= version) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

 private:
  FreshnessLog log_;
  ReplayingPublisher publisher_;
  FreshnessObserver observer_;
  std::unique_ptr<grpc::Server> trainer_server_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<UpdateSubscriber> subscriber_;
  std::unique_ptr<PredictionServiceImpl> prediction_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// ------------------------------------------------- where the time goes ----

// What LiveModel::Apply costs per update in-process (no gRPC, no Predict),
// split into its parts: the update path's ceiling on this machine.
void RunApplyBreakdown(const char* label, const Recording& recording) {
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(recording.updates.size()), 2000);
  struct Row {
    std::string path;
    std::vector<double> us;
  };
  std::vector<Row> rows;
  auto applies = [&](const std::string& path, int64_t count, bool pin) {
    std::unique_ptr<LiveModel> live =
        ValueOrDie(LiveModel::Create(LiveModel::Options()), "creating a live model");
    if (!live->Apply(recording.first_snapshot).ok()) Die("the first snapshot does not apply");
    // Holding the two previous versions, as Predicts still running on
    // them do, keeps them from being recycled: the apply takes another
    // version from the pool.
    std::deque<std::shared_ptr<const LiveModel::Version>> readers;
    Row row{path, {}};
    for (int64_t i = 0; i < count; ++i) {
      if (pin) {
        readers.push_back(live->Current());
        if (readers.size() > 2) readers.pop_front();
      }
      const SteadyClock::time_point start = SteadyClock::now();
      const absl::Status applied = live->Apply(recording.updates[i]);
      row.us.push_back(MsSince(start) * 1000);
      if (!applied.ok()) Die(absl::StrCat("apply: ", applied.ToString()));
    }
    rows.push_back(std::move(row));
    return live;
  };
  std::unique_ptr<LiveModel> live =
      applies("LiveModel::Apply, delta, previous version recycled", n, false);
  applies("LiveModel::Apply, delta, the two previous versions still read (pool)", n, true);
  {
    // Updates that queued while one applied: one ApplyBatch each 8.
    std::unique_ptr<LiveModel> batched =
        ValueOrDie(LiveModel::Create(LiveModel::Options()), "creating a live model");
    if (!batched->Apply(recording.first_snapshot).ok()) Die("the first snapshot does not apply");
    constexpr int64_t kQueued = 8;
    Row row{absl::StrCat("LiveModel::ApplyBatch of ", kQueued, " queued deltas, per delta"),
            {}};
    for (int64_t i = 0; i + kQueued <= n; i += kQueued) {
      const SteadyClock::time_point start = SteadyClock::now();
      const absl::Status applied = batched->ApplyBatch(
          absl::MakeConstSpan(recording.updates).subspan(i, kQueued));
      const double us = MsSince(start) * 1000 / kQueued;
      if (!applied.ok()) Die(absl::StrCat("apply batch: ", applied.ToString()));
      for (int64_t k = 0; k < kQueued; ++k) row.us.push_back(us);
    }
    rows.push_back(std::move(row));
  }

  const std::shared_ptr<const LiveModel::Version> current = live->Current();
  const ModelSpec& spec = current->model->spec();
  Row decode{"DecodeUpdate (validate, Rice-decode)", {}};
  for (int64_t i = 0; i < n; ++i) {
    const SteadyClock::time_point start = SteadyClock::now();
    const bool ok = DecodeUpdate(recording.updates[i], spec).ok();
    decode.us.push_back(MsSince(start) * 1000);
    if (!ok) Die("decode failed");
  }
  rows.push_back(std::move(decode));
  Row checksum{"Model::Checksum (verify after apply)", {}};
  for (int i = 0; i < 20; ++i) {
    const SteadyClock::time_point start = SteadyClock::now();
    const uint64_t sum = current->model->Checksum();
    checksum.us.push_back(MsSince(start) * 1000);
    if (sum != current->checksum) Die("checksum changed");
  }
  rows.push_back(std::move(checksum));
  Row reload{"LiveModel::Apply, full snapshot (reload)", {}};
  for (int i = 0; i < 5; ++i) {
    std::unique_ptr<LiveModel> fresh =
        ValueOrDie(LiveModel::Create(LiveModel::Options()), "creating a live model");
    const SteadyClock::time_point start = SteadyClock::now();
    const absl::Status applied = fresh->Apply(recording.last_snapshot);
    reload.us.push_back(MsSince(start) * 1000);
    if (!applied.ok()) Die(absl::StrCat("snapshot: ", applied.ToString()));
  }
  rows.push_back(std::move(reload));

  Table table({"<step", "n", "p50 us", "p99 us", "mean us", "per second (1 / mean)"});
  for (const Row& row : rows) {
    const Percentiles p = Summarize(row.us);
    double sum = 0;
    for (double v : row.us) sum += v;
    const double mean = sum / static_cast<double>(std::max<size_t>(1, row.us.size()));
    table.AddRow({row.path, absl::StrCat(p.n), Num(p.p50, 1), Num(p.p99, 1), Num(mean, 1),
                  Num(1e6 / mean, 0)});
  }
  std::printf(
      "## %s: where an update's time goes (in-process, one thread, no gRPC, "
      "no Predict load)\n\n",
      label);
  table.Print();
}

// ----------------------------------------------------------------- bench ----

struct Config {
  absl::Duration duration;
  std::vector<int> concurrency;
  std::vector<int> batches;
  std::vector<double> rates;  // -1: auto
  std::vector<double> update_rates;  // -1: max
  std::vector<double> reload_rates;
  double predict_load = 0.5;
  double deploy_ratio = 0.001;
  int64_t fast_updates = 0;
  int64_t max_stream_bytes = 0;
  double max_record_s = 0;
  int rounds = 1;
  absl::Duration catch_up;
  std::vector<int> batching_concurrency;
  absl::Duration batch_timeout;
  int64_t max_batch = 64;
  int batching_threads = 0;
};

const char* Label(const std::string& architecture) {
  if (architecture == "lenet5") return "LeNet-5";
  if (architecture == "resnet18") return "ResNet-18";
  return architecture.c_str();
}

// What the targets table needs from one model's run.
struct ModelFigures {
  std::string label;
  double bare_b1_p50 = NAN, server_b1_p50 = NAN, grpc_floor_p50 = NAN;
  double p99_none = NAN, p99_500 = NAN;
  double median_p99_none = NAN, median_p99_500 = NAN;  // median of the rounds' p99
  double fresh_p99_500 = NAN;
  double sustained = NAN;
  double batching_gain_c64 = NAN;
};

// One row of the updates table: the rounds of one kind and rate, pooled.
struct UpdatePhase {
  int rounds = 0;
  std::vector<double> latency_ms;      // Predict
  std::vector<double> round_p99_ms;    // Predict p99 of each round
  std::vector<double> fresh_ms;        // publish -> visible
  std::vector<double> apply_ms;        // the update's share of its apply
  uint64_t updates = 0, swaps = 0;     // applied, and the swaps that made them visible
  int64_t errors = 0;
  int64_t sent = 0;
  double send_gaps = 0;  // sent updates minus one, per round
  double sending_s = 0;  // first to last send, per round
  int64_t visible = 0;
  double applying_s = 0;  // first send to last visible, per round
  bool caught_up = true;
};

// The median of the rounds' Predict p99: one round that caught a stall of
// the machine moves it less than it moves the pooled p99.
double MedianRoundP99(const UpdatePhase& phase) {
  if (phase.round_p99_ms.empty()) return NAN;
  std::vector<double> p99 = phase.round_p99_ms;
  std::sort(p99.begin(), p99.end());
  const size_t n = p99.size();
  return n % 2 == 1 ? p99[n / 2] : (p99[n / 2 - 1] + p99[n / 2]) / 2;
}

void RunUpdatePhase(BenchServer* server, LoadClient* client, const PredictRequest& request,
                    double predict_rate, double update_rate, bool reload,
                    const Config& config, UpdatePhase* phase) {
  ReplayingPublisher::Job job;
  job.reload = reload;
  job.rate = update_rate < 0 ? 0 : update_rate;
  job.count = update_rate < 0
                  ? std::min(config.fast_updates, server->publisher().remaining())
                  : static_cast<int64_t>(std::ceil(update_rate *
                                                   absl::ToDoubleSeconds(config.duration)));
  job.deadline = absl::Now() + config.duration;
  const uint64_t updates_before = server->observer().updates();
  const uint64_t swaps_before = server->observer().swaps();
  if (job.count > 0) server->publisher().Replay(job);
  const LoadResult load = client->OpenLoop(request, predict_rate, config.duration);
  ++phase->rounds;
  phase->latency_ms.insert(phase->latency_ms.end(), load.latency_ms.begin(),
                           load.latency_ms.end());
  phase->round_p99_ms.push_back(Summarize(load.latency_ms).p99);
  phase->errors += load.errors;
  if (job.count == 0) return;
  const ReplayingPublisher::JobResult sent = server->publisher().Collect();
  if (sent.sent == 0) return;
  phase->caught_up =
      server->AwaitVersion(sent.last_version, config.catch_up) && phase->caught_up;
  phase->updates += server->observer().updates() - updates_before;
  phase->swaps += server->observer().swaps() - swaps_before;
  const FreshnessLog::Stats fresh = server->log().Range(sent.first_version, sent.last_version);
  phase->fresh_ms.insert(phase->fresh_ms.end(), fresh.visible_ms.begin(),
                         fresh.visible_ms.end());
  phase->apply_ms.insert(phase->apply_ms.end(), fresh.apply_ms.begin(), fresh.apply_ms.end());
  phase->sent += sent.sent;
  phase->send_gaps += static_cast<double>(sent.sent - 1);
  phase->sending_s += absl::ToDoubleSeconds(sent.sending);
  if (fresh.visible > 1) {
    phase->visible += fresh.visible;
    phase->applying_s += absl::ToDoubleSeconds(fresh.last_visible - fresh.first_sent);
  }
}

ModelFigures RunModel(const std::string& architecture, const Config& config) {
  const char* label = Label(architecture);
  ModelFigures figures;
  figures.label = label;
  std::printf("# %s\n\n", label);

  // How many updates the phases can replay.
  int64_t per_round = config.fast_updates;
  for (double r : config.update_rates) {
    if (r > 0) {
      per_round += static_cast<int64_t>(std::ceil(r * absl::ToDoubleSeconds(config.duration)));
    }
  }
  const int64_t wanted = per_round * config.rounds;
  Recording recording = Record(architecture, wanted, config.deploy_ratio,
                               config.max_stream_bytes, config.max_record_s);
  const ModelSpec& spec = recording.first_snapshot.spec();
  int64_t parameters = 0;
  for (const TensorSpec& t : spec.tensors()) parameters += TensorSize(t);
  std::printf(
      "recorded %zu updates in %.1f s: %s parameters and buffers, %.0f entries "
      "and %.1f KB per update (fp32, deploy ratio %g); snapshot %.1f MB\n\n",
      recording.updates.size(), recording.record_s, absl::StrCat(parameters).c_str(),
      recording.mean_entries, recording.mean_update_bytes / 1024, config.deploy_ratio,
      static_cast<double>(recording.last_snapshot.ByteSizeLong()) / (1 << 20));

  // 1. Bare forward.
  std::unique_ptr<Model> bare =
      ValueOrDie(Model::Create(architecture, kSeed), "creating " + architecture);
  bare->SetTraining(false);
  Table forward({"batch", "reps", "forward p50 ms", "forward p99 ms", "Model::Predict p50 ms",
                 "examples/s"});
  std::unordered_map<int, double> bare_p50;
  for (int batch : config.batches) {
    const PredictRequest request = MakeRequest(spec, batch);
    const torch::Tensor input =
        torch::from_blob(const_cast<float*>(request.inputs().values().data()),
                         std::vector<int64_t>(request.inputs().shape().begin(),
                                              request.inputs().shape().end()))
            .clone();
    std::vector<double> forward_ms, predict_ms;
    const SteadyClock::time_point start = SteadyClock::now();
    const double budget_ms = absl::ToDoubleMilliseconds(config.duration) / 2;
    {
      c10::InferenceMode guard;
      for (int i = 0; i < 3; ++i) bare->Forward(input);
      while (MsSince(start) < budget_ms || forward_ms.size() < 5) {
        const SteadyClock::time_point t = SteadyClock::now();
        const torch::Tensor logits = bare->Forward(input);
        forward_ms.push_back(MsSince(t));
      }
    }
    const std::vector<int64_t> shape(request.inputs().shape().begin(),
                                     request.inputs().shape().end());
    const absl::Span<const float> values(request.inputs().values().data(),
                                         request.inputs().values_size());
    const SteadyClock::time_point predict_start = SteadyClock::now();
    while (MsSince(predict_start) < budget_ms || predict_ms.size() < 5) {
      const SteadyClock::time_point t = SteadyClock::now();
      ValueOrDie(bare->Predict(shape, values), "Model::Predict");
      predict_ms.push_back(MsSince(t));
    }
    const Percentiles f = Summarize(forward_ms);
    const Percentiles p = Summarize(predict_ms);
    bare_p50[batch] = f.p50;
    forward.AddRow({absl::StrCat(batch), absl::StrCat(f.n), Num(f.p50, 3), Num(f.p99, 3),
                    Num(p.p50, 3), Num(batch * 1000.0 / f.p50, 0)});
  }
  std::printf(
      "## %s: bare LibTorch forward (in-process, inference mode, no gRPC; "
      "Model::Predict adds validation, softmax and arg-max)\n\n",
      label);
  forward.Print();
  figures.bare_b1_p50 = bare_p50.count(1) ? bare_p50[1] : NAN;

  RunApplyBreakdown(label, recording);

  BenchServer server(&recording, PredictBatcher::Options());
  LoadClient client(server.target());
  const Percentiles floor = Summarize(client.EmptyRoundTrips(config.duration / 2));
  figures.grpc_floor_p50 = floor.p50;
  std::printf(
      "gRPC round trip without inference (a Predict without inputs, answered "
      "INVALID_ARGUMENT by the server): p50 %s ms, p99 %s ms over %zu calls\n\n",
      Num(floor.p50, 3).c_str(), Num(floor.p99, 3).c_str(), floor.n);

  // 2. Closed loop.
  Table closed({"concurrency", "batch", "requests", "errors", "p50 ms", "p99 ms", "p999 ms",
                "requests/s", "examples/s", "p50 / bare forward"});
  double peak_b1 = NAN;
  int peak_concurrency = 0;  // where peak_b1 was measured
  for (int batch : config.batches) {
    const PredictRequest request = MakeRequest(spec, batch);
    for (int concurrency : config.concurrency) {
      const LoadResult r = client.ClosedLoop(request, concurrency, config.duration);
      const Percentiles p = Summarize(r.latency_ms);
      const double rps = static_cast<double>(p.n) / r.seconds;
      if (batch == 1 && concurrency == 1) figures.server_b1_p50 = p.p50;
      if (batch == 1 && (concurrency == 8 || std::isnan(peak_b1))) {
        peak_b1 = rps;
        peak_concurrency = concurrency;
      }
      closed.AddRow({absl::StrCat(concurrency), absl::StrCat(batch), absl::StrCat(p.n),
                     absl::StrCat(r.errors), Num(p.p50, 3), Num(p.p99, 3), Num(p.p999, 3),
                     Num(rps, 0), Num(static_cast<double>(r.examples) / r.seconds, 0),
                     Ratio(p.p50 / bare_p50[batch])});
      if (r.errors > 0) std::printf("first error: %s\n", r.first_error.c_str());
    }
  }
  std::printf(
      "## %s: closed loop, no updates (calls sent for %s s per cell, all "
      "counted; requests/s over first send to last answer; latency from send "
      "to answer)\n\n",
      label, Num(absl::ToDoubleSeconds(config.duration), 1).c_str());
  closed.Print();
  if (std::isnan(peak_b1)) Die("--batches must include 1");

  // 3. Open loop.
  std::vector<double> rates;
  for (double r : config.rates) {
    if (r < 0) {
      for (double f : {0.25, 0.5, 0.75}) rates.push_back(std::round(f * peak_b1));
    } else if (r > 0) {
      rates.push_back(r);
    }
  }
  const PredictRequest one = MakeRequest(spec, 1);
  Table open({"offered/s", "answered/s", "errors", "p50 ms", "p99 ms", "p999 ms"});
  for (double rate : rates) {
    const LoadResult r = client.OpenLoop(one, rate, config.duration);
    const Percentiles p = Summarize(r.latency_ms);
    open.AddRow({Num(rate, 0), Num(static_cast<double>(p.n) / r.seconds, 0),
                 absl::StrCat(r.errors), Num(p.p50, 3), Num(p.p99, 3), Num(p.p999, 3)});
  }
  std::printf(
      "## %s: open loop, batch 1, no updates (Poisson arrivals; latency from "
      "the scheduled send time; reference: closed-loop batch-1 throughput at "
      "concurrency %d = %s/s)\n\n",
      label, peak_concurrency, Num(peak_b1, 0).c_str());
  open.Print();

  // 3b. Dynamic batching: the same closed loop of batch-1 calls against a
  // second server that merges waiting requests.
  {
    PredictBatcher::Options batching;
    batching.dynamic_batching = true;
    batching.batch_timeout = config.batch_timeout;
    batching.max_batch = config.max_batch;
    batching.threads = config.batching_threads;
    BenchServer batched_server(&recording, batching);
    LoadClient batched_client(batched_server.target());
    Table table({"concurrency", "<dynamic batching", "requests", "errors", "p50 ms", "p99 ms",
                 "p999 ms", "requests/s", "mean batch", "requests/s vs none"});
    for (int concurrency : config.batching_concurrency) {
      const LoadResult none = client.ClosedLoop(one, concurrency, config.duration);
      const uint64_t batches_before = batched_server.batcher().batches_run();
      const uint64_t requests_before = batched_server.batcher().requests_run();
      const LoadResult merged = batched_client.ClosedLoop(one, concurrency, config.duration);
      const double batches =
          static_cast<double>(batched_server.batcher().batches_run() - batches_before);
      const double requests =
          static_cast<double>(batched_server.batcher().requests_run() - requests_before);
      const Percentiles pn = Summarize(none.latency_ms);
      const Percentiles pm = Summarize(merged.latency_ms);
      const double rps_none = static_cast<double>(pn.n) / none.seconds;
      const double rps_merged = static_cast<double>(pm.n) / merged.seconds;
      table.AddRow({absl::StrCat(concurrency), "off", absl::StrCat(pn.n),
                    absl::StrCat(none.errors), Num(pn.p50, 3), Num(pn.p99, 3), Num(pn.p999, 3),
                    Num(rps_none, 0), "1", "1.00x"});
      table.AddRow({absl::StrCat(concurrency),
                    absl::StrCat("on (", absl::ToInt64Microseconds(config.batch_timeout),
                                 " us, max ", config.max_batch, ", ",
                                 batched_server.batcher().threads(), " threads)"),
                    absl::StrCat(pm.n), absl::StrCat(merged.errors), Num(pm.p50, 3),
                    Num(pm.p99, 3), Num(pm.p999, 3), Num(rps_merged, 0),
                    batches > 0 ? Num(requests / batches, 1) : "-",
                    Ratio(rps_merged / rps_none)});
      if (concurrency == 64) figures.batching_gain_c64 = rps_merged / rps_none;
    }
    std::printf(
        "## %s: dynamic batching, closed loop of batch-1 Predicts (%s s per cell; "
        "mean batch = requests per forward pass)\n\n",
        label, Num(absl::ToDoubleSeconds(config.duration), 1).c_str());
    table.Print();
  }

  // 4. Deltas, then 5. full reloads.
  const double predict_rate = std::max(1.0, std::round(config.predict_load * peak_b1));
  Table updates({"<updates", "offered/s", "rounds", "sent", "sent/s", "applied/s", "fresh p50 ms",
                 "fresh p99 ms", "apply p99 ms", "updates / swap", "Predict p50 ms", "Predict p99 ms",
                 "Predict p999 ms", "p99 / no updates", "median round p99 ms",
                 "median round p99 / no updates"});
  std::unordered_map<double, UpdatePhase> delta_at, reload_at;
  double p99_none = NAN, median_p99_none = NAN;
  auto add_row = [&](const std::string& kind, double rate, const UpdatePhase& phase) {
    const Percentiles load = Summarize(phase.latency_ms);
    const Percentiles fresh = Summarize(phase.fresh_ms);
    const Percentiles apply = Summarize(phase.apply_ms);
    updates.AddRow(
        {kind + (phase.caught_up ? "" : " (lagging)"), rate < 0 ? "max" : Num(rate, 0),
         absl::StrCat(phase.rounds), absl::StrCat(phase.sent),
         phase.sending_s > 0 ? Num(phase.send_gaps / phase.sending_s, 0) : "-",
         phase.applying_s > 0 ? Num(static_cast<double>(phase.visible) / phase.applying_s, 0)
                              : "-",
         Num(fresh.p50, 3), Num(fresh.p99, 3), Num(apply.p99, 3),
         phase.swaps > 0 ? Num(static_cast<double>(phase.updates) / phase.swaps, 1) : "-",
         Num(load.p50, 3),
         Num(load.p99, 3), Num(load.p999, 3), Ratio(load.p99 / p99_none),
         Num(MedianRoundP99(phase), 3), Ratio(MedianRoundP99(phase) / median_p99_none)});
  };
  // Rounds interleave the rates, so that a drift in the machine's load
  // hits every rate alike. Reloads replace the model with a snapshot that
  // the recorded deltas do not apply to: they come last.
  for (int round = 0; round < config.rounds; ++round) {
    for (double rate : config.update_rates) {
      RunUpdatePhase(&server, &client, one, predict_rate, rate, false, config,
                     &delta_at[rate]);
    }
  }
  for (int round = 0; round < config.rounds; ++round) {
    for (double rate : config.reload_rates) {
      if (rate <= 0) continue;
      RunUpdatePhase(&server, &client, one, predict_rate, rate, true, config,
                     &reload_at[rate]);
    }
  }
  if (delta_at.count(0)) {
    p99_none = Summarize(delta_at[0].latency_ms).p99;
    median_p99_none = MedianRoundP99(delta_at[0]);
  }
  for (double rate : config.update_rates) add_row("delta", rate, delta_at[rate]);
  for (double rate : config.reload_rates) {
    if (rate > 0) add_row("full reload", rate, reload_at[rate]);
  }
  if (delta_at.count(-1) && delta_at[-1].applying_s > 0) {
    figures.sustained = static_cast<double>(delta_at[-1].visible) / delta_at[-1].applying_s;
  }
  std::printf(
      "## %s: Predict (batch 1, open loop at %s/s) while updates arrive (%s s "
      "per round, rounds interleaved and pooled; sent/s and applied/s: "
      "first send to last send, and to last visible; fresh = publish -> "
      "visible to Predict, as the subscriber reports it; apply = the update's "
      "share of the LiveModel apply that made it visible; updates / swap: "
      "how many queued updates the subscriber applied as one; a full reload sends the whole model as a snapshot, which the "
      "server builds and swaps in)\n\n",
      label, Num(predict_rate, 0).c_str(),
      Num(absl::ToDoubleSeconds(config.duration), 1).c_str());
  updates.Print();
  if (server.resyncs() > 0) {
    std::printf("WARNING: the server rejected %llu updates\n\n",
                static_cast<unsigned long long>(server.resyncs()));
  }

  Table versus({"rate/s", "time to fresh p50: reload / delta", "p99: reload / delta",
                "Predict p99: reload / delta"});
  for (double rate : config.reload_rates) {
    if (reload_at.count(rate) == 0 || delta_at.count(rate) == 0) continue;
    const Percentiles dr = Summarize(delta_at[rate].fresh_ms);
    const Percentiles rr = Summarize(reload_at[rate].fresh_ms);
    const Percentiles dl = Summarize(delta_at[rate].latency_ms);
    const Percentiles rl = Summarize(reload_at[rate].latency_ms);
    versus.AddRow({Num(rate, 0), Ratio(rr.p50 / dr.p50), Ratio(rr.p99 / dr.p99),
                   Ratio(rl.p99 / dl.p99)});
  }
  std::printf("## %s: full reload against delta apply at the same cadence\n\n", label);
  versus.Print();

  figures.p99_none = p99_none;
  figures.median_p99_none = median_p99_none;
  if (delta_at.count(500)) {
    figures.p99_500 = Summarize(delta_at[500].latency_ms).p99;
    figures.median_p99_500 = MedianRoundP99(delta_at[500]);
    figures.fresh_p99_500 = Summarize(delta_at[500].fresh_ms).p99;
  }
  return figures;
}

void PrintTargets(const std::vector<ModelFigures>& all) {
  Table targets({"<model", "<target", "measured", "<met"});
  auto met = [](bool ok, double v) { return std::isnan(v) ? "-" : (ok ? "yes" : "NO"); };
  for (const ModelFigures& f : all) {
    const double p99_ratio = f.p99_500 / f.p99_none;
    targets.AddRow({f.label, "Predict p99, 500 updates/s / none <= 1.05x", Ratio(p99_ratio),
                    met(p99_ratio <= 1.05, p99_ratio)});
    const double median_ratio = f.median_p99_500 / f.median_p99_none;
    targets.AddRow({f.label, "the same, median of the rounds' p99 (robust to one stalled round)",
                    Ratio(median_ratio), met(median_ratio <= 1.05, median_ratio)});
    targets.AddRow({f.label, "freshness p99 at 500 updates/s <= 5 ms",
                    Num(f.fresh_p99_500, 3) + " ms",
                    met(f.fresh_p99_500 <= 5, f.fresh_p99_500)});
    targets.AddRow({f.label, "updates applied per second >= 10,000",
                    Num(f.sustained, 0), met(f.sustained >= 10000, f.sustained)});
    const double b1 = f.server_b1_p50 / f.bare_b1_p50;
    targets.AddRow({f.label, "server batch-1 p50 / bare forward p50 <= 1.3x", Ratio(b1),
                    met(b1 <= 1.3, b1)});
    const double served = (f.server_b1_p50 - f.grpc_floor_p50) / f.bare_b1_p50;
    targets.AddRow({f.label,
                    "(server batch-1 p50 - empty gRPC round trip p50) / bare forward p50",
                    Ratio(served), "(for reading)"});
    targets.AddRow({f.label, "dynamic batching, concurrency 64, batch 1: requests/s >= 3x",
                    Ratio(f.batching_gain_c64),
                    met(f.batching_gain_c64 >= 3, f.batching_gain_c64)});
  }
  std::printf("# Targets (issue 11, part 3; the update targets are stated for LeNet-5)\n\n");
  targets.Print();
}

}  // namespace
}  // namespace contrail

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (absl::GetFlag(FLAGS_threads) > 0) {
    contrail::SetLibTorchThreads(absl::GetFlag(FLAGS_threads));
  }
  const bool quick = absl::GetFlag(FLAGS_quick);
  contrail::Config config;
  config.duration = absl::Seconds(quick ? 1.0 : absl::GetFlag(FLAGS_duration_s));
  config.concurrency = contrail::IntList(
      quick ? std::vector<std::string>{"1", "8"} : absl::GetFlag(FLAGS_concurrency),
      "concurrency");
  config.batches = contrail::IntList(
      quick ? std::vector<std::string>{"1", "8"} : absl::GetFlag(FLAGS_batches), "batches");
  config.rates = contrail::RateList(absl::GetFlag(FLAGS_rates), "rates", "auto");
  config.update_rates =
      contrail::RateList(absl::GetFlag(FLAGS_update_rates), "update_rates", "max");
  config.reload_rates =
      contrail::RateList(absl::GetFlag(FLAGS_reload_rates), "reload_rates", "max");
  config.predict_load = absl::GetFlag(FLAGS_predict_load);
  config.deploy_ratio = absl::GetFlag(FLAGS_deploy_ratio);
  config.fast_updates = quick ? 2000 : absl::GetFlag(FLAGS_fast_updates);
  config.max_stream_bytes = absl::GetFlag(FLAGS_max_stream_mb) << 20;
  config.max_record_s = absl::GetFlag(FLAGS_max_record_s);
  config.rounds = quick ? 1 : std::max(1, absl::GetFlag(FLAGS_rounds));
  config.catch_up = absl::Seconds(absl::GetFlag(FLAGS_catch_up_s));
  config.batching_concurrency =
      contrail::IntList(absl::GetFlag(FLAGS_batching_concurrency), "batching_concurrency");
  config.batch_timeout = absl::Microseconds(absl::GetFlag(FLAGS_batch_timeout_us));
  config.max_batch = absl::GetFlag(FLAGS_max_batch);
  config.batching_threads = absl::GetFlag(FLAGS_batching_threads);
  const std::vector<std::string> models =
      quick ? std::vector<std::string>{"lenet5"} : absl::GetFlag(FLAGS_models);

  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("# contrail serve_bench%s\n\n", quick ? " (--quick)" : "");
  std::printf(
      "machine: std::thread::hardware_concurrency() = %u, torch::get_num_threads() "
      "= %d (LibTorch CPU); load average at start %.2f %.2f %.2f\n\n",
      std::thread::hardware_concurrency(), torch::get_num_threads(), load[0], load[1],
      load[2]);
  const contrail::SteadyClock::time_point start = contrail::SteadyClock::now();
  std::vector<contrail::ModelFigures> figures;
  for (const std::string& model : models) {
    figures.push_back(contrail::RunModel(model, config));
  }
  contrail::PrintTargets(figures);
  getloadavg(load, 3);
  std::printf("load average at end %.2f %.2f %.2f; total benchmark time: %.1f s\n", load[0],
              load[1], load[2], contrail::MsSince(start) / 1000);
  return 0;
}
