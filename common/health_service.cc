#include "common/health_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace contrail {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthServiceImpl::HealthServiceImpl(std::function<bool()> serving,
                                     std::vector<std::string> services)
    : serving_(std::move(serving)), services_(std::move(services)) {}

HealthCheckResponse::ServingStatus HealthServiceImpl::StatusOf(const std::string& service) const {
  if (!service.empty() &&
      std::find(services_.begin(), services_.end(), service) == services_.end()) {
    return HealthCheckResponse::SERVICE_UNKNOWN;
  }
  if (shut_down_.load()) return HealthCheckResponse::NOT_SERVING;
  return serving_() ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

grpc::Status HealthServiceImpl::Check(grpc::ServerContext* /*context*/,
                                      const HealthCheckRequest* request,
                                      HealthCheckResponse* response) {
  const HealthCheckResponse::ServingStatus status = StatusOf(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no service \"", request->service(), "\" here"));
  }
  response->set_status(status);
  return grpc::Status::OK;
}

grpc::Status HealthServiceImpl::Watch(grpc::ServerContext* context,
                                      const HealthCheckRequest* request,
                                      grpc::ServerWriter<HealthCheckResponse>* writer) {
  bool first = true;
  HealthCheckResponse::ServingStatus sent = HealthCheckResponse::UNKNOWN;
  while (!context->IsCancelled()) {
    const bool last = shut_down_.load();
    const HealthCheckResponse::ServingStatus now = StatusOf(request->service());
    if (first || now != sent) {
      HealthCheckResponse response;
      response.set_status(now);
      if (!writer->Write(response)) break;
      sent = now;
      first = false;
    }
    if (last) break;
    absl::SleepFor(kWatchPoll);
  }
  return grpc::Status::OK;
}

void HealthServiceImpl::Shutdown() { shut_down_.store(true); }

}  // namespace contrail
