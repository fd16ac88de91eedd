#include "trainer/trainer_metrics.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "common/status_metrics.h"

namespace contrail {
namespace {

prometheus::MetricFamily PerServer(const std::string& name, const std::string& help) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddServer(prometheus::MetricFamily* family, const std::string& server, double value) {
  prometheus::ClientMetric metric;
  metric.label = {{"server", server}};
  metric.gauge.value = value;
  family->metric.push_back(std::move(metric));
}

}  // namespace

std::vector<prometheus::MetricFamily> TrainerMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const StreamTrainer::Stats stats = trainer_->stats();
  families.push_back(CounterFamily("contrail_trainer_checkpoints_total",
                                   "Checkpoints written by this process",
                                   static_cast<double>(stats.checkpoints)));
  if (stats.checkpoint_time != absl::Time()) {
    families.push_back(GaugeFamily(
        "contrail_trainer_checkpoint_age_seconds",
        "Seconds since the state of the latest checkpoint was captured",
        absl::ToDoubleSeconds(absl::Now() - stats.checkpoint_time)));
    families.push_back(GaugeFamily("contrail_trainer_checkpoint_version",
                                   "Version the latest checkpoint covers",
                                   static_cast<double>(stats.checkpoint_version)));
  }
  const uint64_t newest = publisher_->version();
  prometheus::MetricFamily behind =
      PerServer("contrail_trainer_server_versions_behind",
                "Versions published but not yet written to each connected server");
  prometheus::MetricFamily lag = PerServer(
      "contrail_trainer_server_send_lag_seconds",
      "From publishing to writing the newest update sent to each connected server");
  for (const UpdateServiceImpl::Subscriber& server : updates_->OpenSubscribers()) {
    AddServer(&behind, server.name,
              static_cast<double>(newest > server.version ? newest - server.version : 0));
    if (server.send_lag >= absl::ZeroDuration()) {
      AddServer(&lag, server.name, absl::ToDoubleSeconds(server.send_lag));
    }
  }
  families.push_back(std::move(behind));
  families.push_back(std::move(lag));
  return families;
}

google::protobuf::Struct TrainerMetrics::Extra() const {
  google::protobuf::Struct extra;
  const uint64_t newest = publisher_->version();
  google::protobuf::ListValue* servers =
      (*extra.mutable_fields())["servers"].mutable_list_value();
  double freshness = -1;
  for (const UpdateServiceImpl::Subscriber& server : updates_->OpenSubscribers()) {
    google::protobuf::Struct* row = servers->add_values()->mutable_struct_value();
    (*row->mutable_fields())["name"].set_string_value(server.name);
    (*row->mutable_fields())["version"].set_number_value(static_cast<double>(server.version));
    (*row->mutable_fields())["versions_behind"].set_number_value(
        static_cast<double>(newest > server.version ? newest - server.version : 0));
    const double lag = absl::ToDoubleSeconds(server.send_lag);
    (*row->mutable_fields())["lag_seconds"].set_number_value(lag);
    freshness = std::max(freshness, lag);
  }
  (*extra.mutable_fields())["freshness_seconds"].set_number_value(freshness);
  return extra;
}

}  // namespace contrail
