// gRPC StatusService of the trainer: what it is training, how far the
// stream has gone, and what it has published. This class is thread-safe.
#ifndef CONTRAIL_TRAINER_TRAINER_STATUS_SERVICE_IMPL_H_
#define CONTRAIL_TRAINER_TRAINER_STATUS_SERVICE_IMPL_H_

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "trainer/stream_trainer.h"
#include "trainer/update_publisher.h"
#include "trainer/update_service_impl.h"

namespace contrail {

class TrainerStatusServiceImpl final : public StatusService::Service {
 public:
  // All must outlive the service. Callers without the status role under
  // `access` are refused.
  TrainerStatusServiceImpl(const StreamTrainer* trainer,
                           const UpdatePublisher* publisher,
                           const UpdateServiceImpl* updates,
                           const AccessPolicy* access = &AccessPolicy::Open())
      : trainer_(trainer), publisher_(publisher), updates_(updates), access_(access) {}

  grpc::Status GetStatus(grpc::ServerContext* context,
                         const StatusRequest* request,
                         StatusResponse* response) override;

  // What GetStatus answers, for in-process readers (the status page).
  void Fill(StatusResponse* response) const;

 private:
  const StreamTrainer* const trainer_;
  const UpdatePublisher* const publisher_;
  const UpdateServiceImpl* const updates_;
  const AccessPolicy* const access_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_TRAINER_STATUS_SERVICE_IMPL_H_
