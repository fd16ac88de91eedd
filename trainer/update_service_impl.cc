#include "trainer/update_service_impl.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// A call refused before it became a subscription: finishes at once.
class Refusal final : public grpc::ServerWriteReactor<Update> {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One accepted SubscribeUpdates call. gRPC's reactions only record what
// happened and queue the subscription for the writer thread, which takes
// every step (UpdateServiceImpl::Step). The subscription deletes itself in
// OnDone(), after it left the service's maps under the service's lock; as
// only the writer finishes it, and never while a write is outstanding,
// OnDone() cannot run while the writer still uses it.
class UpdateServiceImpl::Subscription final : public grpc::ServerWriteReactor<Update> {
 public:
  Subscription(UpdateServiceImpl* service, uint64_t id, std::string who,
               const SubscribeRequest& request)
      : service_(service), id_(id), who_(std::move(who)) {
    state_.name = who_;
    state_.version = request.have_version();
    run_ = request.have_run();
    fingerprint_ = request.have_fingerprint();
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(service_->mu_) {
    std::shared_ptr<const Update> written;
    absl::MutexLock lock(&service_->mu_);
    written = std::move(writing_);
    writing_ = nullptr;
    if (ok) {
      service_->bytes_sent_ += written->ByteSizeLong();
      state_.version = written->version();
      if (written->publish_time_us() > 0) {
        state_.send_lag =
            absl::Now() - absl::FromUnixMicros(static_cast<int64_t>(written->publish_time_us()));
      }
      run_ = written->run();
      fingerprint_ = written->fingerprint();
    } else if (!ending_) {
      // The stream broke: the client is gone.
      ending_ = true;
      end_status_ = grpc::Status::OK;
    }
    service_->EnqueueLocked(this);
    // `written` (perhaps the last reference to a snapshot) is freed after
    // the lock is released: destroyed after `lock`, declared before it.
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(service_->mu_) {
    absl::MutexLock lock(&service_->mu_);
    if (!ending_) {
      ending_ = true;
      end_status_ = grpc::Status::CANCELLED;
    }
    service_->EnqueueLocked(this);
  }

  void OnDone() override ABSL_LOCKS_EXCLUDED(service_->mu_) {
    uint64_t version = 0;
    {
      absl::MutexLock lock(&service_->mu_);
      service_->open_.erase(id_);
      std::deque<Subscription*>& ready = service_->ready_;
      ready.erase(std::remove(ready.begin(), ready.end(), this), ready.end());
      version = state_.version;
    }
    --service_->subscribers_;
    spdlog::info("subscriber {} left at version {}", who_, version);
    delete this;
  }

  // Constant after construction.
  UpdateServiceImpl* const service_;
  const uint64_t id_;
  const std::string who_;

  // What OpenSubscribers() shows; state_.version is also the version the
  // subscriber holds.
  Subscriber state_ ABSL_GUARDED_BY(service_->mu_);
  // The run and fingerprint of what the subscriber holds.
  uint64_t run_ ABSL_GUARDED_BY(service_->mu_) = 0;
  uint64_t fingerprint_ ABSL_GUARDED_BY(service_->mu_) = 0;
  // What the feed gave it and is still to be written, oldest first.
  std::deque<std::shared_ptr<const Update>> pending_ ABSL_GUARDED_BY(service_->mu_);
  // The write outstanding; null when none.
  std::shared_ptr<const Update> writing_ ABSL_GUARDED_BY(service_->mu_);
  // In the writer's queue.
  bool queued_ ABSL_GUARDED_BY(service_->mu_) = false;
  // Had nothing to send: queued again when the feed reports a change.
  bool waiting_ ABSL_GUARDED_BY(service_->mu_) = false;
  // To be finished with end_status_: cancelled, broken or the feed failed.
  bool ending_ ABSL_GUARDED_BY(service_->mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(service_->mu_);
  // Finish() was called (or is about to be, by the writer).
  bool finished_ ABSL_GUARDED_BY(service_->mu_) = false;
};

UpdateServiceImpl::UpdateServiceImpl(UpdateFeed* feed, uint64_t max_subscribers,
                                     std::string max_subscribers_flag,
                                     const AccessPolicy* access)
    : feed_(feed),
      max_subscribers_(max_subscribers),
      max_subscribers_flag_(std::move(max_subscribers_flag)),
      access_(access) {
  writer_ = std::thread([this] { WriterLoop(); });
  // Runs on the feed's writing thread: only counts the change; the writer
  // thread queues the waiting subscriptions.
  listener_ = feed_->AddListener([this] {
    absl::MutexLock lock(&mu_);
    ++feed_changes_;
  });
}

UpdateServiceImpl::~UpdateServiceImpl() {
  feed_->RemoveListener(listener_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
}

grpc::ServerWriteReactor<Update>* UpdateServiceImpl::SubscribeUpdates(
    grpc::CallbackServerContext* context, const SubscribeRequest* request) {
  if (grpc::Status allowed = access_->Check(*context, Role::kSubscribe); !allowed.ok()) {
    return new Refusal(std::move(allowed));
  }
  std::string who = request->subscriber().empty() ? context->peer() : request->subscriber();
  if (++subscribers_ > max_subscribers_) {
    --subscribers_;
    spdlog::warn("refused subscriber {}: {} streams open already", who, max_subscribers_);
    return new Refusal(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("at most ", max_subscribers_, " subscribers are served (",
                     max_subscribers_flag_, ")")));
  }
  spdlog::info("subscriber {} connected holding version {}", who, request->have_version());
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  auto* subscription = new Subscription(this, id, std::move(who), *request);
  open_[id] = subscription;
  // The writer may start its first write before gRPC binds the reactor:
  // gRPC holds operations started before then until it does.
  EnqueueLocked(subscription);
  return subscription;
}

void UpdateServiceImpl::EnqueueLocked(Subscription* subscription) {
  subscription->waiting_ = false;
  if (subscription->queued_ || subscription->writing_ != nullptr || subscription->finished_) {
    return;
  }
  subscription->queued_ = true;
  ready_.push_back(subscription);
}

void UpdateServiceImpl::WriterLoop() {
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !ready_.empty() || feed_changes_ != seen_feed_changes_;
  };
  for (;;) {
    Subscription* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) return;
      if (feed_changes_ != seen_feed_changes_) {
        seen_feed_changes_ = feed_changes_;
        for (const auto& [id, open] : open_) {
          if (open->waiting_) EnqueueLocked(open);
        }
      }
      if (ready_.empty()) continue;
      next = ready_.front();
      ready_.pop_front();
      next->queued_ = false;
    }
    Step(next);
  }
}

void UpdateServiceImpl::Step(Subscription* subscription) {
  enum class Action { kNone, kFinish, kWrite, kPoll };
  Action action = Action::kNone;
  grpc::Status status;
  const Update* write = nullptr;
  uint64_t run = 0, version = 0, fingerprint = 0;
  {
    absl::MutexLock lock(&mu_);
    if (subscription->finished_ || subscription->writing_ != nullptr) {
      action = Action::kNone;
    } else if (subscription->ending_) {
      subscription->finished_ = true;
      status = subscription->end_status_;
      action = Action::kFinish;
    } else if (!subscription->pending_.empty()) {
      subscription->writing_ = std::move(subscription->pending_.front());
      subscription->pending_.pop_front();
      write = subscription->writing_.get();
      action = Action::kWrite;
    } else {
      run = subscription->run_;
      version = subscription->state_.version;
      fingerprint = subscription->fingerprint_;
      action = Action::kPoll;
    }
  }
  switch (action) {
    case Action::kNone:
      return;
    case Action::kFinish:
      // OnDone() may delete the subscription from here on.
      subscription->Finish(std::move(status));
      return;
    case Action::kWrite:
      if (write->snapshot()) {
        spdlog::info("sending {} a snapshot of version {}", subscription->who_,
                     write->version());
      }
      // Serializes `write` here, on the writer thread. `writing_` keeps it
      // alive until OnWriteDone().
      subscription->StartWrite(write);
      return;
    case Action::kPoll:
      break;
  }
  // Nothing is being written and nothing is pending: ask the feed, without
  // waiting, what the subscriber misses (may build a snapshot).
  std::vector<std::shared_ptr<const Update>> batch;
  const absl::Status next =
      feed_->Next(run, version, fingerprint, absl::ZeroDuration(), &batch);
  if (batch.size() > kMaxBatch) batch.resize(kMaxBatch);
  absl::MutexLock lock(&mu_);
  if (!next.ok()) {
    if (!subscription->ending_) {
      subscription->ending_ = true;
      subscription->end_status_ = ToGrpcStatus(next);
    }
  } else {
    subscription->pending_.assign(batch.begin(), batch.end());
  }
  if (subscription->ending_ || !subscription->pending_.empty()) {
    EnqueueLocked(subscription);
  } else {
    // A change the feed reports from now on queues it again; one reported
    // during Next() has bumped feed_changes_, which the loop sees next.
    subscription->waiting_ = true;
  }
}

std::vector<UpdateServiceImpl::Subscriber> UpdateServiceImpl::OpenSubscribers() const {
  absl::MutexLock lock(&mu_);
  std::vector<Subscriber> open;
  open.reserve(open_.size());
  for (const auto& [id, subscription] : open_) open.push_back(subscription->state_);
  return open;
}

}  // namespace contrail
