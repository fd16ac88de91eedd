// Where a test finds the files its BUILD rule lists in `data`.
#ifndef CONTRAIL_TESTS_TEST_UTIL_RUNFILES_H_
#define CONTRAIL_TESTS_TEST_UTIL_RUNFILES_H_

#include <cstdlib>
#include <string>

namespace contrail {
namespace test {

// The path of `path` (relative to the workspace root, e.g.
// "tests/tiny_cnn.pt") in the test's runfiles.
inline std::string Runfile(const std::string& path) {
  const char* dir = std::getenv("TEST_SRCDIR");
  return std::string(dir != nullptr ? dir : ".") + "/contrail/" + path;
}

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_RUNFILES_H_
