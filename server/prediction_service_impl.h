// gRPC PredictionService of a server: translates Predict between the wire
// and the LiveModel. This class is thread-safe.
#ifndef CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"

namespace contrail {

class PredictionServiceImpl final : public PredictionService::Service {
 public:
  // `live` and `access` must outlive the service. Callers without the
  // predict role under `access` are refused.
  explicit PredictionServiceImpl(LiveModel* live,
                                 const AccessPolicy* access = &AccessPolicy::Open())
      : live_(live), access_(access) {}

  grpc::Status Predict(grpc::ServerContext* context,
                       const PredictRequest* request,
                       PredictResponse* response) override;

  // Examples predicted so far.
  uint64_t predictions() const { return predictions_.load(); }

 private:
  LiveModel* const live_;
  const AccessPolicy* const access_;
  std::atomic<uint64_t> predictions_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
