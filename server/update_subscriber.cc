#include "server/update_subscriber.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/access_policy.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {

absl::Status UpdateSubscriber::CheckKeepalive(const Keepalive& keepalive) {
  if (keepalive.interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive interval (--keepalive_s) must be >= 1s (trainers refuse more "
        "frequent pings), got ",
        absl::FormatDuration(keepalive.interval)));
  }
  if (keepalive.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive timeout (--keepalive_timeout_s) must be > 0, got ",
        absl::FormatDuration(keepalive.timeout)));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> UpdateSubscriber::MakeChannel(const std::string& trainer) {
  return MakeChannel(trainer, Keepalive());
}

std::shared_ptr<grpc::Channel> UpdateSubscriber::MakeChannel(
    const std::string& trainer, const Keepalive& keepalive,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments arguments;
  // Snapshots of large models exceed gRPC's 4 MiB default.
  arguments.SetMaxReceiveMessageSize(-1);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
                   static_cast<int>(absl::ToInt64Milliseconds(keepalive.interval)));
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                   static_cast<int>(absl::ToInt64Milliseconds(keepalive.timeout)));
  // gRPC stops pinging after two pings without data by default: an idle
  // trainer (a finished stream, a quiet source) would then go unwatched.
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's own reconnect backoff grows to 120 s by default; keep it within
  // the subscriber's so that a restarted trainer is found quickly.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return grpc::CreateCustomChannel(
      trainer, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(),
      arguments);
}

absl::StatusOr<std::unique_ptr<UpdateSubscriber>> UpdateSubscriber::Create(
    const Options& options, std::shared_ptr<grpc::Channel> channel, LiveModel* live) {
  if (options.trainer.empty()) return absl::InvalidArgumentError("trainer must not be empty");
  if (options.name.empty()) return absl::InvalidArgumentError("name must not be empty");
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock must not be null");
  if (channel == nullptr) return absl::InvalidArgumentError("channel must not be null");
  if (live == nullptr) return absl::InvalidArgumentError("live model must not be null");
  if (options.max_queued < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queued must be >= 1, got ", options.max_queued));
  }
  CONTRAIL_ASSIGN_OR_RETURN(Backoff backoff, Backoff::Create(options.backoff));
  return std::unique_ptr<UpdateSubscriber>(
      new UpdateSubscriber(options, std::move(backoff), std::move(channel), live));
}

UpdateSubscriber::UpdateSubscriber(const Options& options, Backoff backoff,
                                   std::shared_ptr<grpc::Channel> channel,
                                   LiveModel* live)
    : options_(options),
      live_(live),
      channel_(std::move(channel)),
      stub_(UpdateService::NewStub(channel_)),
      backoff_(std::move(backoff)) {}

UpdateSubscriber::~UpdateSubscriber() { Stop(); }

void UpdateSubscriber::Start() { thread_ = std::thread([this] { Run(); }); }

void UpdateSubscriber::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool UpdateSubscriber::connected() const {
  // An open call alone is not enough: while the channel connects, or after
  // a dead link, the call waits with nothing behind it.
  return subscribed_.load() &&
         channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
}

uint64_t UpdateSubscriber::HeldVersion() const {
  const std::shared_ptr<const LiveModel::Version> held = live_->Current();
  return held ? held->version : 0;
}

void UpdateSubscriber::Run() {
  while (!stop_.HasBeenNotified()) {
    const Ended ended = SubscribeOnce();
    if (stop_.HasBeenNotified()) break;
    if (ended.rejected) ++resyncs_;
    if (ended.applied || ended.lasted >= options_.backoff.max) backoff_.Reset();
    const absl::Duration wait = backoff_.Next();
    spdlog::warn("{}; resubscribing from version {} in {}", ended.reason,
                 HeldVersion(), absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1))));
    options_.clock->SleepUntil(options_.clock->Now() + wait, &stop_);
  }
}

// One SubscribeUpdates call read with the callback API. gRPC's threads run
// OnReadDone() and OnDone(); the apply thread Take()s what arrived. A hold
// keeps the call from finishing (OnDone) until the apply thread releases it
// with Finish(), so that it never reads a destroyed queue. Thread-safe.
class UpdateSubscriber::Stream final : public grpc::ClientReadReactor<Update> {
 public:
  explicit Stream(size_t max_queued) : max_queued_(max_queued) {}

  // Starts the call on `stub` (`context` and `request` must outlive it).
  void Start(UpdateService::Stub* stub, grpc::ClientContext* context,
             const SubscribeRequest& request) {
    stub->async()->SubscribeUpdates(context, &request, this);
    AddHold();
    StartRead(&incoming_);
    StartCall();
  }

  // Waits for updates, moves every queued one into `out` (emptied first)
  // and resumes reading if it had paused. False once the stream has ended
  // and nothing is left.
  bool Take(std::vector<Update>* out) ABSL_LOCKS_EXCLUDED(mu_) {
    out->clear();
    bool resume = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return !s->queue_.empty() || s->ended_;
          },
          this));
      if (queue_.empty()) return false;
      out->swap(queue_);
      resume = paused_ && !ended_;
      paused_ = false;
    }
    // Outside the lock: gRPC may run OnReadDone() before StartRead returns.
    if (resume) StartRead(&incoming_);
    return true;
  }

  // Releases the call (after a TryCancel(), or once Take() said it ended)
  // and waits for its status.
  grpc::Status Finish() ABSL_LOCKS_EXCLUDED(mu_) {
    RemoveHold();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    return status_;
  }

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    bool read_on = false;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        ended_ = true;
        return;
      }
      queue_.push_back(std::move(incoming_));
      incoming_.Clear();
      read_on = queue_.size() < max_queued_;
      paused_ = !read_on;
    }
    if (read_on) StartRead(&incoming_);
  }

  void OnDone(const grpc::Status& status) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
    done_ = true;
  }

 private:
  const size_t max_queued_;
  // Written by gRPC while a read is outstanding; read in OnReadDone().
  Update incoming_;

  // Protects what the two sides share.
  absl::Mutex mu_;
  std::vector<Update> queue_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // no read outstanding: queue full
  bool ended_ ABSL_GUARDED_BY(mu_) = false;   // no more updates will come
  bool done_ ABSL_GUARDED_BY(mu_) = false;    // OnDone ran
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

void UpdateSubscriber::Applied(absl::Span<const Update> updates, absl::Duration apply_time,
                               absl::Time applied_at) {
  updates_applied_ += updates.size();
  for (const Update& update : updates) {
    if (options_.observer != nullptr) {
      options_.observer->Applied(update, update.ByteSizeLong(),
                                 apply_time / static_cast<double>(updates.size()),
                                 applied_at);
    }
    if (update.snapshot()) {
      spdlog::info("loaded snapshot of version {} ({}, checksum {:016x})", update.version(),
                   update.spec().architecture(), update.model_checksum());
    }
  }
}

absl::Status UpdateSubscriber::ApplyRun(absl::Span<const Update> run) {
  const absl::Time started = absl::Now();
  absl::Status status;
  if (options_.applier != nullptr) {
    status = options_.applier->Apply(run[0]);
  } else if (run[0].snapshot()) {
    status = live_->Apply(run[0]);
  } else {
    status = live_->ApplyBatch(run);
  }
  if (!status.ok()) return status;
  const absl::Time applied_at = absl::Now();
  Applied(run, applied_at - started, applied_at);
  return absl::OkStatus();
}

absl::Status UpdateSubscriber::ApplyTaken(std::vector<Update>& updates, bool* applied_any) {
  // `status` of `update`, naming it.
  auto named = [](const Update& update, const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(update.snapshot() ? "snapshot " : "update ",
                                     update.version(), ": ", status.ToString()));
  };
  const absl::Span<const Update> all(updates);
  size_t next = 0;
  while (next < all.size()) {
    // A snapshot alone; else the run of updates up to the next snapshot,
    // or one update when an applier takes them.
    size_t end = next + 1;
    if (!all[next].snapshot() && options_.applier == nullptr) {
      while (end < all.size() && !all[end].snapshot()) ++end;
    }
    const absl::Span<const Update> run = all.subspan(next, end - next);
    const absl::Status status = ApplyRun(run);
    if (status.ok()) {
      *applied_any = true;
      next = end;
      continue;
    }
    if (run.size() == 1) return named(run[0], status);
    // Nothing of the run applied: apply its updates one at a time, so that
    // those before the one at fault are kept.
    for (const Update& update : run) {
      const absl::Status one = ApplyRun(absl::MakeConstSpan(&update, 1));
      if (!one.ok()) return named(update, one);
      *applied_any = true;
    }
    return absl::InternalError(absl::StrCat(
        "updates ", run.front().version(), "-", run.back().version(),
        " did not apply as one batch (", status.ToString(), ") but applied one at a time"));
  }
  return absl::OkStatus();
}

UpdateSubscriber::Ended UpdateSubscriber::SubscribeOnce() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return {};
    context_ = &context;
  }
  AttachBearerToken(options_.token, &context);
  const absl::Time started = options_.clock->Now();
  SubscribeRequest request;
  request.set_subscriber(options_.name);
  if (std::shared_ptr<const LiveModel::Version> held = live_->Current()) {
    request.set_have_version(held->version);
    request.set_have_run(held->run);
    request.set_have_fingerprint(held->model->spec().fingerprint());
  }
  subscribed_ = true;
  Stream stream(static_cast<size_t>(options_.max_queued));
  stream.Start(stub_.get(), &context, request);
  Ended ended;
  bool received_any = false;
  std::vector<Update> taken;
  while (stream.Take(&taken)) {
    if (!received_any) {
      spdlog::info("subscribed to the trainer at {} holding version {}",
                   options_.trainer, request.have_version());
    }
    received_any = true;
    for (const Update& update : taken) bytes_received_ += update.ByteSizeLong();
    const absl::Status applied = ApplyTaken(taken, &ended.applied);
    if (!applied.ok()) {
      ended.rejected = true;
      ended.reason = absl::StrCat("rejected ", applied.message());
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = stream.Finish();
  subscribed_ = false;
  ended.lasted = options_.clock->Now() - started;
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  if (!ended.rejected) {
    ended.reason = absl::StrCat("update stream from ", options_.trainer, " ended: ",
                                status.error_message(), " (",
                                static_cast<int>(status.error_code()), ")");
  }
  return ended;
}

}  // namespace contrail
