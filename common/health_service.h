// grpc.health.v1.Health for a contrail daemon: what load balancers,
// Kubernetes' gRPC probes and grpc_health_probe ask. The daemon says what
// "serving" means (the trainer: listening; a server: holding a model), and
// every Check and Watch asks it afresh, so the answer is never stale.
//
// Service "" is the daemon as a whole; the names given at construction
// (e.g. "contrail.PredictionService") answer the same; any other name is
// NOT_FOUND (SERVICE_UNKNOWN on Watch), as the protocol says. Open to every
// caller: probes carry no token.
//
// This class is thread-safe.
#ifndef CONTRAIL_COMMON_HEALTH_SERVICE_H_
#define CONTRAIL_COMMON_HEALTH_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace contrail {

class HealthServiceImpl final : public grpc::health::v1::Health::Service {
 public:
  // `serving` answers whether the daemon serves now; it must be cheap and
  // thread-safe. `services` are the full names of the services it runs.
  HealthServiceImpl(std::function<bool()> serving, std::vector<std::string> services);

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;

  // Sends the status at once and again whenever it changes (looked at
  // every kWatchPoll), until the client cancels or Shutdown().
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

  // Ends every Watch (with NOT_SERVING sent last), so that a daemon's
  // shutdown does not wait for watchers.
  void Shutdown();

  static constexpr absl::Duration kWatchPoll = absl::Milliseconds(100);

 private:
  // The status of `service`; SERVICE_UNKNOWN for a name not served.
  grpc::health::v1::HealthCheckResponse::ServingStatus StatusOf(const std::string& service) const;

  // Constant after construction.
  const std::function<bool()> serving_;
  const std::vector<std::string> services_;

  std::atomic<bool> shut_down_{false};
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_HEALTH_SERVICE_H_
