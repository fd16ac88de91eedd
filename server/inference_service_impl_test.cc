#include "server/inference_service_impl.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/grpc_predict_v2.pb.h"
#include "server/live_model.h"
#include "tests/test_util/fake_trainer.h"

namespace contrail {
namespace {

using ::inference::ModelInferRequest;
using ::inference::ModelInferResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kPixels = 28 * 28;
constexpr int kClasses = 10;
constexpr int64_t kMaxBatch = 8;

std::vector<float> Pixels(int64_t count, uint32_t seed = 3) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& value : values) value = pixel(rng);
  return values;
}

std::string Raw(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

// A request as Triton's Python client builds it: the input declared with
// its datatype and shape, its bytes in raw_input_contents.
ModelInferRequest RawRequest(const std::vector<int64_t>& shape,
                             const std::vector<float>& values) {
  ModelInferRequest request;
  request.set_model_name("contrail");
  request.set_id("request-7");
  ModelInferRequest::InferInputTensor* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->mutable_shape()->Add(shape.begin(), shape.end());
  request.add_raw_input_contents(Raw(values));
  return request;
}

// The same with the values in contents.fp32_contents.
ModelInferRequest TypedRequest(const std::vector<int64_t>& shape,
                               const std::vector<float>& values) {
  ModelInferRequest request = RawRequest(shape, values);
  request.clear_raw_input_contents();
  request.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->Add(values.begin(),
                                                                              values.end());
  return request;
}

void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                 const std::string& substring) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(substring));
}

class InferenceServiceImplTest : public ::testing::Test {
 protected:
  InferenceServiceImplTest()
      : trainer_(/*seed=*/7),
        live_(LiveModel::Create(LiveOptions()).value()),
        service_(ServiceOptions(), live_.get()) {}

  static LiveModel::Options LiveOptions() {
    LiveModel::Options options;
    options.max_batch = kMaxBatch;
    return options;
  }
  static InferenceServiceImpl::Options ServiceOptions() {
    InferenceServiceImpl::Options options;
    options.max_batch = kMaxBatch;
    return options;
  }

  void Hold() { ASSERT_TRUE(live_->Apply(trainer_.Snapshot()).ok()); }

  grpc::Status Infer(const ModelInferRequest& request, ModelInferResponse* response) {
    return service_.ModelInfer(/*context=*/nullptr, &request, response);
  }
  grpc::Status Infer(const ModelInferRequest& request) {
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    if (!status.ok()) {
      EXPECT_EQ(response.outputs_size(), 0);
      EXPECT_EQ(response.raw_output_contents_size(), 0);
    }
    return status;
  }

  bool ModelReady(const std::string& name, const std::string& version) {
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    EXPECT_TRUE(service_.ModelReady(nullptr, &request, &response).ok());
    return response.ready();
  }

  test::FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  InferenceServiceImpl service_;
};

TEST_F(InferenceServiceImplTest, IsLiveButNotReadyUntilAModelIsHeld) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(service_.ServerLive(nullptr, nullptr, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(service_.ServerReady(nullptr, nullptr, &ready).ok());
  EXPECT_FALSE(ready.ready());
  EXPECT_FALSE(ModelReady("contrail", ""));

  ExpectError(Infer(RawRequest({1, 1, 28, 28}, Pixels(kPixels))),
              grpc::StatusCode::UNAVAILABLE, "holds no model yet");
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("contrail");
  inference::ModelMetadataResponse metadata;
  ExpectError(service_.ModelMetadata(nullptr, &metadata_request, &metadata),
              grpc::StatusCode::UNAVAILABLE, "not ready");
  inference::ModelConfigRequest config_request;
  config_request.set_name("contrail");
  inference::ModelConfigResponse config;
  ExpectError(service_.ModelConfig(nullptr, &config_request, &config),
              grpc::StatusCode::UNAVAILABLE, "not ready");

  Hold();
  ASSERT_TRUE(service_.ServerReady(nullptr, nullptr, &ready).ok());
  EXPECT_TRUE(ready.ready());
  EXPECT_TRUE(ModelReady("contrail", ""));
}

TEST_F(InferenceServiceImplTest, ModelReadyOnlyForTheServedModelAndVersion) {
  Hold();
  EXPECT_TRUE(ModelReady("contrail", "1"));
  EXPECT_FALSE(ModelReady("contrail", "2"));
  EXPECT_FALSE(ModelReady("contrail", "one"));
  EXPECT_FALSE(ModelReady("resnet50", ""));
  EXPECT_FALSE(ModelReady("", ""));
  ASSERT_TRUE(live_->Apply(trainer_.Step()).ok());
  EXPECT_TRUE(ModelReady("contrail", "2"));
  EXPECT_FALSE(ModelReady("contrail", "1"));
}

TEST_F(InferenceServiceImplTest, ServerMetadataNamesContrailAndTheModelConfigurationExtension) {
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(service_.ServerMetadata(nullptr, nullptr, &metadata).ok());
  EXPECT_EQ(metadata.name(), "contrail");
  EXPECT_FALSE(metadata.version().empty());
  EXPECT_THAT(metadata.extensions(), ElementsAre("model_configuration"));
}

TEST_F(InferenceServiceImplTest, ModelMetadataDescribesTheTensorsWithAVariableBatch) {
  Hold();
  inference::ModelMetadataRequest request;
  request.set_name("contrail");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(service_.ModelMetadata(nullptr, &request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "contrail");
  EXPECT_THAT(metadata.versions(), ElementsAre("1"));
  EXPECT_EQ(metadata.platform(), "pytorch_libtorch");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "input");
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 1, 28, 28));
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "probabilities");
  EXPECT_EQ(metadata.outputs(0).datatype(), "FP32");
  EXPECT_THAT(metadata.outputs(0).shape(), ElementsAre(-1, kClasses));
  EXPECT_EQ(metadata.outputs(1).name(), "label");
  EXPECT_EQ(metadata.outputs(1).datatype(), "INT64");
  EXPECT_THAT(metadata.outputs(1).shape(), ElementsAre(-1));

  request.set_version("1");
  EXPECT_TRUE(service_.ModelMetadata(nullptr, &request, &metadata).ok());
  request.set_version("9");
  ExpectError(service_.ModelMetadata(nullptr, &request, &metadata),
              grpc::StatusCode::NOT_FOUND, "serves version 1");
  request.set_name("mnist");
  request.clear_version();
  ExpectError(service_.ModelMetadata(nullptr, &request, &metadata),
              grpc::StatusCode::NOT_FOUND, "unknown model 'mnist'");
}

TEST_F(InferenceServiceImplTest, ModelConfigIsTritonsBatchedConfiguration) {
  Hold();
  inference::ModelConfigRequest request;
  request.set_name("contrail");
  inference::ModelConfigResponse response;
  ASSERT_TRUE(service_.ModelConfig(nullptr, &request, &response).ok());
  const inference::ModelConfig& config = response.config();
  EXPECT_EQ(config.name(), "contrail");
  EXPECT_EQ(config.platform(), "pytorch_libtorch");
  EXPECT_EQ(config.backend(), "pytorch");
  EXPECT_EQ(config.max_batch_size(), kMaxBatch);
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "input");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.input(0).dims(), ElementsAre(1, 28, 28));
  ASSERT_EQ(config.output_size(), 2);
  EXPECT_EQ(config.output(0).name(), "probabilities");
  EXPECT_EQ(config.output(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.output(0).dims(), ElementsAre(kClasses));
  EXPECT_EQ(config.output(1).name(), "label");
  EXPECT_EQ(config.output(1).data_type(), inference::TYPE_INT64);
  EXPECT_THAT(config.output(1).dims(), ElementsAre(1));
  EXPECT_TRUE(config.output(1).has_reshape());
  EXPECT_EQ(config.output(1).reshape().shape_size(), 0);

  request.set_name("other");
  ExpectError(service_.ModelConfig(nullptr, &request, &response),
              grpc::StatusCode::NOT_FOUND, "this server serves one model, 'contrail'");
}

TEST_F(InferenceServiceImplTest, RawInputsGetTheBitsPredictAnswersInRawOutputs) {
  Hold();
  const std::vector<float> pixels = Pixels(3 * kPixels);
  ModelInferResponse response;
  const grpc::Status status = Infer(RawRequest({3, 1, 28, 28}, pixels), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::vector<int64_t> shape = {3, 1, 28, 28};
  const LiveModel::Predictions expected = live_->Predict(shape, pixels).value();
  EXPECT_EQ(response.model_name(), "contrail");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "request-7");
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "probabilities");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, kClasses));
  EXPECT_FALSE(response.outputs(0).has_contents());
  EXPECT_EQ(response.raw_output_contents(0), Raw(expected.probabilities));
  EXPECT_EQ(response.outputs(1).name(), "label");
  EXPECT_EQ(response.outputs(1).datatype(), "INT64");
  EXPECT_THAT(response.outputs(1).shape(), ElementsAre(3));
  const std::string& raw_labels = response.raw_output_contents(1);
  ASSERT_EQ(raw_labels.size(), 3 * sizeof(int64_t));
  std::vector<int64_t> labels(3);
  std::memcpy(labels.data(), raw_labels.data(), raw_labels.size());
  EXPECT_THAT(labels, ElementsAre(expected.labels[0], expected.labels[1], expected.labels[2]));
  EXPECT_EQ(service_.inferences(), 3u);
}

TEST_F(InferenceServiceImplTest, ThroughAPredictBatcherAnswersTheSameBits) {
  Hold();
  PredictBatcher::Options batching;
  batching.threads = 1;
  batching.dynamic_batching = true;
  batching.batch_timeout = absl::ZeroDuration();
  std::unique_ptr<PredictBatcher> batcher = PredictBatcher::Create(batching, live_.get()).value();
  InferenceServiceImpl batched(ServiceOptions(), live_.get(), &AccessPolicy::Open(),
                               batcher.get());
  const ModelInferRequest request = RawRequest({3, 1, 28, 28}, Pixels(3 * kPixels));
  ModelInferResponse alone, through_batcher;
  ASSERT_TRUE(Infer(request, &alone).ok());
  const grpc::Status status = batched.ModelInfer(nullptr, &request, &through_batcher);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(through_batcher.SerializeAsString(), alone.SerializeAsString());
  EXPECT_EQ(batcher->requests_run(), 1u);
  EXPECT_EQ(batched.inferences(), 3u);
}

TEST_F(InferenceServiceImplTest, TypedContentsAnswerAsRawOnes) {
  Hold();
  const std::vector<float> pixels = Pixels(2 * kPixels, /*seed=*/11);
  ModelInferResponse raw;
  ModelInferResponse typed;
  ASSERT_TRUE(Infer(RawRequest({2, 1, 28, 28}, pixels), &raw).ok());
  ASSERT_TRUE(Infer(TypedRequest({2, 1, 28, 28}, pixels), &typed).ok());
  EXPECT_EQ(typed.raw_output_contents(0), raw.raw_output_contents(0));
  EXPECT_EQ(typed.raw_output_contents(1), raw.raw_output_contents(1));
}

TEST_F(InferenceServiceImplTest, AnswersOnlyTheRequestedOutputsInTheirOrder) {
  Hold();
  ModelInferRequest request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.add_outputs()->set_name("label");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "label");
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.raw_output_contents(0).size(), sizeof(int64_t));

  request.add_outputs()->set_name("probabilities");
  response.Clear();
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "label");
  EXPECT_EQ(response.outputs(1).name(), "probabilities");
  EXPECT_EQ(response.raw_output_contents(1).size(), kClasses * sizeof(float));
}

TEST_F(InferenceServiceImplTest, FollowsTheServedVersionAndRefusesAnOldOne) {
  Hold();
  const std::vector<float> pixels = Pixels(kPixels);
  ModelInferResponse before;
  ASSERT_TRUE(Infer(RawRequest({1, 1, 28, 28}, pixels), &before).ok());
  ASSERT_TRUE(live_->Apply(trainer_.Step()).ok());
  ModelInferResponse after;
  ASSERT_TRUE(Infer(RawRequest({1, 1, 28, 28}, pixels), &after).ok());
  EXPECT_EQ(after.model_version(), "2");
  EXPECT_NE(after.raw_output_contents(0), before.raw_output_contents(0));

  ModelInferRequest pinned = RawRequest({1, 1, 28, 28}, pixels);
  pinned.set_model_version("2");
  ASSERT_TRUE(Infer(pinned, &after).ok());
  pinned.set_model_version("1");
  ExpectError(Infer(pinned), grpc::StatusCode::NOT_FOUND,
              "has no version '1' here: this server serves version 2");
}

TEST_F(InferenceServiceImplTest, RefusesAnUnknownModel) {
  Hold();
  ModelInferRequest request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.set_model_name("densenet");
  ExpectError(Infer(request), grpc::StatusCode::NOT_FOUND,
              "unknown model 'densenet': this server serves one model, 'contrail'");
  request.clear_model_name();
  ExpectError(Infer(request), grpc::StatusCode::NOT_FOUND, "unknown model ''");
}

TEST_F(InferenceServiceImplTest, RefusesInputsOfAnotherNameCountOrDatatype) {
  Hold();
  ModelInferRequest request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.mutable_inputs(0)->set_name("INPUT__0");
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "unknown input 'INPUT__0': model 'contrail' takes one input, 'input'");

  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.mutable_inputs(0)->set_datatype("FP64");
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "input 'input' has datatype 'FP64'; model 'contrail' takes FP32");

  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  *request.add_inputs() = request.inputs(0);
  request.add_raw_input_contents(request.raw_input_contents(0));
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "takes 1 input ('input', FP32 [N, 1, 28, 28]), got 2");

  request.clear_inputs();
  request.clear_raw_input_contents();
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT, "got 0");
}

TEST_F(InferenceServiceImplTest, RefusesAWrongShapeNamingTheExpectedOne) {
  Hold();
  ExpectError(Infer(RawRequest({2, kPixels}, Pixels(2 * kPixels))),
              grpc::StatusCode::INVALID_ARGUMENT,
              "input 'input' has shape [2, 784]; model 'contrail' takes [N, 1, 28, 28]");
  ExpectError(Infer(RawRequest({1, 28, 28}, Pixels(kPixels))),
              grpc::StatusCode::INVALID_ARGUMENT, "[N, 1, 28, 28]");
  ExpectError(Infer(RawRequest({0, 1, 28, 28}, {})), grpc::StatusCode::INVALID_ARGUMENT,
              "a batch of 0 examples");
}

TEST_F(InferenceServiceImplTest, RefusesABatchAboveTheLimitBeforeReadingIt) {
  Hold();
  ExpectError(Infer(RawRequest({kMaxBatch + 1, 1, 28, 28}, Pixels((kMaxBatch + 1) * kPixels))),
              grpc::StatusCode::INVALID_ARGUMENT, "batch of 9 examples exceeds the limit of 8");
  // A batch whose byte count would overflow is refused the same way.
  ExpectError(Infer(RawRequest({int64_t{1} << 62, 1, 28, 28}, Pixels(kPixels))),
              grpc::StatusCode::INVALID_ARGUMENT, "exceeds the limit of 8");
  EXPECT_TRUE(Infer(RawRequest({kMaxBatch, 1, 28, 28}, Pixels(kMaxBatch * kPixels))).ok());
}

TEST_F(InferenceServiceImplTest, RefusesRawContentsOfTheWrongSize) {
  Hold();
  ModelInferRequest request = RawRequest({2, 1, 28, 28}, Pixels(2 * kPixels));
  request.mutable_raw_input_contents(0)->pop_back();
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "raw_input_contents[0] of input 'input' holds 6271 bytes; shape [2, 1, 28, 28] "
              "of FP32 needs 6272");
  request = RawRequest({1, 1, 28, 28}, Pixels(2 * kPixels));
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT, "holds 6272 bytes");
  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.add_raw_input_contents("extra");
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "raw_input_contents has 2 entries for 1 input");
}

TEST_F(InferenceServiceImplTest, RefusesBothRawAndTypedContentsOrNeither) {
  Hold();
  ModelInferRequest request = TypedRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.add_raw_input_contents(Raw(Pixels(kPixels)));
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "has both contents and raw_input_contents");

  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.clear_raw_input_contents();
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "input 'input' carries no values");
}

TEST_F(InferenceServiceImplTest, RefusesTypedContentsOfTheWrongTypeOrCount) {
  Hold();
  ModelInferRequest request = TypedRequest({1, 1, 28, 28}, Pixels(kPixels - 1));
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "contents.fp32_contents of input 'input' holds 783 values; shape [1, 1, 28, 28] "
              "needs 784");
  request = TypedRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.mutable_inputs(0)->mutable_contents()->add_fp64_contents(0.5);
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "its values belong in contents.fp32_contents, not in fp64_contents");
}

TEST_F(InferenceServiceImplTest, RefusesANonFiniteValue) {
  Hold();
  std::vector<float> pixels = Pixels(kPixels);
  pixels[5] = std::nanf("");
  ExpectError(Infer(RawRequest({1, 1, 28, 28}, pixels)), grpc::StatusCode::INVALID_ARGUMENT,
              "finite");
}

TEST_F(InferenceServiceImplTest, RefusesUnknownOrRepeatedOutputsAndUnsupportedParameters) {
  Hold();
  ModelInferRequest request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.add_outputs()->set_name("logits");
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "unknown output 'logits': model 'contrail' gives 'probabilities' and 'label'");

  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  request.add_outputs()->set_name("label");
  request.add_outputs()->set_name("label");
  ExpectError(Infer(request), grpc::StatusCode::INVALID_ARGUMENT,
              "output 'label' is requested twice");

  // Triton's client asks for the classification extension this way.
  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  ModelInferRequest::InferRequestedOutputTensor* output = request.add_outputs();
  output->set_name("probabilities");
  (*output->mutable_parameters())["classification"].set_int64_param(3);
  ExpectError(Infer(request), grpc::StatusCode::UNIMPLEMENTED,
              "output 'probabilities' has parameters this server does not support "
              "(classification)");

  // ... and shared memory this way.
  request = RawRequest({1, 1, 28, 28}, Pixels(kPixels));
  (*request.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param(
      "region");
  ExpectError(Infer(request), grpc::StatusCode::UNIMPLEMENTED, "(shared_memory_region)");
  EXPECT_EQ(service_.inferences(), 0u);
}

TEST(InferenceServiceImplOptionsTest, NamesTheFieldThatIsWrong) {
  InferenceServiceImpl::Options options;
  EXPECT_TRUE(InferenceServiceImpl::CheckOptions(options).ok());
  options.model_name = "";
  EXPECT_THAT(std::string(InferenceServiceImpl::CheckOptions(options).message()),
              HasSubstr("model_name must not be empty"));
  options.model_name = "my model";
  EXPECT_EQ(InferenceServiceImpl::CheckOptions(options).code(),
            absl::StatusCode::kInvalidArgument);
  options.model_name = "contrail";
  options.max_batch = 0;
  EXPECT_THAT(std::string(InferenceServiceImpl::CheckOptions(options).message()),
              HasSubstr("max_batch must be >= 1, got 0"));
}

}  // namespace
}  // namespace contrail
