#include "common/daemon.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

TEST(CheckListenAddressTest, AcceptsHostAndPort) {
  for (const std::string listen :
       {"127.0.0.1:0", "0.0.0.0:50052", "localhost:65535", "[::1]:8080", ":50051"}) {
    EXPECT_OK(CheckListenAddress(listen)) << listen;
  }
}

TEST(CheckListenAddressTest, RefusesAMissingOrOutOfRangePortQuotingTheAddress) {
  for (const std::string listen : {"localhost", "127.0.0.1:", "127.0.0.1:http",
                                   "127.0.0.1:-1", "127.0.0.1:65536", ""}) {
    EXPECT_THAT(CheckListenAddress(listen),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("listen must be host:port")))
        << listen;
    EXPECT_THAT(CheckListenAddress(listen),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"" + listen + "\"")));
  }
}

}  // namespace
}  // namespace contrail
