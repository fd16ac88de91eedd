// gRPC PredictionService of a server: translates Predict between the wire
// and the LiveModel. Served with gRPC's callback API: the handler checks
// the caller and hands the request to a PredictBatcher, whose workers run
// the forward pass (alone, or merged with others by dynamic batching) and
// finish the call. This class is thread-safe.
#ifndef CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"
#include "server/predict_batcher.h"

namespace contrail {

class PredictionServiceImpl final : public PredictionService::CallbackService {
 public:
  // `live` and `access` must outlive the service. Callers without the
  // predict role under `access` are refused. `batching` must pass
  // PredictBatcher::CheckOptions(). Destroy the service only after the gRPC
  // server that serves it has shut down.
  explicit PredictionServiceImpl(LiveModel* live,
                                 const AccessPolicy* access = &AccessPolicy::Open(),
                                 const PredictBatcher::Options& batching = {});

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const PredictRequest* request,
                                    PredictResponse* response) override;

  // Examples predicted so far.
  uint64_t predictions() const { return predictions_.load(); }
  // The workers that run its forward passes, for other services to share.
  const PredictBatcher& batcher() const { return *batcher_; }
  PredictBatcher* mutable_batcher() { return batcher_.get(); }

 private:
  const AccessPolicy* const access_;
  const std::unique_ptr<PredictBatcher> batcher_;
  std::atomic<uint64_t> predictions_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
