#include "trainer/sgd_step.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "common/model.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

// Every parameter and buffer, copied.
std::vector<std::vector<float>> Copy(const Model& model) {
  std::vector<std::vector<float>> copy;
  for (absl::Span<const float> t : model.Views()) copy.emplace_back(t.begin(), t.end());
  return copy;
}

class SgdStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    model_ = Model::Create("mlp", /*seed=*/5).value();
    inputs_ = torch::rand({16, 1, 28, 28});
    labels_ = torch::randint(0, 10, {16}, torch::kLong);
  }

  SparseSelector::Options TopK(double ratio) const {
    SparseSelector::Options options;
    options.sparsity = Sparsity::kTopK;
    options.ratio = ratio;
    return options;
  }

  std::unique_ptr<Model> model_;
  torch::Tensor inputs_;
  torch::Tensor labels_;
};

TEST_F(SgdStepTest, SparseStepChangesOnlyTheSelectedEntriesOfEachTensor) {
  SgdStep step(model_.get(), SparseOptimizer::Options(), TopK(0.01));
  const std::vector<std::vector<float>> before = Copy(*model_);
  absl::StatusOr<double> loss = step.Run(inputs_, labels_, /*sparse=*/true);
  ASSERT_OK(loss);
  EXPECT_TRUE(std::isfinite(*loss));
  const std::vector<std::vector<float>> after = Copy(*model_);
  int64_t changed_total = 0;
  for (size_t t = 0; t < before.size(); ++t) {
    int64_t changed = 0;
    for (size_t i = 0; i < before[t].size(); ++i) changed += before[t][i] != after[t][i];
    const int64_t keep = KeepCount(static_cast<int64_t>(before[t].size()), 0.01);
    EXPECT_LE(changed, keep) << model_->spec().tensors(t).name();
    changed_total += changed;
  }
  EXPECT_GT(changed_total, 0);
}

TEST_F(SgdStepTest, DenseStepChangesMostEntries) {
  SgdStep step(model_.get(), SparseOptimizer::Options(), TopK(0.01));
  const std::vector<std::vector<float>> before = Copy(*model_);
  ASSERT_OK(step.Run(inputs_, labels_, /*sparse=*/false));
  const std::vector<std::vector<float>> after = Copy(*model_);
  int64_t changed = 0;
  int64_t total = 0;
  for (size_t t = 0; t < before.size(); ++t) {
    for (size_t i = 0; i < before[t].size(); ++i) changed += before[t][i] != after[t][i];
    total += before[t].size();
  }
  EXPECT_GT(changed, total / 2);
}

TEST_F(SgdStepTest, NonFiniteLossSkipsTheStepAndLeavesTheModel) {
  SgdStep step(model_.get(), SparseOptimizer::Options(), TopK(0.01));
  const std::vector<std::vector<float>> before = Copy(*model_);
  torch::Tensor poisoned = inputs_.clone();
  poisoned[0][0][0][0] = std::nanf("");
  absl::StatusOr<double> loss = step.Run(poisoned, labels_, /*sparse=*/true);
  ASSERT_OK(loss);
  EXPECT_TRUE(std::isnan(*loss));
  EXPECT_EQ(step.skipped_steps(), 1);
  EXPECT_EQ(Copy(*model_), before);
}

TEST_F(SgdStepTest, MalformedInputsAreAnInternalErrorNotAnException) {
  SgdStep step(model_.get(), SparseOptimizer::Options(), TopK(0.01));
  EXPECT_THAT(step.Run(torch::rand({16, 3}), labels_, /*sparse=*/true),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("training step failed")));
}

// The tensor-ops path (what a GPU runs), forced on the CPU, changes the same
// entries to the same values as the span path, step after step (residuals
// and Adam moments included).
TEST_F(SgdStepTest, TensorOpsPathMatchesTheSpanPath) {
  for (const OptimizerKind kind : {OptimizerKind::kAdam, OptimizerKind::kSgd}) {
    for (const bool sparse : {true, false}) {
      SCOPED_TRACE(testing::Message() << "adam " << (kind == OptimizerKind::kAdam)
                                      << " sparse " << sparse);
      std::unique_ptr<Model> spans = Model::Create("mlp", /*seed=*/5).value();
      std::unique_ptr<Model> tensors = Model::Create("mlp", /*seed=*/5).value();
      SparseOptimizer::Options optimizer;
      optimizer.kind = kind;
      optimizer.lr = 0.01;
      SgdStep span_step(spans.get(), optimizer, TopK(0.01));
      SgdStep tensor_step(tensors.get(), optimizer, TopK(0.01), /*tensor_ops=*/true);
      for (int i = 0; i < 3; ++i) {
        const torch::Tensor inputs = torch::rand({16, 1, 28, 28});
        const torch::Tensor labels = torch::randint(0, 10, {16}, torch::kLong);
        ASSERT_OK(span_step.Run(inputs, labels, sparse));
        ASSERT_OK(tensor_step.Run(inputs, labels, sparse));
      }
      const std::vector<std::vector<float>> a = Copy(*spans);
      const std::vector<std::vector<float>> b = Copy(*tensors);
      for (size_t t = 0; t < a.size(); ++t) {
        for (size_t i = 0; i < a[t].size(); ++i) {
          ASSERT_NEAR(a[t][i], b[t][i], 1e-5f * (1 + std::abs(a[t][i])))
              << model_->spec().tensors(t).name() << "[" << i << "]";
        }
      }
    }
  }
}

TEST_F(SgdStepTest, SparseStepOnTheGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  ASSERT_OK(model_->MoveTo("cuda"));
  SgdStep step(model_.get(), SparseOptimizer::Options(), TopK(0.01));
  absl::StatusOr<double> loss = step.Run(inputs_, labels_, /*sparse=*/true);
  ASSERT_OK(loss);
  EXPECT_TRUE(std::isfinite(*loss));
}

}  // namespace
}  // namespace contrail
