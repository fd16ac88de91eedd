#include "common/monitoring_server.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/daemon.h"
#include "common/grpc_request_metrics.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "prometheus/registry.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A StatusService answering with a status the test sets, or an error.
class FakeStatusService final : public StatusService::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*, const StatusRequest*,
                         StatusResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
    *response = status_;
    return grpc::Status::OK;
  }
  StatusResponse Get() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  void Set(const StatusResponse& status, bool fail = false) {
    absl::MutexLock lock(&mu_);
    status_ = status;
    fail_ = fail;
  }

 private:
  absl::Mutex mu_;
  StatusResponse status_ ABSL_GUARDED_BY(mu_);
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
};

StatusResponse TrainerStatus() {
  StatusResponse status;
  status.set_role("trainer");
  status.set_phase(STREAMING);
  status.mutable_spec()->set_architecture("lenet5");
  status.set_version(42);
  status.set_examples_accepted(1000);
  status.set_examples_rejected(3);
  (*status.mutable_rejected_by_reason())["wrong_size"] = 3;
  status.set_prequential_accuracy(0.75);
  status.set_served_prequential_accuracy(0.7);
  status.set_subscribers(2);
  status.set_updates_published(40);
  status.set_payload_bytes_published(4000);
  return status;
}

class MonitoringServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_.Set(TrainerStatus());
    requests_ = std::make_unique<GrpcRequestMetrics>("contrail_trainer", registry_.get());
    GrpcServerOptions grpc_options;
    grpc_options.make_interceptors = [this] { return requests_->MakeInterceptorFactories(); };
    absl::StatusOr<StartedServer> grpc_server =
        StartGrpcServer("127.0.0.1:0", {&service_}, grpc_options);
    ASSERT_OK(grpc_server.status());
    grpc_server_ = std::move(grpc_server->server);
    stub_ = StatusService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", grpc_server->port), grpc::InsecureChannelCredentials()));

    MonitoringServer::Options options;
    options.http.listen = "127.0.0.1:0";
    options.sample_every = absl::Milliseconds(10);
    MonitoringServer::Sources sources;
    sources.status = [this] { return service_.Get(); };
    sources.extra = [] {
      google::protobuf::Struct extra;
      (*extra.mutable_fields())["freshness_seconds"].set_number_value(0.004);
      return extra;
    };
    sources.collectables = {registry_.get()};
    absl::StatusOr<std::unique_ptr<MonitoringServer>> server =
        MonitoringServer::Create(options, std::move(sources), "--metrics_listen");
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    ASSERT_OK(server_->Start());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    if (grpc_server_) grpc_server_->Shutdown();
  }

  std::string Get(const std::string& path) {
    httplib::Result result = client_->Get(path.c_str());
    EXPECT_TRUE(result) << path;
    if (!result) return "";
    EXPECT_EQ(result->status, 200) << path;
    return result->body;
  }

  grpc::Status CallGetStatus() {
    grpc::ClientContext context;
    StatusResponse response;
    return stub_->GetStatus(&context, StatusRequest(), &response);
  }

  FakeStatusService service_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<GrpcRequestMetrics> requests_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<StatusService::Stub> stub_;
  std::unique_ptr<MonitoringServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(MonitoringServerTest, MetricsCarryTheStatusFigures) {
  const std::string text = Get("/metrics");
  EXPECT_THAT(text, HasSubstr("contrail_trainer_model_version{model=\"lenet5\"} 42\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_examples_ingested_total 1000\n"));
  EXPECT_THAT(text,
              HasSubstr("contrail_trainer_examples_rejected_total{reason=\"wrong_size\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_prequential_accuracy 0.75\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_served_prequential_accuracy 0.7\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_connected_servers 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE contrail_trainer_examples_ingested_total counter"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_phase{phase=\"STREAMING\"} 1\n"));
  StatusResponse moved = TrainerStatus();
  moved.set_version(43);
  service_.Set(moved);
  EXPECT_THAT(Get("/metrics"), HasSubstr("contrail_trainer_model_version{model=\"lenet5\"} 43\n"));
}

TEST_F(MonitoringServerTest, CountsRequestsByMethodAndCode) {
  ASSERT_TRUE(CallGetStatus().ok());
  ASSERT_TRUE(CallGetStatus().ok());
  service_.Set(TrainerStatus(), /*fail=*/true);
  ASSERT_EQ(CallGetStatus().error_code(), grpc::StatusCode::UNAVAILABLE);
  const std::string text = Get("/metrics");
  EXPECT_THAT(text, HasSubstr("contrail_trainer_requests_total{code=\"OK\",method=\"GetStatus\","
                              "service=\"contrail.StatusService\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_requests_total{code=\"UNAVAILABLE\","
                              "method=\"GetStatus\",service=\"contrail.StatusService\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("contrail_trainer_request_duration_seconds_count{"
                              "method=\"GetStatus\",service=\"contrail.StatusService\"} 3\n"));
}

TEST_F(MonitoringServerTest, StatusJsonIsGetStatusWithHistory) {
  // The sampler runs every 10 ms: wait for a few samples.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string json;
  do {
    json = Get("/status.json");
    absl::SleepFor(absl::Milliseconds(20));
  } while (json.find("],[") == std::string::npos && absl::Now() < deadline);
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  const google::protobuf::Struct& status = parsed.fields().at("status").struct_value();
  EXPECT_EQ(status.fields().at("version").string_value(), "42");  // uint64 as a string
  EXPECT_EQ(status.fields().at("prequential_accuracy").number_value(), 0.75);
  EXPECT_EQ(status.fields().at("role").string_value(), "trainer");
  EXPECT_EQ(parsed.fields().at("extra").struct_value().fields().at("freshness_seconds")
                .number_value(),
            0.004);
  const auto& history = parsed.fields().at("history").list_value();
  ASSERT_GE(history.values_size(), 2);
  const auto& last = history.values(history.values_size() - 1).list_value();
  ASSERT_EQ(last.values_size(), 5);
  EXPECT_EQ(last.values(1).number_value(), 42);
  EXPECT_EQ(last.values(2).number_value(), 0.75);
  EXPECT_EQ(last.values(3).number_value(), 0.7);
  EXPECT_EQ(last.values(4).number_value(), 0.004);
}

TEST_F(MonitoringServerTest, ServesTheSelfContainedStatusPage) {
  const std::string page = Get("/status");
  EXPECT_THAT(page, HasSubstr("id=\"version\""));
  EXPECT_THAT(page, HasSubstr("id=\"prequential_accuracy\""));
  EXPECT_THAT(page, HasSubstr("fetch(\"/status.json\""));
  // Nothing from elsewhere: no external scripts, styles or images.
  EXPECT_THAT(page, Not(HasSubstr("src=")));
  EXPECT_THAT(page, Not(HasSubstr("http")));
}

TEST(MonitoringServer, ABadListenAddressNamesTheFlag) {
  MonitoringServer::Options options;
  options.http.listen = "nonsense";
  MonitoringServer::Sources sources;
  sources.status = [] { return StatusResponse(); };
  EXPECT_THAT(MonitoringServer::Create(options, sources, "--metrics_listen"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--metrics_listen must be host:port")));
}

TEST(MonitoringServer, NeedsAStatusSource) {
  EXPECT_THAT(MonitoringServer::Create(MonitoringServer::Options(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("status")));
}

}  // namespace
}  // namespace contrail
