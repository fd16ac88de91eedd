#include "common/http_server.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<HttpServer> MustCreate(const std::string& listen) {
  HttpServer::Options options;
  options.listen = listen;
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options);
  EXPECT_OK(server.status());
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(HttpServer, ServesRoutesOnThePortItPicked) {
  std::unique_ptr<HttpServer> server = MustCreate("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  int calls = 0;
  server->Handle("/hello", [&calls] {
    HttpServer::Response response;
    response.body = absl::StrCat("hello ", ++calls);
    return response;
  });
  ASSERT_OK(server->Start());
  ASSERT_GT(server->port(), 0);
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result first = client.Get("/hello");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "hello 1");
  EXPECT_EQ(first->get_header_value("Content-Type"), "text/plain; charset=utf-8");
  httplib::Result missing = client.Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  server->Shutdown();
  EXPECT_FALSE(client.Get("/hello"));
}

TEST(HttpServer, RefusesAMalformedListenAddress) {
  for (const std::string listen : {"", "localhost", "127.0.0.1:http", "127.0.0.1:70000"}) {
    HttpServer::Options options;
    options.listen = listen;
    EXPECT_THAT(HttpServer::Create(options),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen must be")))
        << listen;
  }
}

TEST(HttpServer, APortInUseIsAClearError) {
  std::unique_ptr<HttpServer> first = MustCreate("127.0.0.1:0");
  ASSERT_NE(first, nullptr);
  ASSERT_OK(first->Start());
  const std::string taken = absl::StrCat("127.0.0.1:", first->port());
  std::unique_ptr<HttpServer> second = MustCreate(taken);
  ASSERT_NE(second, nullptr);
  EXPECT_THAT(second->Start(), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr(absl::StrCat("cannot listen on ", taken))));
}

TEST(HttpServer, AnAddressOfAnotherMachineIsAClearError) {
  std::unique_ptr<HttpServer> server = MustCreate("192.0.2.1:0");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->Start(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("192.0.2.1:0")));
}

TEST(HttpServer, TlsNeedsBothFilesAndThemToExist) {
  HttpServer::Options options;
  options.tls_cert_file = "/nonexistent/cert.pem";
  EXPECT_THAT(HttpServer::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key_file")));
  options.tls_key_file = "/nonexistent/key.pem";
  EXPECT_THAT(HttpServer::Create(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/cert.pem")));
}

TEST(HttpServer, ServesHttpsWithACertificateAndKey) {
  HttpServer::Options options;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = test::Runfile("common/test_tls_cert.pem");
  options.tls_key_file = test::Runfile("common/test_tls_key.pem");
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options);
  ASSERT_OK(server.status());
  (*server)->Handle("/metrics", [] {
    HttpServer::Response response;
    response.body = "up 1\n";
    return response;
  });
  ASSERT_OK((*server)->Start());
  httplib::SSLClient tls("127.0.0.1", (*server)->port());
  tls.enable_server_certificate_verification(false);
  httplib::Result result = tls.Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->body, "up 1\n");
  // Plain HTTP gets no answer from it.
  httplib::Client plain("127.0.0.1", (*server)->port());
  plain.set_read_timeout(2);
  httplib::Result refused = plain.Get("/metrics");
  EXPECT_TRUE(!refused || refused->status != 200);
}

TEST(HttpServer, RefusesFilesThatAreNoCertificate) {
  HttpServer::Options options;
  options.tls_cert_file = test::Runfile("common/test_tls_key.pem");
  options.tls_key_file = test::Runfile("common/test_tls_cert.pem");
  EXPECT_THAT(HttpServer::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a PEM certificate")));
}

TEST(HttpServer, ShutdownRightAfterStartReturns) {
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<HttpServer> server = MustCreate("127.0.0.1:0");
    ASSERT_NE(server, nullptr);
    ASSERT_OK(server->Start());
    server->Shutdown();
  }
}

}  // namespace
}  // namespace contrail
