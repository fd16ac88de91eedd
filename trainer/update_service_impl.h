// gRPC UpdateService of the trainer: streams each subscriber the snapshot
// and updates it misses from the UpdatePublisher.
//
// Each SubscribeUpdates call runs on its own gRPC thread for the life of the
// subscription; a slow subscriber blocks only its own thread, and falls back
// to a snapshot if it falls behind the retained updates.
// This class is thread-safe.
#ifndef CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
#define CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "trainer/update_publisher.h"

namespace contrail {

class UpdateServiceImpl final : public UpdateService::Service {
 public:
  // At most this many updates of a slow subscriber are held at once: one
  // that falls behind the publisher's retention gets a snapshot next,
  // instead of pinning the updates it has not yet been sent.
  static constexpr size_t kMaxBatch = 64;

  // `publisher` and `access` must outlive the service. More than
  // `max_subscribers` streams at once are refused with RESOURCE_EXHAUSTED;
  // callers without the subscribe role under `access` are refused.
  explicit UpdateServiceImpl(UpdatePublisher* publisher, uint64_t max_subscribers = 256,
                             const AccessPolicy* access = &AccessPolicy::Open())
      : publisher_(publisher), max_subscribers_(max_subscribers), access_(access) {}

  grpc::Status SubscribeUpdates(grpc::ServerContext* context,
                                const SubscribeRequest* request,
                                grpc::ServerWriter<Update>* writer) override;

  uint64_t bytes_sent() const { return bytes_sent_.load(); }
  uint64_t subscribers() const { return subscribers_.load(); }

 private:
  UpdatePublisher* const publisher_;
  const uint64_t max_subscribers_;
  const AccessPolicy* const access_;
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> subscribers_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_UPDATE_SERVICE_IMPL_H_
