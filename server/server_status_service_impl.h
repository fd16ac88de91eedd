// gRPC StatusService of a server: the version it serves, its checksum, its
// link to the trainer (connected, seconds since the last update), what it
// saved to --state_dir, and its counters; a relay's subscribers and bytes
// sent to them. This class is thread-safe.
#ifndef CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/served_model_saver.h"
#include "server/update_subscriber.h"
#include "trainer/update_service_impl.h"

namespace contrail {

class ServerStatusServiceImpl final : public StatusService::Service {
 public:
  // All must outlive the service; `saver` is null for a server without a
  // state directory, `relay` (the UpdateService it serves) unless it
  // relays. Callers without the status role under `access` are refused.
  ServerStatusServiceImpl(const LiveModel* live,
                          const UpdateSubscriber* subscriber,
                          const PredictionServiceImpl* predictions,
                          const ServedModelSaver* saver = nullptr,
                          const UpdateServiceImpl* relay = nullptr,
                          const AccessPolicy* access = &AccessPolicy::Open())
      : live_(live),
        subscriber_(subscriber),
        predictions_(predictions),
        saver_(saver),
        relay_(relay),
        access_(access) {}

  grpc::Status GetStatus(grpc::ServerContext* context,
                         const StatusRequest* request,
                         StatusResponse* response) override;

  // What GetStatus answers, for in-process readers (the status page).
  void Fill(StatusResponse* response) const;

 private:
  const LiveModel* const live_;
  const UpdateSubscriber* const subscriber_;
  const PredictionServiceImpl* const predictions_;
  const ServedModelSaver* const saver_;
  const UpdateServiceImpl* const relay_;
  const AccessPolicy* const access_;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_
