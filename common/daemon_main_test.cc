#include "common/daemon_main.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

std::string TestTmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(DaemonMainDeathTest, FailPrintsOneLineNamingTheProgramAndExitsWith2) {
  EXPECT_EXIT(Fail("trainer", "--model: no such file"), ::testing::ExitedWithCode(2),
              "^trainer: --model: no such file\n$");
  EXPECT_EXIT(Fail("server", absl::InvalidArgumentError("max_batch must be >= 1")),
              ::testing::ExitedWithCode(2), "^server: max_batch must be >= 1\n$");
}

// InitDaemon() for `program` on the command line `args` (program name
// first), which must outlive the positional arguments it returns.
std::vector<char*> Init(const std::string& program, std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return InitDaemon(program, "usage", static_cast<int>(argv.size()), argv.data());
}

TEST(DaemonMainDeathTest, InitDaemonRefusesNegativeThreads) {
  std::vector<std::string> args = {"server", "--threads=-1"};
  EXPECT_EXIT(Init("server", args), ::testing::ExitedWithCode(2),
              "^server: --threads must be >= 0, got -1\n$");
}

TEST(DaemonMainTest, InitDaemonParsesTheSharedFlagsAndReturnsPositionalArguments) {
  const std::string port_file = TestTmpDir() + "/daemon_main_test.port";
  std::vector<std::string> args = {"trainer", "--threads=3", "--port_file=" + port_file,
                                   "extra"};
  const std::vector<char*> positional = Init("trainer", args);
  ASSERT_EQ(positional.size(), 2u);
  EXPECT_STREQ(positional[1], "extra");
  EXPECT_EQ(ThreadsFlag(), 3);

  ASSERT_OK(WritePortFileFlag(4321));
  std::ifstream file(port_file);
  std::stringstream contents;
  contents << file.rdbuf();
  EXPECT_EQ(contents.str(), "4321\n");
}

}  // namespace
}  // namespace contrail
