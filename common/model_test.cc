#include "common/model.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

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
  // Ten parameter tensors, then the two buffers of the input
  // normalisation (one channel).
  EXPECT_THAT(TensorNames(*model),
              ElementsAre("conv1.weight", "conv1.bias", "conv2.weight",
                          "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight",
                          "fc2.bias", "fc3.weight", "fc3.bias", "input_mean",
                          "input_scale"));
  EXPECT_EQ(model->num_parameter_tensors(), 10);
  EXPECT_EQ(ModelSize(model->spec()), 61706 + 2);
  EXPECT_EQ(CountEntries(AsConst(model->Views())), 61706 + 2);
  EXPECT_TRUE(CheckViewsMatchSpec(model->spec(), AsConst(model->Views())).ok());
  EXPECT_EQ(model->spec().architecture(), "lenet5");
  EXPECT_THAT(model->spec().input_shape(), ElementsAre(1, 28, 28));
  EXPECT_EQ(model->spec().num_classes(), 10);
  for (const TensorSpec& t : model->spec().tensors()) {
    EXPECT_EQ(t.dtype(), "float32") << t.name();
    EXPECT_EQ(t.is_buffer(), t.name().rfind("input_", 0) == 0) << t.name();
  }
  EXPECT_THAT(model->spec().tensors(0).shape(), ElementsAre(6, 1, 5, 5));
  EXPECT_THAT(model->spec().tensors(4).shape(), ElementsAre(120, 400));
}

TEST_F(ModelTest, MlpHas235146ParametersInSixTensors) {
  std::unique_ptr<Model> model = MustCreate("mlp", 1);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(TensorNames(*model),
              ElementsAre("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                          "fc3.weight", "fc3.bias", "input_mean", "input_scale"));
  int64_t parameters = 0;
  for (int t = 0; t < model->num_parameter_tensors(); ++t) {
    parameters += TensorSize(model->spec().tensors(t));
  }
  EXPECT_EQ(parameters, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(parameters, 235146);
  EXPECT_EQ(CountEntries(AsConst(model->Views())), 235146 + 2);
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
    EXPECT_GT(in_buffers, 2) << architecture << " has batch-norm statistics";
    const int first_buffer = model->num_parameter_tensors();
    EXPECT_EQ(model->spec().tensors(first_buffer).name(), "input_mean");
    EXPECT_EQ(model->spec().tensors(first_buffer + 1).name(), "input_scale");
    EXPECT_NE(model->spec().tensors(first_buffer + 2).name().find("running_mean"),
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


// The values of the tensor named `name`.
std::vector<float> TensorValues(const Model& model, const std::string& name) {
  const ConstTensorViews views = model.Views();
  for (int t = 0; t < model.spec().tensors_size(); ++t) {
    if (model.spec().tensors(t).name() == name) {
      return std::vector<float>(views[t].begin(), views[t].end());
    }
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

std::unique_ptr<Model> MustLoad(const std::string& runfile,
                                const Model::Signature& signature = {}) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(test::Runfile(runfile), 1, signature);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

TEST_F(ModelTest, BuiltInsStartWithAnIdentityInputNormalization) {
  for (const std::string& architecture : Model::Architectures()) {
    std::unique_ptr<Model> model = MustCreate(architecture, 1);
    ASSERT_NE(model, nullptr);
    EXPECT_TRUE(model->has_input_normalization()) << architecture;
    EXPECT_THAT(TensorValues(*model, "input_mean"), ElementsAre(0.0f)) << architecture;
    EXPECT_THAT(TensorValues(*model, "input_scale"), ElementsAre(1.0f)) << architecture;
  }
}

TEST_F(ModelTest, FitInputNormalizationSetsEachChannelsMeanAndInverseStd) {
  // Two examples of two channels of three values: channel 0 holds
  // 1, 2, 3, 5, 6, 7 (mean 4, variance 14/3), channel 1 is constant.
  std::unique_ptr<Model> model = Model::Create("mlp", 1, {{2, 3}, 4}).value();
  const std::vector<float> inputs = {1, 2, 3, 9, 9, 9, 5, 6, 7, 9, 9, 9};
  ASSERT_OK(model->FitInputNormalization(inputs, 2));
  const std::vector<float> mean = TensorValues(*model, "input_mean");
  const std::vector<float> scale = TensorValues(*model, "input_scale");
  ASSERT_EQ(mean.size(), 2u);
  ASSERT_EQ(scale.size(), 2u);
  EXPECT_FLOAT_EQ(mean[0], 4.0f);
  EXPECT_FLOAT_EQ(mean[1], 9.0f);
  EXPECT_FLOAT_EQ(scale[0], static_cast<float>(1 / std::sqrt(14.0 / 3)));
  EXPECT_EQ(scale[1], 1.0f) << "a constant channel stays unscaled";
}

TEST_F(ModelTest, ForwardNormalizesInputsWithTheFittedStatistics) {
  for (const std::string& architecture : Model::Architectures()) {
    SCOPED_TRACE(architecture);
    std::unique_ptr<Model> fitted = MustCreate(architecture, 3);
    std::unique_ptr<Model> plain = MustCreate(architecture, 3);
    ASSERT_NE(fitted, nullptr);
    ASSERT_NE(plain, nullptr);
    fitted->SetTraining(false);
    plain->SetTraining(false);
    // Raw 0-255 pixels: the fitted model sees them standardised.
    const torch::Tensor raw = Inputs(8) * 255;
    ASSERT_OK(fitted->FitInputNormalization(
        absl::MakeConstSpan(raw.data_ptr<float>(), raw.numel()), 8));
    const float mean = raw.mean().item<float>();
    const float std_dev = raw.std(/*unbiased=*/false).item<float>();
    EXPECT_NEAR(TensorValues(*fitted, "input_mean")[0], mean, 1e-3);
    EXPECT_NEAR(TensorValues(*fitted, "input_scale")[0], 1 / std_dev, 1e-6);
    torch::NoGradGuard no_grad;
    const torch::Tensor expected = plain->Forward(
        (raw - TensorValues(*fitted, "input_mean")[0]) * TensorValues(*fitted, "input_scale")[0]);
    EXPECT_TRUE(torch::allclose(fitted->Forward(raw), expected, 1e-4, 1e-6));
    EXPECT_FALSE(torch::equal(plain->Forward(raw), fitted->Forward(raw)));
  }
}

TEST_F(ModelTest, FitInputNormalizationRejectsMiscountedOrNonFiniteInputs) {
  std::unique_ptr<Model> model = MustCreate("lenet5", 1);
  ASSERT_NE(model, nullptr);
  const uint64_t before = model->Checksum();
  std::vector<float> inputs(2 * 784, 0.5f);
  EXPECT_THAT(model->FitInputNormalization(inputs, 3),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("3 examples of [1, 28, 28] needs 2352 floats, got 1568")));
  inputs[100] = std::nanf("");
  EXPECT_THAT(model->FitInputNormalization(inputs, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-finite")));
  EXPECT_OK(model->FitInputNormalization({}, 0));
  EXPECT_EQ(model->Checksum(), before);
}

TEST_F(ModelTest, BuiltInsAreBuiltForTheRequestedSignature) {
  std::unique_ptr<Model> mlp = Model::Create("mlp", 1, {{16}, 3}).value();
  EXPECT_THAT(mlp->spec().input_shape(), ElementsAre(16));
  EXPECT_EQ(mlp->spec().num_classes(), 3);
  EXPECT_THAT(mlp->spec().tensors(0).shape(), ElementsAre(256, 16));
  EXPECT_THAT(mlp->spec().tensors(4).shape(), ElementsAre(3, 128));
  EXPECT_THAT(TensorValues(*mlp, "input_mean"), ::testing::SizeIs(16));

  std::unique_ptr<Model> lenet = Model::Create("lenet5", 1, {{3, 32, 32}, 5}).value();
  EXPECT_THAT(lenet->spec().tensors(0).shape(), ElementsAre(6, 3, 5, 5));
  EXPECT_THAT(lenet->spec().tensors(4).shape(), ElementsAre(120, 16 * 6 * 6));
  EXPECT_THAT(TensorValues(*lenet, "input_scale"), ElementsAre(1, 1, 1));
  lenet->SetTraining(false);
  const std::vector<float> pixels(2 * 3 * 32 * 32, 0.5f);
  absl::StatusOr<Model::Predictions> predictions = lenet->Predict({2, 3, 32, 32}, pixels);
  ASSERT_OK(predictions);
  EXPECT_EQ(predictions->num_classes, 5);
  EXPECT_EQ(predictions->probabilities.size(), 10u);

  for (const std::string architecture : {"resnet18", "mobilenet_v2"}) {
    std::unique_ptr<Model> model =
        Model::Create(architecture, 1, {{3, 20, 24}, 7}).value();
    torch::NoGradGuard no_grad;
    EXPECT_THAT(model->Forward(torch::rand({2, 3, 20, 24})).sizes().vec(), ElementsAre(2, 7))
        << architecture;
  }
  // The signature is part of the fingerprint.
  EXPECT_NE(mlp->spec().fingerprint(), MustCreate("mlp", 1)->spec().fingerprint());
  EXPECT_NE(Model::Create("mlp", 1, {{16}, 4}).value()->spec().fingerprint(),
            mlp->spec().fingerprint());
  // Spelling out the default changes nothing.
  EXPECT_EQ(Model::Create("lenet5", 1, {{1, 28, 28}, 10}).value()->spec().fingerprint(),
            MustCreate("lenet5", 1)->spec().fingerprint());
}

TEST_F(ModelTest, BuiltInsRefuseShapesTheyCannotTake) {
  EXPECT_THAT(Model::Create("lenet5", 1, {{784}, 10}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("lenet5 takes images [C, H, W] with H, W >= 12, got "
                                 "input_shape [784]")));
  EXPECT_THAT(Model::Create("lenet5", 1, {{1, 11, 28}, 10}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[1, 11, 28]")));
  EXPECT_THAT(Model::Create("resnet18", 1, {{16}, 10}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[C, H, W]")));
  EXPECT_THAT(Model::Create("mlp", 1, {{4, 0}, 10}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[4, 0]")));
  EXPECT_THAT(Model::Create("mlp", 1, {{16}, -3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_classes")));
}

TEST_F(ModelTest, CreateLikeKeepsTheSignature) {
  std::unique_ptr<Model> mlp = Model::Create("mlp", 1, {{16}, 3}).value();
  std::unique_ptr<Model> like = Model::CreateLike(*mlp, 2).value();
  EXPECT_EQ(like->spec().fingerprint(), mlp->spec().fingerprint());
  EXPECT_NE(like->Checksum(), mlp->Checksum());
}

TEST_F(ModelTest, TorchScriptModuleDeclaringItsSignatureLoadsWithIt) {
  std::unique_ptr<Model> model = MustLoad("tests/mlp16x3.pt");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->spec().architecture(), "torchscript:mlp16x3.pt");
  EXPECT_THAT(model->spec().input_shape(), ElementsAre(16));
  EXPECT_EQ(model->spec().num_classes(), 3);
  EXPECT_FALSE(model->torchscript_module().empty());
  model->SetTraining(false);
  const std::vector<float> features(2 * 16, 0.25f);
  absl::StatusOr<Model::Predictions> predictions = model->Predict({2, 16}, features);
  ASSERT_OK(predictions);
  EXPECT_EQ(predictions->num_classes, 3);
  EXPECT_EQ(predictions->probabilities.size(), 6u);
  // Requests say what the model expects.
  EXPECT_THAT(model->Predict({2, 1, 28, 28}, std::vector<float>(2 * 784)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected inputs of shape [N, 16] with N >= 1")));
  // Repeating the declaration is fine.
  std::unique_ptr<Model> repeated = MustLoad("tests/mlp16x3.pt", {{16}, 3});
  ASSERT_NE(repeated, nullptr);
  EXPECT_EQ(repeated->spec().fingerprint(), model->spec().fingerprint());
}

TEST_F(ModelTest, RequestsThatContradictATorchScriptDeclarationNameBoth) {
  EXPECT_THAT(Model::Load(test::Runfile("tests/mlp16x3.pt"), 1, {{4, 8}, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input_shape [4, 8] contradicts the input_shape [16] "
                                 "that the TorchScript module mlp16x3.pt declares")));
  EXPECT_THAT(Model::Load(test::Runfile("tests/mlp16x3.pt"), 1, {{}, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("num_classes 5 contradicts the num_classes 3")));
}

TEST_F(ModelTest, UndeclaredTorchScriptModuleTakesTheRequestedSignature) {
  std::unique_ptr<Model> model = MustLoad("tests/mlp16x3_undeclared.pt", {{16}, 3});
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(model->spec().input_shape(), ElementsAre(16));
  EXPECT_EQ(model->spec().num_classes(), 3);
  // The same module as the declaring one, so the same tensors.
  EXPECT_EQ(model->spec().tensors_size(), MustLoad("tests/mlp16x3.pt")->spec().tensors_size());
  // Without a request it is taken for a Fashion-MNIST model, which it is not.
  EXPECT_THAT(Model::Load(test::Runfile("tests/mlp16x3_undeclared.pt"), 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not take [N, 1, 28, 28] inputs")));
  // A class count its logits do not have.
  EXPECT_THAT(Model::Load(test::Runfile("tests/mlp16x3_undeclared.pt"), 1, {{16}, 4}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected [2, 4] logits")));
}

TEST_F(ModelTest, FitInputNormalizationLeavesATorchScriptModuleAlone) {
  std::unique_ptr<Model> model = MustLoad("tests/mlp16x3.pt");
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(model->has_input_normalization());
  const uint64_t before = model->Checksum();
  std::vector<float> inputs(4 * 16);
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = static_cast<float>(i);
  EXPECT_OK(model->FitInputNormalization(inputs, 4));
  EXPECT_EQ(model->Checksum(), before);
  // Its own normalisation buffers keep the values it was saved with.
  EXPECT_THAT(TensorValues(*model, "input_mean"), ::testing::Each(0.5f));
  EXPECT_THAT(TensorValues(*model, "input_scale"), ::testing::Each(2.0f));
}

TEST_F(ModelTest, CreateFromSpecRebuildsWhatTheSpecDescribes) {
  std::unique_ptr<Model> mlp = Model::Create("mlp", 1, {{16}, 3}).value();
  absl::StatusOr<std::unique_ptr<Model>> built = Model::CreateFromSpec(mlp->spec(), "");
  ASSERT_OK(built);
  EXPECT_EQ((*built)->spec().fingerprint(), mlp->spec().fingerprint());

  std::unique_ptr<Model> script = MustLoad("tests/mlp16x3_undeclared.pt", {{16}, 3});
  ASSERT_NE(script, nullptr);
  built = Model::CreateFromSpec(script->spec(), script->torchscript_module());
  ASSERT_OK(built);
  EXPECT_EQ((*built)->spec().fingerprint(), script->spec().fingerprint());
  EXPECT_EQ((*built)->Checksum(), script->Checksum());

  // A spec of other tensors than the architecture has here
  // (another version of the architecture).
  ModelSpec altered = mlp->spec();
  altered.mutable_tensors(0)->set_name("renamed");
  altered.set_fingerprint(ComputeFingerprint(altered));
  EXPECT_THAT(Model::CreateFromSpec(altered, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fingerprint")));
}

}  // namespace
}  // namespace contrail
