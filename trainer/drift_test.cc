#include "trainer/drift.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace contrail {
namespace {

// Four 3x3 images whose pixels are their own row-major positions, plus an
// offset per example, with labels 0..3.
LabelledImages Numbered() {
  LabelledImages data;
  data.count = 4;
  data.rows = 3;
  data.cols = 3;
  for (int e = 0; e < 4; ++e) {
    for (int p = 0; p < 9; ++p) data.pixels.push_back(100.0f * e + p);
    data.labels.push_back(e);
  }
  return data;
}

TEST(Drift, LabelPermutationMovesEveryClassAndIsSeeded) {
  for (uint64_t seed : {1u, 2u, 3u, 99u}) {
    const std::vector<int32_t> p = LabelPermutation(10, seed);
    EXPECT_EQ(std::set<int32_t>(p.begin(), p.end()).size(), 10u);
    for (int c = 0; c < 10; ++c) EXPECT_NE(p[c], c) << "seed " << seed;
    EXPECT_EQ(p, LabelPermutation(10, seed));
  }
  EXPECT_NE(LabelPermutation(10, 1), LabelPermutation(10, 2));
}

TEST(Drift, PermuteLabelsChangesOnlyLabelsFromTheDriftPointOn) {
  LabelledImages data = Numbered();
  const LabelledImages before = data;
  ASSERT_TRUE(ApplyDrift(Drift::kPermuteLabels, 2, 5, 4, &data).ok());
  const std::vector<int32_t> p = LabelPermutation(4, 5);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{0, 1, p[2], p[3]}));
  EXPECT_EQ(data.pixels, before.pixels);
}

TEST(Drift, ABurstChangesOnlyTheExamplesInsideIt) {
  LabelledImages data = Numbered();
  ASSERT_TRUE(ApplyDrift(Drift::kPermuteLabels, /*begin=*/1, /*end=*/3, /*seed=*/5,
                         /*classes=*/4, &data)
                  .ok());
  const std::vector<int32_t> p = LabelPermutation(4, 5);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{0, p[1], p[2], 3}));
}

TEST(Drift, RandomLabelsAreSeededValidClassesInsideTheBurst) {
  LabelledImages data;
  data.count = 200;
  data.rows = data.cols = 1;
  data.pixels.assign(200, 0.0f);
  data.labels.assign(200, 7);
  LabelledImages again = data;
  ASSERT_TRUE(ApplyDrift(Drift::kRandomLabels, 50, 150, /*seed=*/3, 10, &data).ok());
  ASSERT_TRUE(ApplyDrift(Drift::kRandomLabels, 50, 150, /*seed=*/3, 10, &again).ok());
  EXPECT_EQ(data.labels, again.labels);
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i) {
    if (i < 50 || i >= 150) {
      EXPECT_EQ(data.labels[i], 7) << i;
    } else {
      EXPECT_GE(data.labels[i], 0);
      EXPECT_LT(data.labels[i], 10);
      seen.insert(data.labels[i]);
    }
  }
  EXPECT_EQ(seen.size(), 10u);  // 100 draws cover every class
}

TEST(Drift, RotateTurnsImagesClockwiseFromTheDriftPointOn) {
  LabelledImages data = Numbered();
  const LabelledImages before = data;
  ASSERT_TRUE(ApplyDrift(Drift::kRotate, 3, 1, 4, &data).ok());
  // 0 1 2 / 3 4 5 / 6 7 8 turned clockwise is 6 3 0 / 7 4 1 / 8 5 2.
  const std::vector<float> last(data.pixels.begin() + 27, data.pixels.end());
  EXPECT_EQ(last, (std::vector<float>{306, 303, 300, 307, 304, 301, 308, 305, 302}));
  EXPECT_TRUE(std::equal(before.pixels.begin(), before.pixels.begin() + 27,
                         data.pixels.begin()));
  EXPECT_EQ(data.labels, before.labels);
  // Four turns are the identity.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ApplyDrift(Drift::kRotate, 3, 1, 4, &data).ok());
  EXPECT_EQ(data.pixels, before.pixels);
}

TEST(Drift, NoneChangesNothingAndRotateNeedsSquareImages) {
  LabelledImages data = Numbered();
  const LabelledImages before = data;
  ASSERT_TRUE(ApplyDrift(Drift::kNone, 0, 1, 4, &data).ok());
  EXPECT_EQ(data.pixels, before.pixels);
  EXPECT_EQ(data.labels, before.labels);
  data.rows = 1;
  data.cols = 9;
  EXPECT_EQ(ApplyDrift(Drift::kRotate, 0, 1, 4, &data).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace contrail
