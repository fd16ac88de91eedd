// Every figure of a daemon's GetStatus (proto/contrail.proto StatusResponse)
// as Prometheus series, so that what `contrailctl status` prints and what a
// Prometheus server scrapes are the same numbers read at the same moment.
// Names follow Prometheus' conventions with the role as prefix
// (contrail_trainer_*, contrail_server_*): counters end in _total, units
// are in the name, the model is a label of the version gauge as TF
// Serving's and Triton's model labels are. README "Metrics and status page"
// lists them.
//
// Free functions; thread-compatible.
#ifndef CONTRAIL_COMMON_STATUS_METRICS_H_
#define CONTRAIL_COMMON_STATUS_METRICS_H_

#include <string>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "proto/contrail.pb.h"

namespace contrail {

// The series of `status`, named after its role ("trainer" or "server";
// other roles get the figures both have).
std::vector<prometheus::MetricFamily> StatusMetricFamilies(const StatusResponse& status);

// Builders for families of one series, for the daemons' own collectors.
prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help,
                                     double value,
                                     std::vector<prometheus::ClientMetric::Label> labels = {});
prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       double value);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_STATUS_METRICS_H_
