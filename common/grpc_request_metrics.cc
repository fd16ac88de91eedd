#include "common/grpc_request_metrics.h"

#include <utility>

#include "absl/time/clock.h"

namespace contrail {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::InterceptorBatchMethods;
using grpc::experimental::ServerRpcInfo;

// One per RPC: gRPC creates it when the call starts and destroys it when
// the call is done.
class RequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  RequestInterceptor(GrpcRequestMetrics* metrics, ServerRpcInfo* info)
      : metrics_(metrics),
        method_(info->method() != nullptr ? info->method() : ""),
        timed_(info->type() == ServerRpcInfo::Type::UNARY),
        started_(absl::Now()) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, methods->GetSendStatus().error_code(),
                       absl::Now() - started_, timed_);
    }
    methods->Proceed();
  }

 private:
  GrpcRequestMetrics* const metrics_;
  const std::string method_;
  const bool timed_;
  const absl::Time started_;
};

class RequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RequestInterceptorFactory(GrpcRequestMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new RequestInterceptor(metrics_, info);
  }

 private:
  GrpcRequestMetrics* const metrics_;
};

// "/contrail.PredictionService/Predict" -> {"contrail.PredictionService", "Predict"}.
std::pair<std::string, std::string> SplitMethod(const std::string& full_method) {
  const size_t slash = full_method.rfind('/');
  if (slash == std::string::npos) return {"", full_method};
  const size_t begin = full_method.empty() || full_method[0] != '/' ? 0 : 1;
  return {full_method.substr(begin, slash - begin), full_method.substr(slash + 1)};
}

}  // namespace

std::string GrpcCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",         "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return std::to_string(index);
  }
  return kNames[index];
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
          50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};
}

GrpcRequestMetrics::GrpcRequestMetrics(const std::string& prefix,
                                       prometheus::Registry* registry)
    : requests_(prometheus::BuildCounter()
                    .Name(prefix + "_requests_total")
                    .Help("RPCs answered, by service, method and gRPC status code")
                    .Register(*registry)),
      durations_(prometheus::BuildHistogram()
                     .Name(prefix + "_request_duration_seconds")
                     .Help("Time from the start of a unary RPC to its status, by "
                           "service and method")
                     .Register(*registry)) {}

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
GrpcRequestMetrics::MakeInterceptorFactories() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      factories;
  factories.push_back(std::make_unique<RequestInterceptorFactory>(this));
  return factories;
}

void GrpcRequestMetrics::Record(const std::string& full_method, grpc::StatusCode code,
                                absl::Duration duration, bool timed) {
  const auto [service, method] = SplitMethod(full_method);
  requests_.Add({{"service", service}, {"method", method}, {"code", GrpcCodeName(code)}})
      .Increment();
  if (timed) {
    durations_.Add({{"service", service}, {"method", method}}, LatencyBuckets())
        .Observe(absl::ToDoubleSeconds(duration));
  }
}

}  // namespace contrail
