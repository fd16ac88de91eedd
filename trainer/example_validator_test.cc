#include "trainer/example_validator.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

Example MakeExample(std::vector<int64_t> shape, int values, int64_t label) {
  Example example;
  for (int64_t d : shape) example.mutable_inputs()->add_shape(d);
  for (int i = 0; i < values; ++i) example.mutable_inputs()->add_values(0.5f * i);
  example.set_label(label);
  return example;
}

class ExampleValidatorTest : public ::testing::Test {
 protected:
  ExampleValidator validator_{{1, 2, 3}, 4};
};

TEST_F(ExampleValidatorTest, AcceptsAnExampleOfTheModel) {
  EXPECT_EQ(validator_.Check(MakeExample({1, 2, 3}, 6, 0)), std::nullopt);
  EXPECT_EQ(validator_.Check(MakeExample({1, 2, 3}, 6, 3)), std::nullopt);
}

TEST_F(ExampleValidatorTest, RejectsAnotherShape) {
  const auto rejection = validator_.Check(MakeExample({6}, 6, 0));
  ASSERT_TRUE(rejection.has_value());
  EXPECT_EQ(rejection->reason, RejectReason::kWrongShape);
  EXPECT_THAT(rejection->message, HasSubstr("[6] is not the model's [1, 2, 3]"));
}

TEST_F(ExampleValidatorTest, RejectsValuesThatDoNotFillTheShape) {
  const auto rejection = validator_.Check(MakeExample({1, 2, 3}, 5, 0));
  ASSERT_TRUE(rejection.has_value());
  EXPECT_EQ(rejection->reason, RejectReason::kWrongShape);
}

TEST_F(ExampleValidatorTest, RejectsNonFiniteInputs) {
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Example example = MakeExample({1, 2, 3}, 6, 1);
    example.mutable_inputs()->set_values(4, bad);
    const auto rejection = validator_.Check(example);
    ASSERT_TRUE(rejection.has_value()) << bad;
    EXPECT_EQ(rejection->reason, RejectReason::kNonFinite);
    EXPECT_THAT(rejection->message, HasSubstr("input 4"));
  }
}

TEST_F(ExampleValidatorTest, RejectsLabelsOutsideTheClasses) {
  for (int64_t label : {-1, 4, 1000}) {
    const auto rejection = validator_.Check(MakeExample({1, 2, 3}, 6, label));
    ASSERT_TRUE(rejection.has_value()) << label;
    EXPECT_EQ(rejection->reason, RejectReason::kLabelOutOfRange);
  }
}

TEST_F(ExampleValidatorTest, AppendsInputsAndLabel) {
  Examples out;
  ExampleValidator::AppendTo(MakeExample({1, 2, 3}, 6, 2), &out);
  ExampleValidator::AppendTo(MakeExample({1, 2, 3}, 6, 3), &out);
  EXPECT_EQ(out.count(), 2);
  EXPECT_EQ(out.inputs.size(), 12u);
  EXPECT_THAT(out.labels, ElementsAre(2, 3));
}

TEST(RejectionCounterTest, CountsByReasonAndDescribesTheFirst) {
  RejectionCounter counter;
  EXPECT_EQ(counter.Summary(), "");
  for (int i = 0; i < 7; ++i) {
    counter.Record({i % 2 ? RejectReason::kNonFinite : RejectReason::kWrongShape,
                    "why"},
                   i, i == 0 ? "first" : "");
  }
  EXPECT_EQ(counter.total(), 7);
  EXPECT_THAT(counter.by_reason(),
              ElementsAre(Pair("non_finite", 3), Pair("wrong_shape", 4)));
  ASSERT_EQ(counter.first().size(), size_t{RejectionCounter::kKeptDescriptions});
  EXPECT_EQ(counter.first()[0], "example 0 (id first): why");
  EXPECT_EQ(counter.first()[1], "example 1: why");
  EXPECT_THAT(counter.Summary(),
              HasSubstr("7 rejected (non_finite: 3, wrong_shape: 4); first: example 0"));
}

}  // namespace
}  // namespace contrail
