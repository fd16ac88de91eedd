// The server's own Prometheus series, beyond its GetStatus figures
// (common/status_metrics.h): per update applied, how long the apply took
// (contrail_server_update_apply_seconds), how long after the trainer
// published it the server served it (contrail_server_freshness_seconds,
// from Update.publish_time_us: across machines as good as their clocks'
// agreement), and its size (contrail_server_update_bytes,
// contrail_server_update_entries), as histograms in a registry; plus the
// latest freshness, for the status page. Per Predict forward pass, how many
// requests it answered (contrail_server_predict_batch_requests: above 1 only
// with --dynamic_batching) and how long it took
// (contrail_server_predict_forward_seconds).
//
// It is the UpdateSubscriber's and the PredictBatcher's observer. This class
// is thread-safe.
#ifndef CONTRAIL_SERVER_SERVER_METRICS_H_
#define CONTRAIL_SERVER_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/predict_batcher.h"
#include "server/update_subscriber.h"

namespace contrail {

class ServerMetrics final : public UpdateSubscriber::Observer, public PredictBatcher::Observer {
 public:
  // Adds the families to `registry`, which must outlive this object.
  explicit ServerMetrics(prometheus::Registry* registry);

  void Applied(const Update& update, uint64_t wire_bytes, absl::Duration apply_time,
               absl::Time applied_at) override;

  void Ran(size_t requests, absl::Duration forward) override;

  // Seconds from publishing to serving the latest update applied that
  // carried a publish time; < 0 before any.
  double last_freshness_seconds() const { return last_freshness_seconds_.load(); }

 private:
  prometheus::Histogram& apply_seconds_;
  prometheus::Histogram& freshness_seconds_;
  prometheus::Histogram& update_bytes_;
  prometheus::Histogram& update_entries_;
  prometheus::Counter& snapshots_;
  prometheus::Histogram& batch_requests_;
  prometheus::Histogram& forward_seconds_;
  std::atomic<double> last_freshness_seconds_{-1.0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVER_METRICS_H_
