// Counts every RPC a daemon answers, by method and status code, and times
// its unary RPCs (Predict, GetStatus, Ingest...), as Prometheus series in a
// registry: <prefix>_requests_total{service,method,code} and
// <prefix>_request_duration_seconds{service,method}, TF Serving's
// request_count / request_latency and Triton's nv_inference_request_*
// in Prometheus' naming conventions. Streaming RPCs (SubscribeUpdates) are
// counted when they end, not timed.
//
// It measures through a gRPC server interceptor: MakeInterceptorFactories()
// goes into GrpcServerOptions::make_interceptors (common/daemon.h), so no
// service needs to know.
//
// This class is thread-safe; it must outlive the gRPC server it counts for.
#ifndef CONTRAIL_COMMON_GRPC_REQUEST_METRICS_H_
#define CONTRAIL_COMMON_GRPC_REQUEST_METRICS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace contrail {

class GrpcRequestMetrics {
 public:
  // Adds the two families to `registry`, named after `prefix`
  // ("contrail_server", "contrail_trainer").
  GrpcRequestMetrics(const std::string& prefix, prometheus::Registry* registry);

  GrpcRequestMetrics(const GrpcRequestMetrics&) = delete;
  GrpcRequestMetrics& operator=(const GrpcRequestMetrics&) = delete;

  // Interceptor factories for one gRPC server that record into this
  // object.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
  MakeInterceptorFactories();

  // Records one finished RPC: `full_method` as gRPC names it
  // ("/contrail.PredictionService/Predict"); `duration` is observed only
  // when `timed` (a unary RPC).
  void Record(const std::string& full_method, grpc::StatusCode code,
              absl::Duration duration, bool timed);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
};

// The name of a gRPC status code as Prometheus labels carry it ("OK",
// "INVALID_ARGUMENT"...).
std::string GrpcCodeName(grpc::StatusCode code);

// Buckets for latencies from 50 µs to 10 s, in seconds (1, 2.5, 5 per
// decade, as Prometheus' client libraries' defaults).
prometheus::Histogram::BucketBoundaries LatencyBuckets();

}  // namespace contrail

#endif  // CONTRAIL_COMMON_GRPC_REQUEST_METRICS_H_
