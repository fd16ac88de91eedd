#include "trainer/example_history.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace contrail {
namespace {

using ::testing::ElementsAre;

// Examples of two floats each: {i, -i}, labelled i.
Examples Numbered(int64_t begin, int64_t end) {
  Examples examples;
  for (int64_t i = begin; i < end; ++i) {
    examples.inputs.push_back(static_cast<float>(i));
    examples.inputs.push_back(static_cast<float>(-i));
    examples.labels.push_back(i);
  }
  return examples;
}

TEST(ExampleHistoryTest, UnboundedKeepsEveryExample) {
  ExampleHistory history({2});
  history.Append(Numbered(0, 5));
  history.Append(Numbered(5, 8));
  EXPECT_EQ(history.first(), 0);
  EXPECT_EQ(history.end(), 8);
  EXPECT_THAT(history.Labels(0, 8), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_THAT(history.Inputs(6, 8), ElementsAre(6, -6, 7, -7));
  EXPECT_THAT(history.BatchShape(6, 8), ElementsAre(2, 2));
}

TEST(ExampleHistoryTest, BoundedKeepsTheNewestAndIndexesByArrival) {
  ExampleHistory history({2}, /*capacity=*/8);
  for (int64_t i = 0; i < 100; i += 3) {
    history.Append(Numbered(i, i + 3));
    const int64_t end = i + 3;
    ASSERT_EQ(history.end(), end);
    ASSERT_EQ(history.first(), std::max<int64_t>(0, end - 8));
    // Every kept example is where its arrival index says.
    for (int64_t j = history.first(); j < end; ++j) {
      ASSERT_EQ(history.Labels(j, j + 1)[0], j);
      ASSERT_EQ(history.Inputs(j, j + 1)[1], -static_cast<float>(j));
    }
  }
}

TEST(ExampleHistoryTest, GatherReadsKeptExamplesAfterCompaction) {
  ExampleHistory history({2}, /*capacity=*/4);
  for (int64_t i = 0; i < 20; ++i) history.Append(Numbered(i, i + 1));
  ASSERT_EQ(history.first(), 16);
  const auto [inputs, labels] = history.Gather({19, 16, 17});
  EXPECT_THAT(std::vector<int64_t>(labels.data_ptr<int64_t>(),
                                   labels.data_ptr<int64_t>() + 3),
              ElementsAre(19, 16, 17));
  EXPECT_EQ(inputs.size(0), 3);
  EXPECT_EQ(inputs[1][1].item<float>(), -16.0f);
}

}  // namespace
}  // namespace contrail
