// The trainer's own Prometheus series, beyond its GetStatus figures
// (common/status_metrics.h), read at scrape time: the age of the latest
// checkpoint (contrail_trainer_checkpoint_age_seconds), checkpoints
// written, and per connected server (label `server`, its --name) the
// versions it is behind the newest published and the time from publishing
// to writing the newest update sent to it. Extra() gives the same per
// server figures to the status page.
//
// This class is thread-safe; the trainer, publisher and update service
// must outlive it.
#ifndef CONTRAIL_TRAINER_TRAINER_METRICS_H_
#define CONTRAIL_TRAINER_TRAINER_METRICS_H_

#include <vector>

#include "google/protobuf/struct.pb.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "trainer/stream_trainer.h"
#include "trainer/update_publisher.h"
#include "trainer/update_service_impl.h"

namespace contrail {

class TrainerMetrics final : public prometheus::Collectable {
 public:
  TrainerMetrics(const StreamTrainer* trainer, const UpdatePublisher* publisher,
                 const UpdateServiceImpl* updates)
      : trainer_(trainer), publisher_(publisher), updates_(updates) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

  // For the status page: "servers" (name, version, versions_behind,
  // lag_seconds per open stream) and "freshness_seconds" (the largest
  // publish-to-send time of the newest updates sent; -1 with none).
  google::protobuf::Struct Extra() const;

 private:
  const StreamTrainer* const trainer_;
  const UpdatePublisher* const publisher_;
  const UpdateServiceImpl* const updates_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_TRAINER_METRICS_H_
