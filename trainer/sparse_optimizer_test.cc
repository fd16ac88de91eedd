#include "trainer/sparse_optimizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

constexpr double kLr = 1e-3;
constexpr double kBeta1 = 0.9;
constexpr double kBeta2 = 0.999;
constexpr double kEpsilon = 1e-8;

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

SparseOptimizer::Options OptionsFor(OptimizerKind kind) {
  SparseOptimizer::Options options;
  options.kind = kind;
  options.lr = kLr;
  return options;
}

std::string KindName(OptimizerKind kind) {
  return kind == OptimizerKind::kSgd ? "Sgd" : "Adam";
}

class SparseOptimizerTest : public ::testing::Test {
 protected:
  std::vector<float> Normal(int64_t n) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng_);
    return v;
  }

  // Magnitudes in [0.5, 1.5] with random signs: never zero, so every
  // selected entry moves in a step.
  std::vector<float> NonZero(int64_t n) {
    std::uniform_real_distribution<float> magnitude(0.5f, 1.5f);
    std::bernoulli_distribution negative(0.5);
    std::vector<float> v(n);
    for (float& x : v) x = negative(rng_) ? -magnitude(rng_) : magnitude(rng_);
    return v;
  }

  std::mt19937 rng_{20240601};
};

// ----------------------------------------------------------- dense steps ----

// Runs `steps` dense steps of ours and of torch's `TorchOptimizer` on the
// same weights and gradients (two tensors), expecting equal weights after
// every step.
template <typename TorchOptimizer, typename TorchOptions>
void ExpectDenseMatchesTorch(OptimizerKind kind, const TorchOptions& options,
                             std::vector<std::vector<float>> weights,
                             const std::vector<std::vector<std::vector<float>>>&
                                 gradients) {
  std::vector<int64_t> sizes;
  std::vector<torch::Tensor> params;
  for (const std::vector<float>& w : weights) {
    sizes.push_back(static_cast<int64_t>(w.size()));
    params.push_back(torch::tensor(w, torch::kFloat32).requires_grad_(true));
  }
  SparseOptimizer ours(OptionsFor(kind), sizes);
  TorchOptimizer theirs(params, options);

  for (size_t step = 0; step < gradients.size(); ++step) {
    ours.BeginStep();
    for (size_t t = 0; t < weights.size(); ++t) {
      ours.UpdateDense(t, absl::MakeSpan(weights[t]), gradients[step][t]);
      params[t].mutable_grad() =
          torch::tensor(gradients[step][t], torch::kFloat32);
    }
    theirs.step();
    EXPECT_EQ(ours.step(), static_cast<int64_t>(step + 1));
    for (size_t t = 0; t < weights.size(); ++t) {
      const torch::Tensor expected = params[t].detach().contiguous();
      const float* e = expected.data_ptr<float>();
      for (size_t i = 0; i < weights[t].size(); ++i) {
        const double tolerance = 1e-6 * std::max(1.0f, std::abs(e[i]));
        EXPECT_NEAR(weights[t][i], e[i], tolerance)
            << KindName(kind) << " step " << step + 1 << " tensor " << t
            << " entry " << i;
      }
    }
  }
}

TEST_F(SparseOptimizerTest, DenseSgdMatchesTorchSgd) {
  const std::vector<std::vector<float>> weights = {Normal(12), Normal(5)};
  std::vector<std::vector<std::vector<float>>> gradients;
  for (int step = 0; step < 5; ++step) gradients.push_back({Normal(12), Normal(5)});
  ExpectDenseMatchesTorch<torch::optim::SGD>(
      OptimizerKind::kSgd, torch::optim::SGDOptions(kLr), weights,
      gradients);
}

TEST_F(SparseOptimizerTest, DenseAdamMatchesTorchAdam) {
  const std::vector<std::vector<float>> weights = {Normal(12), Normal(5)};
  std::vector<std::vector<std::vector<float>>> gradients;
  for (int step = 0; step < 6; ++step) gradients.push_back({Normal(12), Normal(5)});
  // Zero and tiny gradients exercise epsilon and the moments' decay.
  gradients[2][0][3] = 0.0f;
  gradients[3][1][1] = 1e-6f;
  // torch's defaults: betas (0.9, 0.999), eps 1e-8.
  ExpectDenseMatchesTorch<torch::optim::Adam>(
      OptimizerKind::kAdam, torch::optim::AdamOptions(kLr), weights,
      gradients);
}

// ---------------------------------------------------------- sparse steps ----

class SparseStepTest : public SparseOptimizerTest,
                       public ::testing::WithParamInterface<OptimizerKind> {};

TEST_P(SparseStepTest, ChangesExactlyTheSelectedEntries) {
  std::vector<std::vector<float>> weights = {Normal(12), Normal(5)};
  SparseOptimizer optimizer(OptionsFor(GetParam()), {12, 5});
  // Per step, per tensor; some entries come back, some never get selected,
  // and tensor 1 sits out a step.
  const std::vector<std::vector<std::vector<uint32_t>>> selections = {
      {{0, 3, 7}, {4}},
      {{1, 3}, {}},
      {{11}, {0, 1, 2}},
      {{0, 1, 2, 3, 7}, {2}},
  };
  for (size_t step = 0; step < selections.size(); ++step) {
    optimizer.BeginStep();
    for (size_t t = 0; t < weights.size(); ++t) {
      const std::vector<float> before = weights[t];
      // Every gradient entry is non-zero, so a leak to an unselected entry
      // would show.
      const std::vector<float> gradient = NonZero(weights[t].size());
      const std::vector<uint32_t>& selected = selections[step][t];
      optimizer.Update(t, absl::MakeSpan(weights[t]), gradient, selected);
      const std::set<uint32_t> chosen(selected.begin(), selected.end());
      for (uint32_t i = 0; i < weights[t].size(); ++i) {
        if (chosen.count(i) > 0) {
          EXPECT_FALSE(SameBits(weights[t][i], before[i]))
              << "selected entry " << i << " of tensor " << t
              << " did not move at step " << step + 1;
        } else {
          EXPECT_TRUE(SameBits(weights[t][i], before[i]))
              << "unselected entry " << i << " of tensor " << t
              << " changed at step " << step + 1 << ": " << before[i]
              << " -> " << weights[t][i];
        }
      }
    }
  }
}

TEST_P(SparseStepTest, SelectingEveryEntryEqualsTheDenseStep) {
  const std::vector<float> initial = Normal(9);
  std::vector<float> sparse = initial;
  std::vector<float> dense = initial;
  SparseOptimizer sparse_optimizer(OptionsFor(GetParam()), {9});
  SparseOptimizer dense_optimizer(OptionsFor(GetParam()), {9});
  const std::vector<uint32_t> all = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  for (int step = 0; step < 4; ++step) {
    const std::vector<float> gradient = Normal(9);
    sparse_optimizer.BeginStep();
    dense_optimizer.BeginStep();
    sparse_optimizer.Update(0, absl::MakeSpan(sparse), gradient, all);
    dense_optimizer.UpdateDense(0, absl::MakeSpan(dense), gradient);
    for (size_t i = 0; i < dense.size(); ++i) {
      EXPECT_TRUE(SameBits(sparse[i], dense[i]))
          << "step " << step + 1 << " entry " << i << ": " << sparse[i]
          << " vs " << dense[i];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, SparseStepTest,
    ::testing::Values(OptimizerKind::kSgd, OptimizerKind::kAdam),
    [](const ::testing::TestParamInfo<OptimizerKind>& info) {
      return KindName(info.param);
    });

TEST_F(SparseOptimizerTest, SparseSgdStepIsLrTimesGradient) {
  std::vector<float> weights = {0.5f, -2.0f, 3.0f};
  const std::vector<float> gradient = {4.0f, 8.0f, -16.0f};
  SparseOptimizer optimizer(OptionsFor(OptimizerKind::kSgd), {3});
  optimizer.BeginStep();
  optimizer.Update(0, absl::MakeSpan(weights), gradient, {0, 2});
  const float lr = static_cast<float>(kLr);
  EXPECT_EQ(weights[0], 0.5f - lr * 4.0f);
  EXPECT_EQ(weights[1], -2.0f);
  EXPECT_EQ(weights[2], 3.0f - lr * -16.0f);
}

// --------------------------------------------------------------- lazy Adam ----

// One Adam update by hand (Kingma & Ba 2015, Algorithm 1, in torch.optim's
// arrangement): `m` and `v` are the moments after this step's gradient,
// `t` the global step count.
double AdamWeight(double w, double m, double v, int t) {
  const double bias_correction1 = 1.0 - std::pow(kBeta1, t);
  const double bias_correction2 = 1.0 - std::pow(kBeta2, t);
  const double denom = std::sqrt(v) / std::sqrt(bias_correction2) + kEpsilon;
  return w - kLr / bias_correction1 * m / denom;
}

// A float weight of magnitude ~1 carries ~6e-8 of rounding per operation;
// every wrong bias correction is off by more than 1e-4.
constexpr double kWeightTolerance = 5e-7;

TEST_F(SparseOptimizerTest, LazyAdamFirstUpdateAtStepThreeUsesStepThreeBias) {
  std::vector<float> weights = {0.5f, 1.0f, -1.0f};
  SparseOptimizer optimizer(OptionsFor(OptimizerKind::kAdam), {3});
  // Steps 1 and 2 move entries 1 and 2, never entry 0, though its gradient
  // is non-zero.
  for (int step = 1; step <= 2; ++step) {
    optimizer.BeginStep();
    optimizer.Update(0, absl::MakeSpan(weights), {3.0f, 0.7f, -0.4f}, {1, 2});
  }
  ASSERT_EQ(weights[0], 0.5f);

  optimizer.BeginStep();
  constexpr double g = 0.25;
  optimizer.Update(0, absl::MakeSpan(weights),
                   {static_cast<float>(g), 0.0f, 0.0f}, {0});

  // Entry 0's moments start from zero at its first selection...
  const double m = (1.0 - kBeta1) * g;
  const double v = (1.0 - kBeta2) * g * g;
  // ...and are bias-corrected for the global step 3: lr * 0.6388 here,
  // against lr * 1.0 had step 1's correction been used.
  const double expected = AdamWeight(0.5, m, v, /*t=*/3);
  EXPECT_NEAR(weights[0], expected, kWeightTolerance);
  EXPECT_NEAR(0.5 - expected, 6.388e-4, 1e-6) << "hand computation drifted";
}

TEST_F(SparseOptimizerTest, LazyAdamMomentsRestWhileUnselected) {
  std::vector<float> weights = {0.5f, 1.0f};
  SparseOptimizer optimizer(OptionsFor(OptimizerKind::kAdam), {2});
  constexpr double g1 = 0.25;
  constexpr double g3 = -0.5;

  optimizer.BeginStep();  // step 1: entry 0 selected
  optimizer.Update(0, absl::MakeSpan(weights), {static_cast<float>(g1), 1.0f},
                   {0, 1});
  const double m1 = (1.0 - kBeta1) * g1;
  const double v1 = (1.0 - kBeta2) * g1 * g1;
  ASSERT_NEAR(weights[0], AdamWeight(0.5, m1, v1, 1), kWeightTolerance);
  const float w1 = weights[0];

  optimizer.BeginStep();  // step 2: entry 0 not selected
  optimizer.Update(0, absl::MakeSpan(weights), {2.0f, 1.0f}, {1});

  optimizer.BeginStep();  // step 3: entry 0 selected again
  optimizer.Update(0, absl::MakeSpan(weights), {static_cast<float>(g3), 1.0f},
                   {0, 1});
  // The moments decay once (not twice): step 2 left them alone.
  const double m3 = kBeta1 * m1 + (1.0 - kBeta1) * g3;
  const double v3 = kBeta2 * v1 + (1.0 - kBeta2) * g3 * g3;
  EXPECT_NEAR(weights[0], AdamWeight(w1, m3, v3, 3),
              kWeightTolerance);
}

// ------------------------------------------------------------------ parsing ----

}  // namespace
}  // namespace contrail
