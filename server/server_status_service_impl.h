// gRPC StatusService of a server: the version it serves, its checksum and
// its counters. This class is thread-safe.
#ifndef CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_

#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/update_subscriber.h"

namespace contrail {

class ServerStatusServiceImpl final : public StatusService::Service {
 public:
  // All three must outlive the service.
  ServerStatusServiceImpl(const LiveModel* live,
                          const UpdateSubscriber* subscriber,
                          const PredictionServiceImpl* predictions)
      : live_(live), subscriber_(subscriber), predictions_(predictions) {}

  grpc::Status GetStatus(grpc::ServerContext* context,
                         const StatusRequest* request,
                         StatusResponse* response) override;

 private:
  const LiveModel* const live_;
  const UpdateSubscriber* const subscriber_;
  const PredictionServiceImpl* const predictions_;
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVER_STATUS_SERVICE_IMPL_H_
