#include "common/model.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Model> MustCreate(const std::string& architecture,
                                  uint64_t seed) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Create(architecture, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<std::string> TensorNames(const Model& model) {
  std::vector<std::string> names;
  for (const TensorSpec& t : model.spec().tensors()) names.push_back(t.name());
  return names;
}

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(4242); }

  torch::Tensor Inputs(int64_t n) { return torch::rand({n, 1, 28, 28}); }
};

TEST_F(ModelTest, LeNet5HasItsTenTensorsAnd61706Parameters) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(TensorNames(*model),
              ElementsAre("conv1.weight", "conv1.bias", "conv2.weight",
                          "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight",
                          "fc2.bias", "fc3.weight", "fc3.bias"));
  EXPECT_EQ(model->num_parameter_tensors(), 10);
  EXPECT_EQ(ModelSize(model->spec()), 61706);
  EXPECT_EQ(CountEntries(AsConst(model->Views())), 61706);
  EXPECT_TRUE(CheckViewsMatchSpec(model->spec(), AsConst(model->Views())).ok());
  EXPECT_EQ(model->spec().architecture(), "lenet5");
  EXPECT_THAT(model->spec().input_shape(), ElementsAre(1, 28, 28));
  EXPECT_EQ(model->spec().num_classes(), 10);
  for (const TensorSpec& t : model->spec().tensors()) {
    EXPECT_EQ(t.dtype(), "float32") << t.name();
    EXPECT_FALSE(t.is_buffer()) << t.name();
  }
  EXPECT_THAT(model->spec().tensors(0).shape(), ElementsAre(6, 1, 5, 5));
  EXPECT_THAT(model->spec().tensors(4).shape(), ElementsAre(120, 400));
}

TEST_F(ModelTest, MlpHas235146ParametersInSixTensors) {
  std::unique_ptr<Model> model = MustCreate("mlp", 1);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(TensorNames(*model),
              ElementsAre("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                          "fc3.weight", "fc3.bias"));
  EXPECT_EQ(ModelSize(model->spec()), 784 * 256 + 256 + 256 * 128 + 128 +
                                          128 * 10 + 10);
  EXPECT_EQ(ModelSize(model->spec()), 235146);
  EXPECT_EQ(CountEntries(AsConst(model->Views())), 235146);
}

TEST_F(ModelTest, TorchvisionModelsHaveTheirParameterCountsAndFloatBuffers) {
  // torchvision's counts with one input channel and 10 classes.
  for (const auto& [architecture, parameters] :
       std::vector<std::pair<std::string, int64_t>>{{"resnet18", 11175370},
                                                    {"mobilenet_v2", 2236106}}) {
    std::unique_ptr<Model> model = MustCreate(architecture, 1);
    ASSERT_NE(model, nullptr);
    int64_t in_parameters = 0, in_buffers = 0;
    for (const TensorSpec& t : model->spec().tensors()) {
      (t.is_buffer() ? in_buffers : in_parameters) += TensorSize(t);
      EXPECT_EQ(t.dtype(), "float32") << t.name();
      EXPECT_EQ(t.name().find("num_batches_tracked"), std::string::npos);
    }
    EXPECT_EQ(in_parameters, parameters) << architecture;
    EXPECT_GT(in_buffers, 0) << architecture << " has batch-norm statistics";
    EXPECT_NE(model->spec().tensors(model->num_parameter_tensors()).name().find(
                  "running_mean"),
              std::string::npos);
  }
}

TEST_F(ModelTest, ForwardGivesOneRowOfLogitsPerExample) {
  for (const std::string& architecture : Model::Architectures()) {
    std::unique_ptr<Model> model = MustCreate(architecture, 3);
    ASSERT_NE(model, nullptr);
    torch::NoGradGuard no_grad;
    torch::Tensor logits = model->Forward(Inputs(3));
    EXPECT_THAT(logits.sizes().vec(), ElementsAre(3, 10)) << architecture;
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>()) << architecture;
  }
}

TEST_F(ModelTest, SameSeedGivesSameWeights) {
  for (const std::string& architecture : Model::Architectures()) {
    std::unique_ptr<Model> a = MustCreate(architecture, 17);
    // Disturb the global generator in between: Create must reseed.
    torch::rand({100});
    std::unique_ptr<Model> b = MustCreate(architecture, 17);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a->Checksum(), b->Checksum()) << architecture;
  }
}

TEST_F(ModelTest, DifferentSeedsGiveDifferentWeights) {
  for (const std::string& architecture : Model::Architectures()) {
    std::unique_ptr<Model> a = MustCreate(architecture, 17);
    std::unique_ptr<Model> b = MustCreate(architecture, 18);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a->Checksum(), b->Checksum()) << architecture;
  }
}

TEST_F(ModelTest, FingerprintNamesTheArchitectureNotTheWeights) {
  std::unique_ptr<Model> lenet = MustCreate("lenet5", 1);
  std::unique_ptr<Model> lenet_other_seed = MustCreate("lenet5", 2);
  std::unique_ptr<Model> mlp = MustCreate("mlp", 1);
  ASSERT_NE(lenet, nullptr);
  ASSERT_NE(lenet_other_seed, nullptr);
  ASSERT_NE(mlp, nullptr);
  EXPECT_EQ(lenet->spec().fingerprint(), ComputeFingerprint(lenet->spec()));
  EXPECT_EQ(mlp->spec().fingerprint(), ComputeFingerprint(mlp->spec()));
  EXPECT_NE(lenet->spec().fingerprint(), mlp->spec().fingerprint());
  EXPECT_EQ(lenet->spec().fingerprint(), lenet_other_seed->spec().fingerprint());
}

TEST_F(ModelTest, CopyFromMakesModelsBitIdentical) {
  std::unique_ptr<Model> a = MustCreate("lenet5", 1);
  std::unique_ptr<Model> b = MustCreate("lenet5", 2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(a->Checksum(), b->Checksum());
  ASSERT_TRUE(b->CopyFrom(*a).ok());
  EXPECT_EQ(a->Checksum(), b->Checksum());
  torch::NoGradGuard no_grad;
  const torch::Tensor inputs = Inputs(4);
  EXPECT_TRUE(torch::equal(a->Forward(inputs), b->Forward(inputs)));
}

TEST_F(ModelTest, CopyFromADifferentArchitectureIsFailedPrecondition) {
  std::unique_ptr<Model> lenet = MustCreate("lenet5", 1);
  std::unique_ptr<Model> mlp = MustCreate("mlp", 1);
  ASSERT_NE(lenet, nullptr);
  ASSERT_NE(mlp, nullptr);
  const uint64_t before = lenet->Checksum();
  const absl::Status status = lenet->CopyFrom(*mlp);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(lenet->Checksum(), before);
}

TEST_F(ModelTest, ViewsAliasTheTorchStorage) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  const torch::Tensor inputs = Inputs(2);
  const torch::Tensor before = model->Forward(inputs).clone();
  const uint64_t checksum_before = model->Checksum();

  TensorViews views = model->Views();
  absl::Span<float> fc3_bias = views[9];
  ASSERT_EQ(fc3_bias.size(), 10u);
  fc3_bias[3] += 100.0f;

  EXPECT_NE(model->Checksum(), checksum_before);
  const torch::Tensor after = model->Forward(inputs);
  // Only logit 3 moves, by exactly the bias change (up to rounding).
  const torch::Tensor delta = after - before;
  for (int64_t row = 0; row < 2; ++row) {
    for (int64_t c = 0; c < 10; ++c) {
      const float d = delta[row][c].item<float>();
      if (c == 3) {
        EXPECT_NEAR(d, 100.0f, 1e-3f);
      } else {
        EXPECT_EQ(d, 0.0f) << "row " << row << " class " << c;
      }
    }
  }
}

TEST_F(ModelTest, WritingWeightsThroughViewsChangesForward) {
  std::unique_ptr<Model> model = MustCreate("mlp", 5);
  ASSERT_NE(model, nullptr);
  torch::NoGradGuard no_grad;
  const torch::Tensor inputs = Inputs(3);
  const torch::Tensor before = model->Forward(inputs).clone();
  for (absl::Span<float> view : model->Views()) {
    for (float& v : view) v = 0.0f;
  }
  const torch::Tensor after = model->Forward(inputs);
  EXPECT_FALSE(torch::equal(before, after));
  EXPECT_TRUE(torch::equal(after, torch::zeros({3, 10})));
}

TEST_F(ModelTest, MoveToRejectsUnknownDevicesAndCudaWithoutCuda) {
  auto model = Model::Create("lenet5", 1);
  ASSERT_TRUE(model.ok());
  const absl::Status tpu = (*model)->MoveTo("tpu");
  EXPECT_EQ(tpu.code(), absl::StatusCode::kInvalidArgument) << tpu;
  EXPECT_TRUE((*model)->MoveTo("cpu").ok());
  EXPECT_TRUE((*model)->on_cpu());
  EXPECT_EQ((*model)->Views().size(), static_cast<size_t>((*model)->spec().tensors_size()));
  if (!torch::cuda::is_available()) {
    const absl::Status cuda = (*model)->MoveTo("cuda");
    EXPECT_EQ(cuda.code(), absl::StatusCode::kFailedPrecondition) << cuda;
    EXPECT_NE(cuda.message().find("this LibTorch has no CUDA"), std::string::npos) << cuda;
    EXPECT_TRUE((*model)->on_cpu());
  }
}

// On a GPU, Predict and Checksum give the CPU model's answers.
TEST_F(ModelTest, PredictsAndChecksumsOnTheGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  auto cpu = Model::Create("lenet5", 1);
  auto gpu = Model::Create("lenet5", 1);
  ASSERT_TRUE(cpu.ok() && gpu.ok());
  ASSERT_TRUE((*gpu)->MoveTo("cuda").ok());
  EXPECT_EQ((*gpu)->Checksum(), (*cpu)->Checksum());
  (*cpu)->SetTraining(false);
  (*gpu)->SetTraining(false);
  const std::vector<float> pixels(2 * 28 * 28, 0.5f);
  auto a = (*cpu)->Predict({2, 1, 28, 28}, pixels);
  auto b = (*gpu)->Predict({2, 1, 28, 28}, pixels);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->labels, b->labels);
}

TEST_F(ModelTest, CheckInputShapeAcceptsBatchesOfImages) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(model->CheckInputShape({1, 1, 28, 28}).ok());
  EXPECT_TRUE(model->CheckInputShape({64, 1, 28, 28}).ok());
}

TEST_F(ModelTest, CheckInputShapeRejectsWrongShapesSayingWhatItExpected) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  const std::vector<std::vector<int64_t>> bad = {
      {3, 784}, {0, 1, 28, 28}, {-1, 1, 28, 28}, {3, 1, 28, 27},
      {3, 3, 28, 28}, {1, 28, 28}, {}, {3, 1, 28, 28, 1}};
  for (const std::vector<int64_t>& shape : bad) {
    const absl::Status status = model->CheckInputShape(shape);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << testing::PrintToString(shape);
    EXPECT_THAT(std::string(status.message()), HasSubstr("expected"));
  }
}

TEST_F(ModelTest, UnknownArchitectureIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create("resnet50", 1);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("resnet50"));
}

TEST_F(ModelTest, GradientViewsAppearAfterBackward) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  for (absl::Span<float> g : model->GradientViews()) EXPECT_TRUE(g.empty());
  torch::Tensor loss = model->Forward(Inputs(2)).sum();
  loss.backward();
  TensorViews grads = model->GradientViews();
  TensorViews views = model->Views();
  ASSERT_EQ(grads.size(), 10u);
  for (size_t i = 0; i < grads.size(); ++i) {
    EXPECT_EQ(grads[i].size(), views[i].size()) << i;
  }
  model->ZeroGradients();
  for (absl::Span<float> g : model->GradientViews()) {
    for (float v : g) ASSERT_EQ(v, 0.0f);
  }
}

}  // namespace
}  // namespace contrail
