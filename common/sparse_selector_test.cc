#include "common/sparse_selector.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

// Every index set must be strictly increasing.
bool StrictlyIncreasing(const std::vector<uint32_t>& indices) {
  for (size_t i = 1; i < indices.size(); ++i) {
    if (indices[i - 1] >= indices[i]) return false;
  }
  return true;
}

std::vector<uint32_t> Iota(int64_t n) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

class TopK : public ::testing::Test {
 protected:
  // n values whose magnitudes are a random permutation of 1..n (so they are
  // unique and exact in float), each with a random sign.
  std::vector<float> UniqueMagnitudes(int64_t n) {
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>(i + 1);
    std::shuffle(values.begin(), values.end(), rng_);
    std::bernoulli_distribution negative(0.5);
    for (float& v : values) {
      if (negative(rng_)) v = -v;
    }
    return values;
  }

  // The index set torch::topk picks for |values|.
  static std::set<uint32_t> TorchTopK(const std::vector<float>& values,
                                      int64_t k) {
    torch::Tensor t =
        torch::from_blob(const_cast<float*>(values.data()),
                         {static_cast<int64_t>(values.size())}, torch::kFloat)
            .abs();
    torch::Tensor indices = std::get<1>(torch::topk(t, k));
    std::set<uint32_t> out;
    auto accessor = indices.accessor<int64_t, 1>();
    for (int64_t i = 0; i < accessor.size(0); ++i) {
      out.insert(static_cast<uint32_t>(accessor[i]));
    }
    return out;
  }

  std::mt19937 rng_{20240611};
};

TEST_F(TopK, MatchesTorchTopKOfMagnitudesForManySizesAndKs) {
  struct Case {
    int64_t n;
    std::vector<int64_t> ks;
  };
  const std::vector<Case> cases = {
      {1, {1}},
      {2, {1, 2}},
      {7, {1, 3, 6, 7}},
      {1000, {1, 5, 10, 500, 999, 1000}},
      {61706, {1, 3, 62, 617, 61705, 61706}},
      {100003, {1, 4, 100, 50001, 100003}},
  };
  for (const Case& c : cases) {
    const std::vector<float> values = UniqueMagnitudes(c.n);
    for (int64_t k : c.ks) {
      SCOPED_TRACE(testing::Message() << "n=" << c.n << " k=" << k);
      std::vector<uint32_t> indices;
      SelectTopK(values, k, &indices);
      ASSERT_EQ(indices.size(), static_cast<size_t>(k));
      EXPECT_TRUE(StrictlyIncreasing(indices));
      EXPECT_EQ(std::set<uint32_t>(indices.begin(), indices.end()),
                TorchTopK(values, k));
    }
  }
}

TEST_F(TopK, KeepsLargestMagnitudesPerTensor) {
  const std::vector<float> values = {0.5f, -9.0f, 3.0f, -4.0f, 8.0f, 0.0f};
  std::vector<uint32_t> indices;
  SelectTopK(values, 3, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 3, 4));
}

TEST_F(TopK, RanksByMagnitudeNotSignedValue) {
  const std::vector<float> values = {1.0f, -100.0f, 2.0f, -50.0f, 3.0f};
  std::vector<uint32_t> indices;
  SelectTopK(values, 2, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 3));
}

TEST_F(TopK, KLargerThanSizeClampsToEveryIndex) {
  for (int64_t n : {1, 2, 7, 1000}) {
    const std::vector<float> values = UniqueMagnitudes(n);
    for (int64_t k : {n + 1, 2 * n + 5}) {
      std::vector<uint32_t> indices;
      SelectTopK(values, k, &indices);
      EXPECT_THAT(indices, ElementsAreArray(Iota(n))) << "n=" << n << " k=" << k;
    }
  }
}

TEST_F(TopK, KOfZeroOrNegativeOrEmptyInputSelectsNothing) {
  const std::vector<float> values = UniqueMagnitudes(10);
  std::vector<uint32_t> indices = {42};
  SelectTopK(values, 0, &indices);
  EXPECT_THAT(indices, IsEmpty());
  indices = {42};
  SelectTopK(values, -3, &indices);
  EXPECT_THAT(indices, IsEmpty());
  indices = {42};
  SelectTopK({}, 5, &indices);
  EXPECT_THAT(indices, IsEmpty());
}

TEST_F(TopK, ClearsPreviousContentsOfOutput) {
  const std::vector<float> values = {1.0f, 5.0f, 2.0f};
  std::vector<uint32_t> indices = {7, 8, 9, 10};
  SelectTopK(values, 1, &indices);
  EXPECT_THAT(indices, ElementsAre(1));
}

TEST_F(TopK, AllEqualMagnitudesBreakTiesTowardLowestIndices) {
  for (int64_t n : {1, 2, 7, 1000, 61706}) {
    std::vector<float> values(n, 0.25f);
    // Mixed signs: equal magnitudes, so still all tied.
    for (int64_t i = 0; i < n; i += 3) values[i] = -0.25f;
    for (int64_t k : {int64_t{1}, std::min<int64_t>(n, 5), n}) {
      std::vector<uint32_t> indices;
      SelectTopK(values, k, &indices);
      EXPECT_THAT(indices, ElementsAreArray(Iota(k))) << "n=" << n << " k=" << k;
    }
  }
}

TEST_F(TopK, AllZeroValuesSelectLowestIndices) {
  const std::vector<float> values(100, 0.0f);
  std::vector<uint32_t> indices;
  SelectTopK(values, 4, &indices);
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3));
}

TEST_F(TopK, TiesAtThresholdFillRemainingPlacesInIndexOrder) {
  // Magnitude 9 is in for sure; three entries tie at 3 for the remaining two.
  const std::vector<float> values = {1.0f, 3.0f, -9.0f, 2.0f, -3.0f, 3.0f};
  std::vector<uint32_t> indices;
  SelectTopK(values, 3, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 2, 4));
}

TEST_F(TopK, NeverSelectsNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> values = {nan, 1.0f, -nan, -5.0f, nan, 2.0f, 0.0f};
  std::vector<uint32_t> indices;
  SelectTopK(values, 2, &indices);
  EXPECT_THAT(indices, ElementsAre(3, 5));

  // Asking for more than the non-NaN entries yields just those.
  SelectTopK(values, 7, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 3, 5, 6));
  SelectTopK(values, 5, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 3, 5, 6));
  SelectTopK(values, 4, &indices);
  EXPECT_THAT(indices, ElementsAre(1, 3, 5, 6));
}

TEST_F(TopK, AllNaNSelectsNothing) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> values(5, nan);
  std::vector<uint32_t> indices;
  SelectTopK(values, 3, &indices);
  EXPECT_THAT(indices, IsEmpty());
}

TEST_F(TopK, NeverSelectsNaNAmongManyRandomValues) {
  std::vector<float> values = UniqueMagnitudes(1000);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Put NaN where the largest magnitudes were.
  std::vector<float> without_nan = values;
  for (float& v : values) {
    if (std::fabs(v) > 990.0f) v = nan;
  }
  for (float& v : without_nan) {
    if (std::fabs(v) > 990.0f) v = 0.0f;  // below all remaining, never picked
  }
  std::vector<uint32_t> indices;
  SelectTopK(values, 20, &indices);
  ASSERT_EQ(indices.size(), 20u);
  EXPECT_TRUE(StrictlyIncreasing(indices));
  for (uint32_t i : indices) EXPECT_FALSE(std::isnan(values[i])) << i;
  EXPECT_EQ(std::set<uint32_t>(indices.begin(), indices.end()),
            TorchTopK(without_nan, 20));
}

TEST_F(TopK, InfinityCountsAsLargestMagnitude) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {1.0f, -inf, 1e30f, 2.0f};
  std::vector<uint32_t> indices;
  SelectTopK(values, 1, &indices);
  EXPECT_THAT(indices, ElementsAre(1));
}

TEST(KeepCount, RoundsRatioTimesSizeToNearest) {
  EXPECT_EQ(KeepCount(61706, 0.001), 62);  // 61.706
  EXPECT_EQ(KeepCount(1000, 0.0114), 11);  // 11.4
  EXPECT_EQ(KeepCount(1000, 0.0116), 12);  // 11.6
  EXPECT_EQ(KeepCount(100, 0.125), 13);    // 12.5 rounds half away from zero
  EXPECT_EQ(KeepCount(100, 0.5), 50);
}

TEST(KeepCount, KeepsAtLeastOne) {
  EXPECT_EQ(KeepCount(1, 0.001), 1);
  EXPECT_EQ(KeepCount(10, 0.001), 1);
  EXPECT_EQ(KeepCount(1000, 0.0), 1);
  EXPECT_EQ(KeepCount(1000, 1e-12), 1);
  EXPECT_EQ(KeepCount(1000, -0.5), 1);
}

TEST(KeepCount, KeepsAtMostAll) {
  EXPECT_EQ(KeepCount(7, 1.0), 7);
  EXPECT_EQ(KeepCount(7, 3.0), 7);
  EXPECT_EQ(KeepCount(1, 1.0), 1);
}

TEST(KeepCount, EmptyTensorKeepsNothing) { EXPECT_EQ(KeepCount(0, 0.5), 0); }

TEST(RandomK, ReturnsKDistinctSortedIndicesInRange) {
  std::mt19937_64 rng(7);
  for (int64_t n : {1, 2, 7, 1000, 61706}) {
    for (int64_t k : {int64_t{1}, std::min<int64_t>(n, 3), n / 2 + 1, n}) {
      std::vector<uint32_t> indices;
      SelectRandomK(n, k, &rng, &indices);
      SCOPED_TRACE(testing::Message() << "n=" << n << " k=" << k);
      ASSERT_EQ(indices.size(), static_cast<size_t>(k));
      EXPECT_TRUE(StrictlyIncreasing(indices));  // hence distinct
      EXPECT_LT(indices.back(), static_cast<uint32_t>(n));
    }
  }
}

TEST(RandomK, KClampsToRange) {
  std::mt19937_64 rng(7);
  std::vector<uint32_t> indices;
  SelectRandomK(5, 9, &rng, &indices);
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4));
  SelectRandomK(5, 0, &rng, &indices);
  EXPECT_THAT(indices, IsEmpty());
  SelectRandomK(5, -1, &rng, &indices);
  EXPECT_THAT(indices, IsEmpty());
}

TEST(RandomK, SameSeedGivesSameIndices) {
  std::mt19937_64 a(1234), b(1234);
  for (int draw = 0; draw < 5; ++draw) {
    std::vector<uint32_t> from_a, from_b;
    SelectRandomK(61706, 62, &a, &from_a);
    SelectRandomK(61706, 62, &b, &from_b);
    EXPECT_EQ(from_a, from_b) << "draw " << draw;
  }
}

TEST(RandomK, DifferentSeedsGiveDifferentIndices) {
  std::mt19937_64 a(1), b(2);
  std::vector<uint32_t> from_a, from_b;
  SelectRandomK(61706, 62, &a, &from_a);
  SelectRandomK(61706, 62, &b, &from_b);
  EXPECT_NE(from_a, from_b);
}

TEST(RandomK, ChoosesEveryIndexAboutKOverNOfTheTime) {
  constexpr int64_t kN = 20;
  constexpr int64_t kK = 5;
  constexpr int kDraws = 20000;
  std::mt19937_64 rng(99);
  std::vector<int> hits(kN, 0);
  std::vector<uint32_t> indices;
  for (int draw = 0; draw < kDraws; ++draw) {
    SelectRandomK(kN, kK, &rng, &indices);
    for (uint32_t i : indices) ++hits[i];
  }
  // Expected 5000 each, standard deviation about 61; allow +-10%.
  const double expected = static_cast<double>(kDraws) * kK / kN;
  for (int64_t i = 0; i < kN; ++i) {
    EXPECT_NEAR(hits[i], expected, 0.1 * expected) << "index " << i;
  }
}

class SparseSelectorTest : public ::testing::Test {
 protected:
  std::vector<float> RandomGradient(int64_t n) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> g(n);
    for (float& v : g) v = normal(rng_);
    return g;
  }

  // Runs `steps` steps on every tensor and checks the error-feedback
  // invariants of each Select call.
  void CheckResidualInvariants(SparseSelector* selector,
                               const std::vector<int64_t>& sizes, int steps) {
    for (int step = 0; step < steps; ++step) {
      for (size_t t = 0; t < sizes.size(); ++t) {
        SCOPED_TRACE(testing::Message() << "step " << step << " tensor " << t);
        const std::vector<float> old_gradient = RandomGradient(sizes[t]);
        const absl::Span<const float> r = selector->residual(t);
        const std::vector<float> old_residual(r.begin(), r.end());
        ASSERT_EQ(old_residual.size(), static_cast<size_t>(sizes[t]));
        std::vector<float> gradient = old_gradient;
        std::vector<uint32_t> indices;
        selector->Select(t, absl::MakeSpan(gradient), &indices);

        const int64_t k = KeepCount(sizes[t], selector->options().ratio);
        ASSERT_EQ(indices.size(), static_cast<size_t>(k));
        ASSERT_GE(indices.size(), 1u);
        EXPECT_TRUE(StrictlyIncreasing(indices));
        const absl::Span<const float> residual = selector->residual(t);
        std::vector<bool> selected(sizes[t], false);
        for (uint32_t i : indices) {
          ASSERT_LT(i, sizes[t]);
          selected[i] = true;
        }
        std::vector<float> sum(sizes[t]);
        for (int64_t i = 0; i < sizes[t]; ++i) {
          sum[i] = old_gradient[i] + old_residual[i];
          if (selected[i]) {
            EXPECT_EQ(gradient[i], sum[i]) << "gradient holds the sum at " << i;
          }
          const float sent = selected[i] ? gradient[i] : 0.0f;
          EXPECT_EQ(sent + residual[i], sum[i]) << "nothing lost at " << i;
          if (selected[i]) {
            EXPECT_EQ(residual[i], 0.0f) << i;
          }
        }
        if (selector->options().sparsity == Sparsity::kTopK) {
          std::vector<uint32_t> expected;
          SelectTopK(sum, k, &expected);
          EXPECT_EQ(indices, expected);
        }
      }
    }
  }

  std::mt19937 rng_{31337};
};

TEST_F(SparseSelectorTest, TopKSendsPlusResidualEqualsGradientPlusOldResidual) {
  const std::vector<int64_t> sizes = {1000, 61706, 7, 1};
  SparseSelector::Options options;
  options.sparsity = Sparsity::kTopK;
  options.ratio = 0.01;
  SparseSelector selector(options, sizes);
  CheckResidualInvariants(&selector, sizes, /*steps=*/4);
}

TEST_F(SparseSelectorTest, RandomKSendsPlusResidualEqualsGradientPlusOldResidual) {
  const std::vector<int64_t> sizes = {1000, 7, 1};
  SparseSelector::Options options;
  options.sparsity = Sparsity::kRandomK;
  options.ratio = 0.05;
  options.seed = 5;
  SparseSelector selector(options, sizes);
  CheckResidualInvariants(&selector, sizes, /*steps=*/4);
}

TEST_F(SparseSelectorTest, TinyRatioStillSelectsOneEntryPerTensor) {
  const std::vector<int64_t> sizes = {61706, 500, 3, 1};
  SparseSelector::Options options;
  options.sparsity = Sparsity::kTopK;
  options.ratio = 1e-9;
  SparseSelector selector(options, sizes);
  for (size_t t = 0; t < sizes.size(); ++t) {
    std::vector<float> gradient = RandomGradient(sizes[t]);
    std::vector<uint32_t> indices;
    selector.Select(t, absl::MakeSpan(gradient), &indices);
    EXPECT_EQ(indices.size(), 1u) << "tensor " << t;
  }
}

TEST_F(SparseSelectorTest, TopKResidualAccumulatesUntilEntryIsSelected) {
  SparseSelector::Options options;
  options.sparsity = Sparsity::kTopK;
  options.ratio = 0.1;  // one of ten
  SparseSelector selector(options, {10});
  // Entry 0 gets 1.0 every step; entry 5 gets 0.4, too small on its own.
  auto step_gradient = [] {
    std::vector<float> g(10, 0.0f);
    g[0] = 1.0f;
    g[5] = 0.4f;
    return g;
  };
  std::vector<uint32_t> indices;

  std::vector<float> g = step_gradient();
  selector.Select(0, absl::MakeSpan(g), &indices);
  EXPECT_THAT(indices, ElementsAre(0));
  EXPECT_EQ(selector.residual(0)[5], 0.4f);
  EXPECT_EQ(selector.residual(0)[0], 0.0f);

  g = step_gradient();
  selector.Select(0, absl::MakeSpan(g), &indices);
  EXPECT_THAT(indices, ElementsAre(0));
  const float after_two = 0.4f + 0.4f;
  EXPECT_EQ(selector.residual(0)[5], after_two);

  g = step_gradient();
  selector.Select(0, absl::MakeSpan(g), &indices);
  EXPECT_THAT(indices, ElementsAre(5));  // 1.2 > 1.0
  EXPECT_EQ(g[5], 0.4f + after_two);
  EXPECT_EQ(selector.residual(0)[5], 0.0f);
  EXPECT_EQ(selector.residual(0)[0], 1.0f);  // now entry 0 waits its turn
}

TEST_F(SparseSelectorTest, ResidualsAreKeptPerTensor) {
  SparseSelector::Options options;
  options.sparsity = Sparsity::kTopK;
  options.ratio = 0.5;
  SparseSelector selector(options, {2, 2});
  std::vector<uint32_t> indices;
  std::vector<float> a = {3.0f, 1.0f};
  selector.Select(0, absl::MakeSpan(a), &indices);
  EXPECT_THAT(selector.residual(0), ElementsAre(0.0f, 1.0f));
  EXPECT_THAT(selector.residual(1), ElementsAre(0.0f, 0.0f));
  std::vector<float> b = {0.0f, 0.0f};
  selector.Select(1, absl::MakeSpan(b), &indices);
  EXPECT_THAT(b, ElementsAre(0.0f, 0.0f));
  EXPECT_THAT(selector.residual(0), ElementsAre(0.0f, 1.0f));
}

TEST_F(SparseSelectorTest, NoneSelectsEverythingAndKeepsNoResidual) {
  const std::vector<int64_t> sizes = {100, 1};
  SparseSelector::Options options;
  options.sparsity = Sparsity::kNone;
  options.ratio = 0.001;
  SparseSelector selector(options, sizes);
  for (int step = 0; step < 3; ++step) {
    for (size_t t = 0; t < sizes.size(); ++t) {
      const std::vector<float> original = RandomGradient(sizes[t]);
      std::vector<float> gradient = original;
      std::vector<uint32_t> indices;
      selector.Select(t, absl::MakeSpan(gradient), &indices);
      EXPECT_THAT(indices, ElementsAreArray(Iota(sizes[t])));
      EXPECT_EQ(gradient, original);
      for (float r : selector.residual(t)) EXPECT_EQ(r, 0.0f);
    }
  }
}

}  // namespace
}  // namespace contrail
