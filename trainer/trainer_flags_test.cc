#include "trainer/trainer_flags.h"

#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

ABSL_DECLARE_FLAG(std::string, input_shape);
ABSL_DECLARE_FLAG(int64_t, num_classes);

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TrainerFlagsTest : public ::testing::Test {
 private:
  // Puts every flag back after each test.
  absl::FlagSaver saver_;
};

TEST_F(TrainerFlagsTest, ShapeAndClassesAreUnsetByDefault) {
  absl::StatusOr<TrainingConfig> config = TrainingConfigFromFlags();
  ASSERT_OK(config);
  EXPECT_EQ(config->input_shape_size(), 0);
  EXPECT_FALSE(config->has_num_classes());
}

TEST_F(TrainerFlagsTest, InputShapeIsCommaSeparatedSizes) {
  absl::SetFlag(&FLAGS_input_shape, "4,8");
  absl::SetFlag(&FLAGS_num_classes, 3);
  absl::StatusOr<TrainingConfig> config = TrainingConfigFromFlags();
  ASSERT_OK(config);
  EXPECT_THAT(config->input_shape(), ElementsAre(4, 8));
  EXPECT_EQ(config->num_classes(), 3);

  absl::SetFlag(&FLAGS_input_shape, "16");
  config = TrainingConfigFromFlags();
  ASSERT_OK(config);
  EXPECT_THAT(config->input_shape(), ElementsAre(16));
}

TEST_F(TrainerFlagsTest, AMalformedInputShapeNamesTheFlag) {
  for (const char* bad : {"4,x", "4,,8", "4,0", "-1", "4 8"}) {
    absl::SetFlag(&FLAGS_input_shape, bad);
    EXPECT_THAT(TrainingConfigFromFlags(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(std::string("--input_shape: expected comma-separated "
                                               "sizes >= 1 such as 4,8, got \"") +
                                   bad + "\"")))
        << bad;
  }
}

}  // namespace
}  // namespace contrail
