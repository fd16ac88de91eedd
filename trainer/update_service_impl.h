// gRPC UpdateService: streams each subscriber the snapshot and updates it
// misses from an UpdateFeed: the trainer's UpdatePublisher, or a relaying
// server's UpdateRelay (server/update_relay.h).
//
// Each SubscribeUpdates call runs on its own gRPC thread for the life of the
// subscription; a slow subscriber blocks only its own thread, and falls back
// to a snapshot if it falls behind the retained updates.
// This class is thread-safe.
#ifndef CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
#define CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/update_feed.h"
#include "proto/contrail.grpc.pb.h"

namespace contrail {

class UpdateServiceImpl final : public UpdateService::Service {
 public:
  // At most this many updates of a slow subscriber are held at once: one
  // that falls behind the publisher's retention gets a snapshot next,
  // instead of pinning the updates it has not yet been sent.
  static constexpr size_t kMaxBatch = 64;

  // `feed` and `access` must outlive the service. More than
  // `max_subscribers` streams at once are refused with RESOURCE_EXHAUSTED
  // naming `max_subscribers_flag`; callers without the subscribe role under
  // `access` are refused.
  explicit UpdateServiceImpl(UpdateFeed* feed, uint64_t max_subscribers = 256,
                             std::string max_subscribers_flag = "--max_subscribers",
                             const AccessPolicy* access = &AccessPolicy::Open())
      : feed_(feed),
        max_subscribers_(max_subscribers),
        max_subscribers_flag_(std::move(max_subscribers_flag)),
        access_(access) {}

  grpc::Status SubscribeUpdates(grpc::ServerContext* context,
                                const SubscribeRequest* request,
                                grpc::ServerWriter<Update>* writer) override;

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
  UpdateFeed* const feed_;
  const uint64_t max_subscribers_;
  const std::string max_subscribers_flag_;
  const AccessPolicy* const access_;
  // Protects the open streams' states, by stream id.
  mutable absl::Mutex mu_;
  std::map<uint64_t, Subscriber> open_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> subscribers_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
