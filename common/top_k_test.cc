#include "common/top_k.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace contrail {
namespace {

std::set<uint32_t> TorchTopK(const std::vector<float>& values, int64_t k) {
  const torch::Tensor t = torch::from_blob(const_cast<float*>(values.data()),
                                           {static_cast<int64_t>(values.size())});
  const torch::Tensor idx = std::get<1>(torch::topk(t.abs(), k));
  std::set<uint32_t> out;
  for (int64_t i = 0; i < k; ++i) out.insert(idx[i].item<int64_t>());
  return out;
}

class TopKTest : public ::testing::Test {
 protected:
  std::mt19937 rng_{20211125};
};

TEST_F(TopKTest, MatchesTorchTopKOnLargeNormalTensors) {
  for (int64_t n : {20000, 100003, 1 << 21}) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(n);
    for (float& v : values) v = normal(rng_);
    for (double ratio : {0.01, 0.001, 0.0001}) {
      const int64_t k = std::max<int64_t>(1, std::llround(ratio * n));
      std::vector<uint32_t> fast;
      SelectTopK(values, k, &fast);
      ASSERT_EQ(static_cast<int64_t>(fast.size()), k) << "n=" << n;
      EXPECT_TRUE(std::is_sorted(fast.begin(), fast.end()));
      EXPECT_EQ(std::set<uint32_t>(fast.begin(), fast.end()), TorchTopK(values, k))
          << "n=" << n << " k=" << k;
    }
  }
}

TEST_F(TopKTest, AgreesWithFullSelectionWhenMostEntriesAreZero) {
  // ReLU networks' gradients are mostly exact zeros: ties at the threshold.
  const int64_t n = 200000;
  std::vector<float> values(n, 0.0f);
  std::uniform_int_distribution<int64_t> where(0, n - 1);
  for (int i = 0; i < 50; ++i) values[where(rng_)] = 1.0f + i;
  for (int64_t k : {10, 50, 200, 2000}) {
    std::vector<uint32_t> fast, full;
    SelectTopK(values, k, &fast);
    SelectTopKByFullSelection(values, k, &full);
    EXPECT_EQ(fast, full) << "k=" << k;
  }
}

TEST_F(TopKTest, BreaksTiesByLowestIndexOnQuantisedValues) {
  const int64_t n = 300000;
  std::uniform_int_distribution<int> level(-20, 20);
  std::vector<float> values(n);
  for (float& v : values) v = 0.125f * level(rng_);
  for (int64_t k : {1, 30, 300, 3000}) {
    std::vector<uint32_t> fast, full;
    SelectTopK(values, k, &fast);
    SelectTopKByFullSelection(values, k, &full);
    EXPECT_EQ(fast, full) << "k=" << k;
  }
}

TEST_F(TopKTest, HandlesHeavyTailsAndSkippedNaNs) {
  const int64_t n = 500000;
  std::cauchy_distribution<float> cauchy(0.0f, 1.0f);
  std::vector<float> values(n);
  for (float& v : values) v = cauchy(rng_);
  values[7] = std::nanf("");
  values[n - 1] = std::nanf("");
  values[1234] = -INFINITY;
  std::vector<uint32_t> fast, full;
  SelectTopK(values, 500, &fast);
  SelectTopKByFullSelection(values, 500, &full);
  EXPECT_EQ(fast, full);
  EXPECT_EQ(fast.size(), 500u);
  EXPECT_TRUE(std::binary_search(fast.begin(), fast.end(), 1234u));
  EXPECT_FALSE(std::binary_search(fast.begin(), fast.end(), 7u));
}

TEST_F(TopKTest, LowersItsEstimateWhenTheLargeValuesHideBetweenSamples) {
  // Large values in a narrow band the stratified sample may miss entirely.
  const int64_t n = 1 << 20;
  std::vector<float> values(n, 1e-6f);
  for (int64_t i = 5000; i < 5400; ++i) values[i] = 1.0f + i;
  std::vector<uint32_t> fast;
  SelectTopK(values, 300, &fast);
  ASSERT_EQ(fast.size(), 300u);
  EXPECT_EQ(fast.front(), 5100u);
  EXPECT_EQ(fast.back(), 5399u);
}

}  // namespace
}  // namespace contrail
