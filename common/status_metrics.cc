#include "common/status_metrics.h"

#include <utility>

namespace contrail {

prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help,
                                     double value,
                                     std::vector<prometheus::ClientMetric::Label> labels) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
  return family;
}

prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Counter;
  prometheus::ClientMetric metric;
  metric.counter.value = value;
  family.metric.push_back(std::move(metric));
  return family;
}

std::vector<prometheus::MetricFamily> StatusMetricFamilies(const StatusResponse& status) {
  const std::string prefix = "contrail_" + (status.role().empty() ? "daemon" : status.role());
  std::vector<prometheus::MetricFamily> families;
  auto gauge = [&](const std::string& name, const std::string& help, double value) {
    families.push_back(GaugeFamily(prefix + "_" + name, help, value));
  };
  auto counter = [&](const std::string& name, const std::string& help, double value) {
    families.push_back(CounterFamily(prefix + "_" + name, help, value));
  };
  families.push_back(GaugeFamily(
      prefix + "_model_version",
      status.role() == "trainer" ? "Newest version published" : "Version served",
      static_cast<double>(status.version()), {{"model", status.spec().architecture()}}));
  families.push_back(GaugeFamily(prefix + "_phase", "1 for the daemon's phase", 1.0,
                                 {{"phase", Phase_Name(status.phase())}}));
  gauge("model_parameters", "Floats in the model", static_cast<double>(status.parameters()));
  if (status.role() == "trainer") {
    counter("examples_ingested_total", "Examples the source accepted (validated and queued)",
            static_cast<double>(status.examples_accepted()));
    prometheus::MetricFamily rejected;
    rejected.name = prefix + "_examples_rejected_total";
    rejected.help = "Examples the source rejected, by reason";
    rejected.type = prometheus::MetricType::Counter;
    for (const auto& [reason, count] : status.rejected_by_reason()) {
      prometheus::ClientMetric metric;
      metric.label = {{"reason", reason}};
      metric.counter.value = static_cast<double>(count);
      rejected.metric.push_back(std::move(metric));
    }
    if (status.rejected_by_reason().empty()) {
      // No reason yet: one series at the total, so that rate() has a zero.
      prometheus::ClientMetric metric;
      metric.label = {{"reason", "none"}};
      metric.counter.value = static_cast<double>(status.examples_rejected());
      rejected.metric.push_back(std::move(metric));
    }
    families.push_back(std::move(rejected));
    gauge("examples_queued", "Examples accepted and waiting for training",
          static_cast<double>(status.examples_queued()));
    counter("examples_trained_total", "Examples trained on, the initial ones included",
            static_cast<double>(status.examples_trained()));
    counter("examples_seen_total", "Streamed examples tested, then trained on",
            static_cast<double>(status.examples_seen()));
    gauge("prequential_accuracy",
          "Cumulative prequential accuracy of the trained model over the stream",
          status.prequential_accuracy());
    gauge("served_prequential_accuracy",
          "Cumulative prequential accuracy of the served model (what servers answer)",
          status.served_prequential_accuracy());
    counter("updates_published_total", "Updates published",
            static_cast<double>(status.updates_published()));
    counter("update_entries_published_total", "(index, value) entries in published updates",
            static_cast<double>(status.entries_published()));
    counter("update_payload_bytes_published_total", "Encoded bytes of published updates",
            static_cast<double>(status.payload_bytes_published()));
    counter("update_bytes_sent_total", "Update bytes written to subscribed servers",
            static_cast<double>(status.bytes_sent()));
    gauge("connected_servers", "Update streams open now",
          static_cast<double>(status.subscribers()));
  } else if (status.role() == "server") {
    gauge("connected", "1 while subscribed to the trainer on a live connection",
          status.connected() ? 1.0 : 0.0);
    counter("updates_applied_total", "Updates (and snapshots) applied",
            static_cast<double>(status.updates_applied()));
    counter("update_bytes_received_total", "Wire bytes of updates received",
            static_cast<double>(status.bytes_received()));
    counter("resyncs_total", "Updates rejected, each followed by a resubscription",
            static_cast<double>(status.resyncs()));
    counter("predictions_total", "Examples predicted", static_cast<double>(status.predictions()));
    gauge("model_age_seconds", "Seconds since the version served was applied",
          status.seconds_since_update());
    gauge("saved_version", "Version last saved to --state_dir (0: none)",
          static_cast<double>(status.saved_version()));
  }
  return families;
}

}  // namespace contrail
