// gRPC PredictionService of a server: translates Predict between the wire
// and the LiveModel. This class is thread-safe.
#ifndef CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>

#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"

namespace contrail {

class PredictionServiceImpl final : public PredictionService::Service {
 public:
  // `live` must outlive the service.
  explicit PredictionServiceImpl(LiveModel* live) : live_(live) {}

  grpc::Status Predict(grpc::ServerContext* context,
                       const PredictRequest* request,
                       PredictResponse* response) override;

  // Examples predicted so far.
  uint64_t predictions() const { return predictions_.load(); }

 private:
  LiveModel* const live_;
  std::atomic<uint64_t> predictions_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_PREDICTION_SERVICE_IMPL_H_
