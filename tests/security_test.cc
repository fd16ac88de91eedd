// End-to-end tests of transport security, tokens, health and reflection,
// on the real trainer, server and contrailctl binaries: certificates are
// made with openssl at test time (tests/test_util/test_certificates.h),
// and every refusal is asked for by a real client over a real socket.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/transport_security.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/test_certificates.h"

namespace contrail {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::HasSubstr;
using test::DaemonFlags;
using test::RunningDaemon;
using test::TestTmpDir;

constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
constexpr absl::Duration kRunDeadline = absl::Seconds(90);
constexpr absl::Duration kPollInterval = absl::Milliseconds(50);

// Tokens of the trainer's and the server's --tokens_file.
constexpr char kServerToken[] = "server0123456789server0123456789";   // subscribe,status
constexpr char kFeederToken[] = "feeder0123456789feeder0123456789";   // ingest
constexpr char kReaderToken[] = "reader0123456789reader0123456789";   // predict
constexpr char kWatcherToken[] = "watch0123456789watch0123456789xx";  // status

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = absl::StrCat(TestTmpDir(), "/", name);
  std::ofstream(path) << contents;
  return path;
}

std::chrono::system_clock::time_point Deadline() {
  return absl::ToChronoTime(absl::Now() + kRpcDeadline);
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<test::TestCertificates> certs =
        test::MakeTestCertificates(TestTmpDir() + "/pki");
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new test::TestCertificates(*certs);
    data_dir_ = new std::string(TestTmpDir() + "/fashion-mnist");
    const absl::Status written =
        test::WriteSyntheticFashionMnist(*data_dir_, 1500, 100, /*seed=*/5);
    ASSERT_TRUE(written.ok()) << written;
    tokens_file_ = new std::string(WriteFile(
        "tokens", absl::StrCat("# token name roles\n", kServerToken, " server subscribe,status\n",
                               kFeederToken, " feeder ingest\n", kReaderToken,
                               " reader predict\n", kWatcherToken, " watcher status\n")));
  }

  void TearDown() override {
    runner_.StopAll();
    if (HasFailure()) std::fprintf(stderr, "%s", runner_.Logs().c_str());
  }

  // A short replay stream with mutual TLS and tokens.
  DaemonFlags SecureTrainerFlags() const {
    return {{"listen", "127.0.0.1:0"},     {"data_dir", *data_dir_},
            {"model", "lenet5"},           {"initial_examples", "500"},
            {"initial_epochs", "1"},       {"stream_examples", "400"},
            {"sparsity", "topk"},          {"ratio", "0.01"},
            {"replay_rate", "0"},          {"threads", "1"},
            {"tls_cert", certs_->cert},    {"tls_key", certs_->key},
            {"tls_ca", certs_->ca},        {"tokens_file", *tokens_file_}};
  }

  DaemonFlags SecureServerFlags(const std::string& trainer) const {
    return {{"listen", "127.0.0.1:0"},
            {"trainer", absl::StrCat("localhost:", trainer.substr(trainer.rfind(':') + 1))},
            {"threads", "1"},
            {"tls_cert", certs_->cert},
            {"tls_key", certs_->key},
            {"tls_ca", certs_->ca},
            {"tokens_file", *tokens_file_},
            {"trainer_token_file", WriteFile("server.token", kServerToken)}};
  }

  // A channel to `daemon` with `tls` (plaintext when off), by the name in
  // the certificate.
  static std::shared_ptr<grpc::Channel> Channel(const RunningDaemon& daemon, const TlsOptions& tls) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        MakeChannelCredentials(tls);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    return grpc::CreateChannel(absl::StrCat("localhost:", daemon.port), *credentials);
  }

  static TlsOptions ClientTls() { return {certs_->cert, certs_->key, certs_->ca}; }

  static grpc::Status GetStatus(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& token, StatusResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    AttachBearerToken(token, &context);
    return StatusService::NewStub(channel)->GetStatus(&context, StatusRequest(), response);
  }

  static grpc::Status Predict(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& token, PredictResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    AttachBearerToken(token, &context);
    PredictRequest request;
    for (int64_t d : {1, 1, 28, 28}) request.mutable_inputs()->add_shape(d);
    for (int i = 0; i < 28 * 28; ++i) request.mutable_inputs()->add_values(0.25f);
    return PredictionService::NewStub(channel)->Predict(&context, request, response);
  }

  // The status of the first read of a subscription.
  static grpc::Status Subscribe(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    AttachBearerToken(token, &context);
    SubscribeRequest request;
    request.set_subscriber("security_test");
    std::unique_ptr<grpc::ClientReader<Update>> reader =
        UpdateService::NewStub(channel)->SubscribeUpdates(&context, request);
    Update update;
    if (reader->Read(&update)) return grpc::Status::OK;
    return reader->Finish();
  }

  static HealthCheckResponse::ServingStatus HealthOf(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    HealthCheckResponse response;
    const grpc::Status status =
        Health::NewStub(channel)->Check(&context, HealthCheckRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  // Waits until the status of `channel` (with `token`) satisfies `done`.
  template <typename Predicate>
  static absl::StatusOr<StatusResponse> WaitForStatus(const std::shared_ptr<grpc::Channel>& channel,
                                                      const std::string& token, Predicate done) {
    const absl::Time deadline = absl::Now() + kRunDeadline;
    StatusResponse status;
    while (absl::Now() < deadline) {
      status.Clear();
      const grpc::Status rpc = GetStatus(channel, token, &status);
      if (!rpc.ok()) return absl::InternalError(rpc.error_message());
      if (done(status)) return status;
      absl::SleepFor(kPollInterval);
    }
    return absl::DeadlineExceededError(status.ShortDebugString());
  }

  static test::TestCertificates* certs_;
  static std::string* data_dir_;
  static std::string* tokens_file_;
  test::DaemonCluster runner_{TestTmpDir()};
};

test::TestCertificates* SecurityTest::certs_ = nullptr;
std::string* SecurityTest::data_dir_ = nullptr;
std::string* SecurityTest::tokens_file_ = nullptr;

TEST_F(SecurityTest, TrainerToServerOverMutualTlsWithTokensEndsIdentical) {
  absl::StatusOr<RunningDaemon> trainer =
      runner_.Start("trainer", "trainer/trainer", SecureTrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<RunningDaemon> server =
      runner_.Start("server", "server/server", SecureServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  const auto to_trainer = Channel(*trainer, ClientTls());
  const auto to_server = Channel(*server, ClientTls());

  absl::StatusOr<StatusResponse> done = WaitForStatus(
      to_trainer, kWatcherToken, [](const StatusResponse& s) { return s.phase() == DONE; });
  ASSERT_TRUE(done.ok()) << done.status();
  absl::StatusOr<StatusResponse> served =
      WaitForStatus(to_server, kWatcherToken, [&](const StatusResponse& s) {
        return s.version() == done->version() && s.checksum() == done->checksum();
      });
  ASSERT_TRUE(served.ok()) << served.status() << " trainer " << done->ShortDebugString();
  EXPECT_GT(served->version(), 1u);

  PredictResponse prediction;
  const grpc::Status predicted = Predict(to_server, kReaderToken, &prediction);
  ASSERT_TRUE(predicted.ok()) << predicted.error_message();
  EXPECT_EQ(prediction.version(), done->version());
  // The server's port takes TLS clients without a certificate.
  EXPECT_TRUE(Predict(Channel(*server, {"", "", certs_->ca}), kReaderToken, &prediction).ok());
}

TEST_F(SecurityTest, EachWrongCredentialIsRefusedWithItsCode) {
  absl::StatusOr<RunningDaemon> trainer =
      runner_.Start("trainer", "trainer/trainer", SecureTrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<RunningDaemon> server =
      runner_.Start("server", "server/server", SecureServerFlags(trainer->address()));
  ASSERT_TRUE(server.ok()) << server.status();
  StatusResponse status;
  PredictResponse prediction;

  // The transport: plaintext, a client that trusts another CA, a client
  // certificate from another CA, and (at the trainer, which requires one)
  // no client certificate.
  EXPECT_EQ(GetStatus(Channel(*trainer, {}), kWatcherToken, &status).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetStatus(Channel(*trainer, {certs_->cert, certs_->key, certs_->other_ca}),
                      kWatcherToken, &status)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetStatus(Channel(*trainer, {certs_->other_cert, certs_->other_key, certs_->ca}),
                      kWatcherToken, &status)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetStatus(Channel(*trainer, {"", "", certs_->ca}), kWatcherToken, &status)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Predict(Channel(*server, {}), kReaderToken, &prediction).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // The tokens: none, unknown, and a known one without the role.
  const auto to_trainer = Channel(*trainer, ClientTls());
  const auto to_server = Channel(*server, ClientTls());
  EXPECT_EQ(GetStatus(to_trainer, "", &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetStatus(to_trainer, "nobody0123456789nobody0123456789", &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status wrong_role = GetStatus(to_trainer, kFeederToken, &status);
  EXPECT_EQ(wrong_role.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(wrong_role.error_message(), HasSubstr("feeder"));
  EXPECT_EQ(Subscribe(to_trainer, kWatcherToken).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Subscribe(to_trainer, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Predict(to_server, kWatcherToken, &prediction).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Predict(to_server, "", &prediction).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // And the right ones are served.
  EXPECT_TRUE(GetStatus(to_trainer, kWatcherToken, &status).ok());
  EXPECT_TRUE(Subscribe(to_trainer, kServerToken).ok());
  ASSERT_TRUE(WaitForStatus(to_server, kWatcherToken, [](const StatusResponse& s) {
                return s.version() > 0;
              }).ok());
  EXPECT_TRUE(Predict(to_server, kReaderToken, &prediction).ok());
}

TEST_F(SecurityTest, ContrailctlCarriesTlsAndToken) {
  absl::StatusOr<RunningDaemon> trainer =
      runner_.Start("trainer", "trainer/trainer", SecureTrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const std::string target = absl::StrCat("--target=localhost:", trainer->port);
  const DaemonFlags tls = {{"tls_cert", certs_->cert}, {"tls_key", certs_->key}, {"tls_ca", certs_->ca}};

  DaemonFlags with_token = tls;
  with_token["token_file"] = WriteFile("watcher.token", kWatcherToken);
  test::ChildProcess* allowed =
      runner_.StartProcess("contrailctl", "server/contrailctl", with_token, {"status", target});
  ASSERT_NE(allowed, nullptr);
  EXPECT_EQ(allowed->WaitForExitCode(kRunDeadline), 0) << allowed->Stderr();
  EXPECT_THAT(allowed->Stdout(), HasSubstr("trainer"));

  test::ChildProcess* refused =
      runner_.StartProcess("contrailctl", "server/contrailctl", tls, {"status", target});
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->WaitForExitCode(kRunDeadline), 1);
  EXPECT_THAT(refused->Stderr(), HasSubstr("bearer token"));

  DaemonFlags bad_file = tls;
  bad_file["tls_ca"] = "/no/such/ca.pem";
  test::ChildProcess* bad =
      runner_.StartProcess("contrailctl", "server/contrailctl", bad_file, {"status", target});
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(bad->WaitForExitCode(kRunDeadline), 2);
  EXPECT_THAT(bad->Stderr(), HasSubstr("tls_ca"));
}

TEST_F(SecurityTest, DaemonsRefusePlaintextBeyondLoopbackUnlessInsecure) {
  for (const std::string binary : {"trainer/trainer", "server/server"}) {
    DaemonFlags flags = {{"listen", "0.0.0.0:0"}, {"data_dir", *data_dir_}};
    if (binary == "server/server") flags = {{"listen", "0.0.0.0:0"}};
    test::ChildProcess* refused = runner_.StartProcess("refused", binary, flags);
    ASSERT_NE(refused, nullptr);
    EXPECT_EQ(refused->WaitForExitCode(absl::Seconds(60)), 2) << binary;
    EXPECT_THAT(refused->Stderr(), AllOf(HasSubstr("refusing to serve plaintext on 0.0.0.0:0"),
                                         HasSubstr("--insecure")))
        << binary;
  }
  DaemonFlags insecure = {{"listen", "0.0.0.0:0"}, {"insecure", "true"}, {"threads", "1"}};
  absl::StatusOr<RunningDaemon> server = runner_.Start("server", "server/server", insecure);
  EXPECT_TRUE(server.ok()) << server.status();
}

TEST_F(SecurityTest, PlaintextHealthPortAnswersProbesOfATlsServer) {
  absl::StatusOr<RunningDaemon> trainer =
      runner_.Start("trainer", "trainer/trainer", SecureTrainerFlags());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  DaemonFlags flags = SecureServerFlags(trainer->address());
  RunningDaemon health;
  health.port = test::PickFreePort();
  ASSERT_GT(health.port, 0);
  flags["health_listen"] = health.address();
  absl::StatusOr<RunningDaemon> server = runner_.Start("server", "server/server", flags);
  ASSERT_TRUE(server.ok()) << server.status();
  const auto probe = Channel(health, {});

  // The probe, in plaintext, sees the server turn SERVING once it holds a
  // model; that port serves nothing else.
  const absl::Time deadline = absl::Now() + kRunDeadline;
  while (HealthOf(probe) != HealthCheckResponse::SERVING && absl::Now() < deadline) {
    absl::SleepFor(kPollInterval);
  }
  EXPECT_EQ(HealthOf(probe), HealthCheckResponse::SERVING);
  StatusResponse status;
  EXPECT_TRUE(GetStatus(Channel(*server, ClientTls()), kWatcherToken, &status).ok());
  EXPECT_GT(status.version(), 0u);
  EXPECT_EQ(GetStatus(probe, kWatcherToken, &status).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecurityTest, HealthFollowsTheModelAndReflectionListsTheServices) {
  // A server whose trainer is not there yet holds no model.
  DaemonFlags trainer_flags = SecureTrainerFlags();
  trainer_flags.erase("tls_cert");
  trainer_flags.erase("tls_key");
  trainer_flags.erase("tls_ca");
  trainer_flags.erase("tokens_file");
  absl::StatusOr<RunningDaemon> placeholder =
      runner_.Start("nothing", "server/server", {{"listen", "127.0.0.1:0"},
                                                       {"trainer", "127.0.0.1:1"}});
  ASSERT_TRUE(placeholder.ok()) << placeholder.status();
  EXPECT_EQ(HealthOf(Channel(*placeholder, {})), HealthCheckResponse::NOT_SERVING);

  absl::StatusOr<RunningDaemon> trainer = runner_.Start("trainer", "trainer/trainer", trainer_flags);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ(HealthOf(Channel(*trainer, {})), HealthCheckResponse::SERVING);
  absl::StatusOr<RunningDaemon> server = runner_.Start(
      "server", "server/server", {{"listen", "127.0.0.1:0"}, {"trainer", trainer->address()}});
  ASSERT_TRUE(server.ok()) << server.status();
  const auto to_server = Channel(*server, {});
  ASSERT_TRUE(WaitForStatus(to_server, "", [](const StatusResponse& s) {
                return s.version() > 0;
              }).ok());
  EXPECT_EQ(HealthOf(to_server), HealthCheckResponse::SERVING);

  // Reflection: the list of services, as grpcurl asks for it.
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  auto stream = grpc::reflection::v1alpha::ServerReflection::NewStub(to_server)
                    ->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, Contains("contrail.PredictionService"));
  EXPECT_THAT(names, Contains("contrail.StatusService"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace contrail
