#include "common/access_policy.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

constexpr char kTokens[] = R"(# token                          name     roles
0123456789abcdef0123456789abcdef   server-1 subscribe,status
feedfeedfeedfeedfeed               feeder   ingest   # a comment
ffffffffffffffffffffffffffffffff   root     all
)";

TEST(AccessPolicyParse, ReadsTokensNamesAndRoles) {
  absl::StatusOr<std::unique_ptr<AccessPolicy>> policy = AccessPolicy::Parse(kTokens, "tokens");
  ASSERT_OK(policy);
  EXPECT_EQ((*policy)->size(), 3u);
  EXPECT_FALSE((*policy)->open());
  EXPECT_TRUE(AccessPolicy::Open().open());
}

TEST(AccessPolicyParse, RefusesBadLinesNamingThem) {
  EXPECT_THAT(AccessPolicy::Parse("0123456789abcdef0123 a\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t:1:"), HasSubstr("2 fields"))));
  EXPECT_THAT(AccessPolicy::Parse("\nshort name predict\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t:2:"), HasSubstr("at least 16"))));
  EXPECT_THAT(AccessPolicy::Parse("0123456789abcdef0123 a predict,train\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown role \"train\"")));
  EXPECT_THAT(AccessPolicy::Parse("0123456789abcdef0123 a predict\n"
                                  "0123456789abcdef0123 b status\n",
                                  "t"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t:2:"), HasSubstr("also a's"))));
  EXPECT_THAT(AccessPolicy::Parse("# nothing\n\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no token")));
  EXPECT_THAT(AccessPolicy::FromFile("/no/such/tokens"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("tokens_file"), HasSubstr("/no/such/tokens"))));
}

TEST(ReadTokenFile, TrimsTheTokenAndRefusesEmptyFiles) {
  const std::string path = test::TestTmpDir() + "/token";
  std::ofstream(path) << "  0123456789abcdef0123\n";
  absl::StatusOr<std::string> token = ReadTokenFile("token_file", path);
  ASSERT_OK(token);
  EXPECT_EQ(*token, "0123456789abcdef0123");
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_THAT(ReadTokenFile("token_file", path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token_file")));
  token = ReadTokenFile("token_file", "");
  ASSERT_OK(token);
  EXPECT_EQ(*token, "");
}

// A service whose one call needs the predict role under `policy`.
class GuardedService final : public Health::Service {
 public:
  explicit GuardedService(const AccessPolicy* policy) : policy_(policy) {}
  grpc::Status Check(grpc::ServerContext* context, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    if (grpc::Status allowed = policy_->Check(*context, Role::kPredict); !allowed.ok()) {
      return allowed;
    }
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }

 private:
  const AccessPolicy* policy_;
};

class AccessPolicyCheckTest : public ::testing::Test {
 protected:
  void Serve(const AccessPolicy* policy) {
    service_ = std::make_unique<GuardedService>(policy);
    absl::StatusOr<StartedServer> started = StartGrpcServer("127.0.0.1:0", {service_.get()});
    ASSERT_OK(started);
    server_ = std::move(started->server);
    stub_ = Health::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", started->port),
                                                grpc::InsecureChannelCredentials()));
  }

  grpc::Status CallWith(const std::string& authorization) {
    grpc::ClientContext context;
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    HealthCheckRequest request;
    HealthCheckResponse response;
    return stub_->Check(&context, request, &response);
  }

  std::unique_ptr<GuardedService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(AccessPolicyCheckTest, ChecksTokenAndRoleOfEveryCall) {
  absl::StatusOr<std::unique_ptr<AccessPolicy>> policy = AccessPolicy::Parse(kTokens, "tokens");
  ASSERT_OK(policy);
  Serve(policy->get());

  const grpc::Status missing = CallWith("");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("predict role"));
  EXPECT_EQ(CallWith("Basic abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallWith("Bearer 0123456789abcdef0123456789abcdee").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status wrong_role = CallWith("Bearer 0123456789abcdef0123456789abcdef");
  EXPECT_EQ(wrong_role.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(wrong_role.error_message(),
              AllOf(HasSubstr("server-1"), HasSubstr("may not predict"),
                    HasSubstr("subscribe,status")));
  EXPECT_TRUE(CallWith("Bearer ffffffffffffffffffffffffffffffff").ok());
}

TEST_F(AccessPolicyCheckTest, AttachBearerTokenSendsWhatCheckReads) {
  absl::StatusOr<std::unique_ptr<AccessPolicy>> policy = AccessPolicy::Parse(kTokens, "tokens");
  ASSERT_OK(policy);
  Serve(policy->get());
  grpc::ClientContext context;
  AttachBearerToken("ffffffffffffffffffffffffffffffff", &context);
  HealthCheckRequest request;
  HealthCheckResponse response;
  EXPECT_TRUE(stub_->Check(&context, request, &response).ok());
}

TEST_F(AccessPolicyCheckTest, OpenPolicyServesEveryone) {
  Serve(&AccessPolicy::Open());
  EXPECT_TRUE(CallWith("").ok());
}

}  // namespace
}  // namespace contrail
