// The daemons' Prometheus metrics as a Prometheus server sees them: the
// real trainer and server binaries run with --metrics_listen, Debian's
// `prometheus` scrapes both every second, and the test reads the series
// back through Prometheus' HTTP API (/api/v1/query), comparing them with
// GetStatus and with the RPCs it made.
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/monitored_daemons.h"

namespace contrail {
namespace test {
namespace {

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr int kPredictCalls = 7;

class MetricsIntegrationTest : public MonitoredDaemonsTest {
 protected:
  // Starts prometheus scraping `targets` (job name -> metrics port) every
  // second; waits until its API answers.
  void StartPrometheus(const std::map<std::string, int>& targets) {
    const std::string dir = absl::StrCat(TestTmpDir(), "/prometheus");
    std::string config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n";
    for (const auto& [job, port] : targets) {
      absl::StrAppend(&config, "  - job_name: ", job, "\n    static_configs:\n",
                      "      - targets: ['127.0.0.1:", port, "']\n");
    }
    const std::string config_path = absl::StrCat(TestTmpDir(), "/prometheus.yml");
    std::ofstream(config_path) << config;
    // Prometheus cannot report the port it picked.
    prometheus_port_ = PickFreePort();
    ASSERT_GT(prometheus_port_, 0);
    ChildProcess* prometheus = StartProcess(
        "prometheus", kPrometheus,
        {absl::StrCat("--config.file=", config_path),
         absl::StrCat("--storage.tsdb.path=", dir),
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)});
    ASSERT_NE(prometheus, nullptr);
    const absl::Time deadline = absl::Now() + kStartDeadline;
    while (!HttpGet(prometheus_port_, "/-/ready").ok()) {
      ASSERT_TRUE(prometheus->Running()) << prometheus->Stderr();
      ASSERT_LT(absl::Now(), deadline) << "prometheus not ready: " << prometheus->Stderr();
      absl::SleepFor(kPollInterval);
    }
  }

  // The value of the single series `query` selects, once Prometheus has
  // one; nullopt when there is none (yet) or the query failed.
  std::optional<double> Query(const std::string& query) {
    absl::StatusOr<std::string> body = HttpGet(
        prometheus_port_, absl::StrCat("/api/v1/query?query=", httplib::detail::encode_query_param(query)));
    if (!body.ok()) return std::nullopt;
    google::protobuf::Struct answer;
    if (!google::protobuf::util::JsonStringToMessage(*body, &answer).ok()) return std::nullopt;
    const auto& fields = answer.fields();
    if (fields.count("data") == 0) return std::nullopt;
    const auto& data = fields.at("data").struct_value().fields();
    if (data.count("result") == 0) return std::nullopt;
    const auto& result = data.at("result").list_value();
    if (result.values_size() != 1) return std::nullopt;
    const auto& sample = result.values(0).struct_value().fields().at("value").list_value();
    double value = 0;
    if (sample.values_size() != 2 || !absl::SimpleAtod(sample.values(1).string_value(), &value)) {
      return std::nullopt;
    }
    return value;
  }

  // Polls `query` until `accept` holds for its value; the last value seen.
  template <typename Accept>
  std::optional<double> WaitForQuery(const std::string& query, Accept accept) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::optional<double> value;
    while (absl::Now() < deadline) {
      value = Query(query);
      if (value.has_value() && accept(*value)) return value;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "query " << query << " last gave "
                  << (value.has_value() ? absl::StrCat(*value) : "no series");
    return value;
  }

  int prometheus_port_ = 0;
};

TEST_F(MetricsIntegrationTest, PrometheusScrapesBothDaemons) {
  MonitoredDaemon trainer, server;
  StatusResponse trainer_status, server_status;
  ASSERT_NO_FATAL_FAILURE(
      StartAndFinishStream(&trainer, &server, &trainer_status, &server_status));
  ASSERT_NO_FATAL_FAILURE(
      StartPrometheus({{"contrail_trainer", trainer.metrics_port},
                       {"contrail_server", server.metrics_port}}));

  // Predictions, and one refused request, for the request counts.
  auto prediction = PredictionService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < kPredictCalls; ++i) {
    PredictRequest request;
    for (int64_t d : {1, 1, 28, 28}) request.mutable_inputs()->add_shape(d);
    request.mutable_inputs()->mutable_values()->Resize(28 * 28, 0.5f);
    grpc::ClientContext context;
    PredictResponse response;
    ASSERT_TRUE(prediction->Predict(&context, request, &response).ok());
  }
  {
    PredictRequest wrong;
    wrong.mutable_inputs()->add_shape(1);
    wrong.mutable_inputs()->add_values(1.0f);
    grpc::ClientContext context;
    PredictResponse response;
    ASSERT_EQ(prediction->Predict(&context, wrong, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }

  auto equals = [](double want) { return [want](double got) { return got == want; }; };
  auto positive = [](double got) { return got > 0; };
  WaitForQuery(
      "contrail_server_requests_total{job=\"contrail_server\",method=\"Predict\",code=\"OK\"}",
      equals(kPredictCalls));
  WaitForQuery("contrail_server_requests_total{method=\"Predict\",code=\"INVALID_ARGUMENT\"}",
               equals(1));
  WaitForQuery("contrail_server_request_duration_seconds_count{method=\"Predict\"}",
               equals(kPredictCalls + 1));
  // Every update the server applied carried its publish time.
  WaitForQuery("contrail_server_freshness_seconds_count",
               equals(static_cast<double>(server_status.updates_applied())));
  WaitForQuery("contrail_server_update_apply_seconds_count", positive);
  // One forward pass per Predict answered (no --dynamic_batching).
  WaitForQuery("contrail_server_predict_batch_requests_count", equals(kPredictCalls));
  WaitForQuery("contrail_server_predict_batch_requests_sum", equals(kPredictCalls));
  WaitForQuery("contrail_server_predict_forward_seconds_count", equals(kPredictCalls));
  WaitForQuery("contrail_server_update_entries_sum", positive);
  WaitForQuery("contrail_server_model_version{model=\"lenet5\"}",
               equals(static_cast<double>(server_status.version())));
  WaitForQuery("contrail_trainer_model_version{model=\"lenet5\"}",
               equals(static_cast<double>(trainer_status.version())));
  WaitForQuery("contrail_trainer_examples_ingested_total",
               equals(static_cast<double>(trainer_status.examples_accepted())));
  WaitForQuery("contrail_trainer_prequential_accuracy",
               equals(trainer_status.prequential_accuracy()));
  WaitForQuery("contrail_trainer_served_prequential_accuracy",
               equals(trainer_status.served_prequential_accuracy()));
  WaitForQuery("contrail_trainer_connected_servers", equals(1));
  WaitForQuery("contrail_trainer_server_versions_behind{server=\"server-a\"}", equals(0));
  WaitForQuery("up{job=\"contrail_trainer\"}", equals(1));
  WaitForQuery("up{job=\"contrail_server\"}", equals(1));
}

}  // namespace
}  // namespace test
}  // namespace contrail
