// gRPC UpdateService: streams each subscriber the snapshot and updates it
// misses from an UpdateFeed: the trainer's UpdatePublisher, or a relaying
// server's UpdateRelay (server/update_relay.h).
//
// Served with gRPC's callback API, so that no thread is held per
// subscriber: each SubscribeUpdates call is a reactor (a Subscription)
// that has one write outstanding at a time. One thread owned by the
// service, the writer, does every step that may take time: it asks the
// feed what a subscription misses (Next() without waiting; that may build
// a snapshot), and starts each write (which serializes the message on the
// calling thread: a 45 MB snapshot stays off the trainer's publishing
// thread and gRPC's callback threads). gRPC's reactions (a write done, a
// cancellation) and the feed's listener only note what happened and queue
// the subscription for the writer. A subscription with nothing to send
// waits without a thread until the feed's listener reports a change.
// A slow subscriber gets at most kMaxBatch updates per round, then falls
// back to a snapshot if it fell behind the retained updates.
//
// Lifecycle: construct, register with a grpc::ServerBuilder, and destroy
// only after that server has shut down (Shutdown() with a deadline
// cancels the open subscriptions, which then finish).
// This class is thread-safe.
#ifndef CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
#define CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/update_feed.h"
#include "proto/contrail.grpc.pb.h"

namespace contrail {

class UpdateServiceImpl final : public UpdateService::CallbackService {
 public:
  // At most this many updates of a slow subscriber are held at once: one
  // that falls behind the publisher's retention gets a snapshot next,
  // instead of pinning the updates it has not yet been sent.
  static constexpr size_t kMaxBatch = 64;

  // `feed` and `access` must outlive the service. More than
  // `max_subscribers` streams at once are refused with RESOURCE_EXHAUSTED
  // naming `max_subscribers_flag`; callers without the subscribe role under
  // `access` are refused. Starts the writer thread and listens to `feed`.
  explicit UpdateServiceImpl(UpdateFeed* feed, uint64_t max_subscribers = 256,
                             std::string max_subscribers_flag = "--max_subscribers",
                             const AccessPolicy* access = &AccessPolicy::Open());
  // Stops listening to the feed and joins the writer thread. The gRPC
  // server serving this service must have shut down.
  ~UpdateServiceImpl() override;
  UpdateServiceImpl(const UpdateServiceImpl&) = delete;
  UpdateServiceImpl& operator=(const UpdateServiceImpl&) = delete;

  grpc::ServerWriteReactor<Update>* SubscribeUpdates(grpc::CallbackServerContext* context,
                                                     const SubscribeRequest* request) override;

  uint64_t bytes_sent() const { return bytes_sent_.load(); }
  uint64_t subscribers() const { return subscribers_.load(); }

  // One open update stream, for metrics and the status page.
  struct Subscriber {
    std::string name;  // SubscribeRequest.subscriber, or the peer
    uint64_t version = 0;  // the newest version written to it
    // From publishing to writing the newest update written to it
    // (Update.publish_time_us); negative until one carried a time.
    absl::Duration send_lag = -absl::Seconds(1);
  };
  // The streams open now.
  std::vector<Subscriber> OpenSubscribers() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The reactor of one accepted SubscribeUpdates call; defined in the .cc.
  class Subscription;

  // Queues `subscription` for the writer unless it is queued, has a write
  // outstanding or has finished.
  void EnqueueLocked(Subscription* subscription) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The writer thread's loop: takes queued subscriptions one at a time and
  // takes their next step, until the destructor stops it.
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // One step of `subscription` (taken off the queue by the writer): finish
  // it, start its next write, or ask the feed what it misses.
  void Step(Subscription* subscription) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  UpdateFeed* const feed_;
  const uint64_t max_subscribers_;
  const std::string max_subscribers_flag_;
  const AccessPolicy* const access_;

  // Protects the open subscriptions' states (those of Subscription's
  // fields that say so), the writer's queue and the feed's change count.
  // Never held while calling the feed or starting a gRPC operation, so the
  // feed's listener (on the publishing thread) only waits for short
  // bookkeeping.
  mutable absl::Mutex mu_;
  std::map<uint64_t, Subscription*> open_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Subscriptions with a step for the writer to take, in arrival order.
  std::deque<Subscription*> ready_ ABSL_GUARDED_BY(mu_);
  // Changes the feed reported, and how many of them the writer has seen:
  // when they differ, every waiting subscription is queued.
  uint64_t feed_changes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seen_feed_changes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> subscribers_{0};

  // Set by the constructor.
  uint64_t listener_ = 0;
  // The writer: the only thread that calls feed_->Next(), StartWrite() and
  // Finish() of accepted subscriptions.
  std::thread writer_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
