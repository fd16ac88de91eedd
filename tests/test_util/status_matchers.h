// GoogleTest helpers for absl::Status, which Debian's Abseil (20220623)
// does not ship: ASSERT_OK / EXPECT_OK, and StatusIs(code, message matcher)
// for Status and StatusOr.
#ifndef CONTRAIL_TESTS_TEST_UTIL_STATUS_MATCHERS_H_
#define CONTRAIL_TESTS_TEST_UTIL_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace testing_internal {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace testing_internal

// Matches a Status (or StatusOr) whose code is `code` and whose message
// matches `message`.
MATCHER_P2(StatusIs, code, message,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = testing_internal::GetStatus(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message, std::string(status.message()),
                                       result_listener);
}

}  // namespace contrail

#define EXPECT_OK(expr) \
  EXPECT_EQ(::contrail::testing_internal::GetStatus(expr), ::absl::OkStatus())
#define ASSERT_OK(expr) \
  ASSERT_EQ(::contrail::testing_internal::GetStatus(expr), ::absl::OkStatus())

#endif  // CONTRAIL_TESTS_TEST_UTIL_STATUS_MATCHERS_H_
