// What a daemon shows on --metrics_listen: an HTTP server (common/
// http_server.h) with
//   /metrics      Prometheus' text exposition: the daemon's GetStatus as
//                 series (common/status_metrics.h) plus its collectables
//                 (a prometheus::Registry with request counts and
//                 histograms, the daemon's own collectors);
//   /status       a self-contained HTML page (no external assets) that
//                 fetches /status.json every second and redraws: the
//                 version, accuracies, freshness, bytes per update,
//                 connected servers, and an SVG chart of the trainer's and
//                 the served model's prequential accuracy over time;
//   /status.json  {"status": GetStatus as proto JSON, "extra": the daemon's
//                 extra figures, "history": [[unix_ms, version, accuracy,
//                 served_accuracy, freshness_s], ...]}.
// The history is sampled by a thread the object owns, every
// Options::sample_every, whether or not anyone watches.
//
// Lifecycle: Create() checks the options; Start() listens and starts
// sampling; Shutdown() (or the destructor) stops both. The sources given to
// Create() must stay valid until Shutdown() returns. port() and the
// handlers are thread-safe; Start() and Shutdown() are called by the owner.
#ifndef CONTRAIL_COMMON_MONITORING_SERVER_H_
#define CONTRAIL_COMMON_MONITORING_SERVER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "google/protobuf/struct.pb.h"
#include "prometheus/collectable.h"
#include "proto/contrail.pb.h"

namespace contrail {

class MonitoringServer {
 public:
  struct Options {
    // Where to listen (HttpServer::Options::listen: host:port, port 0 picks
    // one) and, optionally, the TLS certificate and key for HTTPS.
    HttpServer::Options http;
    // Samples kept for the status page's chart (the oldest dropped first).
    int history_points = 900;
    // Between samples.
    absl::Duration sample_every = absl::Seconds(1);
  };

  // Where the figures come from.
  struct Sources {
    // The daemon's GetStatus; required.
    std::function<StatusResponse()> status;
    // Figures GetStatus does not carry, shown on the page and in
    // /status.json under "extra" (e.g. freshness_seconds, servers); a
    // number named "freshness_seconds" also goes into the history.
    // Optional.
    std::function<google::protobuf::Struct()> extra;
    // Rendered into /metrics after the status series; optional.
    std::vector<const prometheus::Collectable*> collectables;
  };

  // INVALID_ARGUMENT naming the field for bad options (the listen address
  // is reported as `flag`, e.g. "--metrics_listen", since that is what a
  // user typed); NOT_FOUND for a missing TLS file.
  static absl::StatusOr<std::unique_ptr<MonitoringServer>> Create(
      const Options& options, Sources sources, const std::string& flag = "listen");

  ~MonitoringServer();
  MonitoringServer(const MonitoringServer&) = delete;
  MonitoringServer& operator=(const MonitoringServer&) = delete;

  // Listens and starts sampling. UNAVAILABLE naming the address when it
  // cannot listen.
  absl::Status Start();
  // The bound port; 0 before Start().
  int port() const { return http_->port(); }
  // Stops sampling and serving. Idempotent.
  void Shutdown();

  // The bodies of /metrics and /status.json, and the page.
  std::string MetricsText() const;
  std::string StatusJson() const ABSL_LOCKS_EXCLUDED(mu_);
  static const std::string& StatusPageHtml();

 private:
  struct Sample {
    int64_t unix_ms = 0;
    uint64_t version = 0;
    double accuracy = 0;
    double served_accuracy = 0;
    double freshness_seconds = -1;  // < 0: unknown
  };

  MonitoringServer(const Options& options, Sources sources,
                   std::unique_ptr<HttpServer> http);
  void TakeSample() ABSL_LOCKS_EXCLUDED(mu_);
  void SampleLoop();

  // Constant after construction.
  const Options options_;
  const Sources sources_;
  const std::unique_ptr<HttpServer> http_;

  // Protects the history.
  mutable absl::Mutex mu_;
  std::deque<Sample> history_ ABSL_GUARDED_BY(mu_);

  // Owner thread only.
  std::thread sampler_;
  absl::Notification stop_;
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_MONITORING_SERVER_H_
