#include "common/transport_security.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/health_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/test_certificates.h"

namespace contrail {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

TEST(IsLoopbackListen, KnowsLoopbackFromEverythingElse) {
  EXPECT_TRUE(IsLoopbackListen("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListen("127.8.9.10:0"));
  EXPECT_TRUE(IsLoopbackListen("localhost:1"));
  EXPECT_TRUE(IsLoopbackListen("[::1]:50051"));
  EXPECT_FALSE(IsLoopbackListen("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListen("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListen(":50051"));
  EXPECT_FALSE(IsLoopbackListen("10.1.2.3:50051"));
  EXPECT_FALSE(IsLoopbackListen("trainer.example.com:50051"));
}

TEST(CheckExposure, RefusesPlaintextBeyondLoopbackUnlessTold) {
  EXPECT_THAT(CheckExposure("listen", "0.0.0.0:50051", /*tls=*/false, /*insecure=*/false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("--listen"), HasSubstr("0.0.0.0:50051"),
                             HasSubstr("--insecure"), HasSubstr("--tls_cert"))));
  EXPECT_OK(CheckExposure("listen", "0.0.0.0:50051", /*tls=*/true, /*insecure=*/false));
  EXPECT_OK(CheckExposure("listen", "0.0.0.0:50051", /*tls=*/false, /*insecure=*/true));
  EXPECT_OK(CheckExposure("listen", "127.0.0.1:50051", /*tls=*/false, /*insecure=*/false));
}

class TransportSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<test::TestCertificates> certificates =
        test::MakeTestCertificates(test::TestTmpDir() + "/pki");
    ASSERT_OK(certificates);
    certs_ = *certificates;
  }

  // Starts a server on a free loopback port with `tls`, answering health
  // checks.
  void Serve(const TlsOptions& tls, ClientCertificates clients) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(tls, clients);
    ASSERT_OK(credentials);
    GrpcServerOptions options;
    options.credentials = *credentials;
    absl::StatusOr<StartedServer> started =
        StartGrpcServer("127.0.0.1:0", {&health_}, options);
    ASSERT_OK(started);
    server_ = std::move(started->server);
    port_ = started->port;
  }

  // The status of one health check over a channel made from `tls` (to
  // "localhost", the name in the certificate).
  grpc::Status CallWith(const TlsOptions& tls) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        MakeChannelCredentials(tls);
    EXPECT_OK(credentials);
    if (!credentials.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "no credentials");
    auto stub = Health::NewStub(
        grpc::CreateChannel(absl::StrCat("localhost:", port_), *credentials));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    HealthCheckRequest request;
    HealthCheckResponse response;
    return stub->Check(&context, request, &response);
  }

  TlsOptions ServerTls() const { return {certs_.cert, certs_.key, certs_.ca}; }

  test::TestCertificates certs_;
  HealthServiceImpl health_{[] { return true; }, {}};
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TransportSecurityTest, MutualTlsServesOnlyClientsWithACertificateFromTheCa) {
  Serve(ServerTls(), ClientCertificates::kRequired);

  EXPECT_TRUE(CallWith({certs_.cert, certs_.key, certs_.ca}).ok());
  // Plaintext, no client certificate, a client certificate from another
  // CA, and a client that trusts another CA: each fails the handshake.
  EXPECT_EQ(CallWith({}).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallWith({"", "", certs_.ca}).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallWith({certs_.other_cert, certs_.other_key, certs_.ca}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallWith({certs_.cert, certs_.key, certs_.other_ca}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, ServerTlsWithoutClientCertificatesServesAnyTlsClient) {
  Serve(ServerTls(), ClientCertificates::kVerifyIfPresent);

  EXPECT_TRUE(CallWith({"", "", certs_.ca}).ok());
  EXPECT_TRUE(CallWith({certs_.cert, certs_.key, certs_.ca}).ok());
  EXPECT_EQ(CallWith({}).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A certificate it is shown must still verify.
  EXPECT_EQ(CallWith({certs_.other_cert, certs_.other_key, certs_.ca}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, BadFilesAreRefusedNamingTheFlag) {
  const std::string not_pem = test::TestTmpDir() + "/not.pem";
  std::ofstream(not_pem) << "hello\n";

  EXPECT_THAT(MakeServerCredentials({certs_.cert, "", certs_.ca}, ClientCertificates::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key")));
  EXPECT_THAT(MakeServerCredentials({"/no/such.pem", certs_.key, certs_.ca},
                                    ClientCertificates::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tls_cert"), HasSubstr("/no/such.pem"))));
  EXPECT_THAT(MakeServerCredentials({certs_.cert, not_pem, certs_.ca},
                                    ClientCertificates::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tls_key"), HasSubstr("no PEM"))));
  EXPECT_THAT(MakeServerCredentials({certs_.cert, certs_.key, ""}, ClientCertificates::kRequired),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_ca")));
  EXPECT_OK(MakeServerCredentials({certs_.cert, certs_.key, ""},
                                  ClientCertificates::kNotRequested));
  EXPECT_THAT(MakeChannelCredentials({certs_.cert, certs_.key, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_ca")));
  EXPECT_THAT(MakeChannelCredentials({certs_.cert, "", certs_.ca}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key")));
}

}  // namespace
}  // namespace contrail
