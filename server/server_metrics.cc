#include "server/server_metrics.h"

#include "common/grpc_request_metrics.h"

namespace contrail {
namespace {

// Powers of `factor` from `first` up to `last`.
prometheus::Histogram::BucketBoundaries Exponential(double first, double factor,
                                                    double last) {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double bound = first; bound <= last; bound *= factor) buckets.push_back(bound);
  return buckets;
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry* registry)
    : apply_seconds_(prometheus::BuildHistogram()
                         .Name("contrail_server_update_apply_seconds")
                         .Help("Time to apply one update (or snapshot) to the live model")
                         .Register(*registry)
                         .Add({}, LatencyBuckets())),
      freshness_seconds_(
          prometheus::BuildHistogram()
              .Name("contrail_server_freshness_seconds")
              .Help("From the trainer publishing an update (Update.publish_time_us) to "
                    "this server serving it")
              .Register(*registry)
              .Add({}, LatencyBuckets())),
      update_bytes_(prometheus::BuildHistogram()
                        .Name("contrail_server_update_bytes")
                        .Help("Wire bytes of each update applied")
                        .Register(*registry)
                        .Add({}, Exponential(64, 4, 1 << 30))),
      update_entries_(prometheus::BuildHistogram()
                          .Name("contrail_server_update_entries")
                          .Help("(index, value) entries of each update applied")
                          .Register(*registry)
                          .Add({}, Exponential(1, 4, 1 << 28))),
      snapshots_(prometheus::BuildCounter()
                     .Name("contrail_server_snapshots_applied_total")
                     .Help("Snapshots (whole models) applied")
                     .Register(*registry)
                     .Add({})),
      batch_requests_(prometheus::BuildHistogram()
                          .Name("contrail_server_predict_batch_requests")
                          .Help("Predict requests answered by one forward pass (more than "
                                "one with --dynamic_batching)")
                          .Register(*registry)
                          .Add({}, Exponential(1, 2, 1024))),
      forward_seconds_(prometheus::BuildHistogram()
                           .Name("contrail_server_predict_forward_seconds")
                           .Help("Time of one Predict forward pass, merged or not")
                           .Register(*registry)
                           .Add({}, LatencyBuckets())) {}

void ServerMetrics::Ran(size_t requests, absl::Duration forward) {
  batch_requests_.Observe(static_cast<double>(requests));
  forward_seconds_.Observe(absl::ToDoubleSeconds(forward));
}

void ServerMetrics::Applied(const Update& update, uint64_t wire_bytes,
                            absl::Duration apply_time, absl::Time applied_at) {
  apply_seconds_.Observe(absl::ToDoubleSeconds(apply_time));
  update_bytes_.Observe(static_cast<double>(wire_bytes));
  // Model-wide sparse entries, or per-tensor ones (common/update_codec.h).
  uint64_t entries = update.sparse().count();
  for (const TensorUpdate& tensor : update.tensors()) entries += tensor.count();
  update_entries_.Observe(static_cast<double>(entries));
  if (update.snapshot()) snapshots_.Increment();
  if (update.publish_time_us() > 0) {
    const double freshness = absl::ToDoubleSeconds(
        applied_at - absl::FromUnixMicros(static_cast<int64_t>(update.publish_time_us())));
    freshness_seconds_.Observe(freshness);
    last_freshness_seconds_ = freshness;
  }
}

}  // namespace contrail
