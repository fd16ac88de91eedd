#include "server/inference_service_impl.h"

#include "absl/synchronization/notification.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

// raw_input_contents and raw_output_contents are little-endian; the
// payloads are copied as they lie in memory.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the Open Inference Protocol's raw contents need a little-endian host");

namespace contrail {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

// What ServerMetadata answers. The version names this service's behaviour
// towards clients, not the model's (ModelMetadata.versions has that).
constexpr char kServerName[] = "contrail";
constexpr char kServerVersion[] = "1";
// Triton's name for the ModelConfig RPC.
constexpr char kModelConfigurationExtension[] = "model_configuration";
constexpr char kFp32[] = "FP32";
constexpr char kInt64[] = "INT64";

std::string FormatShape(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// "[N, 1, 28, 28]" for an input shape [1, 28, 28].
std::string FormatBatchedShape(absl::Span<const int64_t> example_shape) {
  if (example_shape.empty()) return "[N]";
  return absl::StrCat("[N, ", absl::StrJoin(example_shape, ", "), "]");
}

// The typed contents fields other than fp32_contents that hold values, for
// an error message; empty when there are none.
std::string OtherTypedContents(const inference::InferTensorContents& contents) {
  std::vector<std::string> fields;
  if (contents.bool_contents_size() > 0) fields.push_back("bool_contents");
  if (contents.int_contents_size() > 0) fields.push_back("int_contents");
  if (contents.int64_contents_size() > 0) fields.push_back("int64_contents");
  if (contents.uint_contents_size() > 0) fields.push_back("uint_contents");
  if (contents.uint64_contents_size() > 0) fields.push_back("uint64_contents");
  if (contents.fp64_contents_size() > 0) fields.push_back("fp64_contents");
  if (contents.bytes_contents_size() > 0) fields.push_back("bytes_contents");
  return absl::StrJoin(fields, ", ");
}

// Parameters neither input nor output tensors take here: Triton's clients
// send them only for shared memory and the classification extension,
// which this server does not offer. Refused rather than ignored, so that a
// client never reads an answer to a question it did not ask.
absl::Status CheckNoTensorParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
    const std::string& tensor) {
  if (parameters.empty()) return absl::OkStatus();
  std::vector<std::string> names;
  for (const auto& [name, value] : parameters) names.push_back(name);
  std::sort(names.begin(), names.end());
  return absl::UnimplementedError(absl::StrCat(
      tensor, " has parameters this server does not support (",
      absl::StrJoin(names, ", "), "): shared memory and classification are not offered"));
}

// The values of the one input of `request`, checked against the served
// model's input shape; `shape` receives the request's shape.
absl::StatusOr<std::vector<float>> DecodeInput(const ModelInferRequest& request,
                                               const LiveModel::Version& served,
                                               const std::string& model_name,
                                               int64_t max_batch,
                                               std::vector<int64_t>* shape) {
  const std::vector<int64_t> example_shape = served.model->signature().input_shape;
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", model_name, "' takes 1 input ('", InferenceServiceImpl::kInputName,
        "', FP32 ", FormatBatchedShape(example_shape), "), got ", request.inputs_size()));
  }
  const ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.name() != InferenceServiceImpl::kInputName) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown input '", input.name(), "': model '", model_name, "' takes one input, '",
        InferenceServiceImpl::kInputName, "'"));
  }
  const std::string what = absl::StrCat("input '", input.name(), "'");
  if (input.datatype() != kFp32) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has datatype '", input.datatype(), "'; model '", model_name, "' takes ", kFp32));
  }
  CONTRAIL_RETURN_IF_ERROR(CheckNoTensorParameters(input.parameters(), what));
  shape->assign(input.shape().begin(), input.shape().end());
  bool shape_ok = shape->size() == example_shape.size() + 1;
  for (size_t i = 0; shape_ok && i < example_shape.size(); ++i) {
    shape_ok = (*shape)[i + 1] == example_shape[i];
  }
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has shape ", FormatShape(*shape), "; model '", model_name, "' takes ",
        FormatBatchedShape(example_shape)));
  }
  const int64_t batch = (*shape)[0];
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has a batch of ", batch, " examples; at least 1 is needed"));
  }
  // Before any size is computed from the batch, which could overflow.
  if (batch > max_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch of ", batch, " examples exceeds the limit of ", max_batch));
  }
  int64_t count = batch;
  for (int64_t dim : example_shape) count *= dim;

  std::vector<float> values(count);
  if (request.raw_input_contents_size() > 0) {
    if (input.has_contents()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has both contents and raw_input_contents; give its values in one"));
    }
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(), " entries for ",
          request.inputs_size(), " input; it needs one per input"));
    }
    const std::string& raw = request.raw_input_contents(0);
    const int64_t expected_bytes = count * static_cast<int64_t>(sizeof(float));
    if (static_cast<int64_t>(raw.size()) != expected_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents[0] of ", what, " holds ", raw.size(), " bytes; shape ",
          FormatShape(*shape), " of ", kFp32, " needs ", expected_bytes, " (", count,
          " little-endian floats)"));
    }
    std::memcpy(values.data(), raw.data(), raw.size());
    return values;
  }
  if (!input.has_contents()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " carries no values: give them in raw_input_contents or contents.fp32_contents"));
  }
  const std::string others = OtherTypedContents(input.contents());
  if (!others.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", kFp32, ": its values belong in contents.fp32_contents, not in ", others));
  }
  const auto& typed = input.contents().fp32_contents();
  if (typed.size() != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "contents.fp32_contents of ", what, " holds ", typed.size(), " values; shape ",
        FormatShape(*shape), " needs ", count));
  }
  std::copy(typed.begin(), typed.end(), values.begin());
  return values;
}

// The outputs `request` asks for, in its order; both when it names none.
absl::StatusOr<std::vector<std::string>> RequestedOutputs(const ModelInferRequest& request,
                                                          const std::string& model_name) {
  if (request.outputs_size() == 0) {
    return std::vector<std::string>{InferenceServiceImpl::kProbabilitiesName,
                                    InferenceServiceImpl::kLabelName};
  }
  std::vector<std::string> names;
  for (const ModelInferRequest::InferRequestedOutputTensor& output : request.outputs()) {
    if (output.name() != InferenceServiceImpl::kProbabilitiesName &&
        output.name() != InferenceServiceImpl::kLabelName) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown output '", output.name(), "': model '", model_name, "' gives '",
          InferenceServiceImpl::kProbabilitiesName, "' and '",
          InferenceServiceImpl::kLabelName, "'"));
    }
    if (std::find(names.begin(), names.end(), output.name()) != names.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", output.name(), "' is requested twice"));
    }
    CONTRAIL_RETURN_IF_ERROR(
        CheckNoTensorParameters(output.parameters(), absl::StrCat("output '", output.name(), "'")));
    names.push_back(output.name());
  }
  return names;
}

}  // namespace

absl::Status InferenceServiceImpl::CheckOptions(const Options& options) {
  if (options.model_name.empty()) return absl::InvalidArgumentError("model_name must not be empty");
  if (options.model_name.find_first_of(" \t\n\r/") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_name must not hold whitespace or '/', got '", options.model_name, "'"));
  }
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch must be >= 1, got ", options.max_batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LiveModel::Version>> InferenceServiceImpl::Resolve(
    const std::string& name, const std::string& version) const {
  if (name != options_.model_name) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name,
                                            "': this server serves one model, '",
                                            options_.model_name, "'"));
  }
  std::shared_ptr<const LiveModel::Version> served = live_->Current();
  if (served == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "model '", name, "' is not ready: this server holds no model yet (it is waiting for "
        "the trainer's snapshot)"));
  }
  if (!version.empty() && version != absl::StrCat(served->version)) {
    return absl::NotFoundError(absl::StrCat(
        "model '", name, "' has no version '", version, "' here: this server serves version ",
        served->version, ", and only that one (versions move forward with every update from "
        "the trainer; leave the version empty for the newest)"));
  }
  return served;
}

grpc::Status InferenceServiceImpl::ServerLive(grpc::ServerContext*,
                                              const inference::ServerLiveRequest*,
                                              inference::ServerLiveResponse* response) {
  response->set_live(true);
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ServerReady(grpc::ServerContext*,
                                               const inference::ServerReadyRequest*,
                                               inference::ServerReadyResponse* response) {
  response->set_ready(live_->Current() != nullptr);
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ModelReady(grpc::ServerContext*,
                                              const inference::ModelReadyRequest* request,
                                              inference::ModelReadyResponse* response) {
  // As Triton: not ready (rather than an error) for a model or version
  // that is not served.
  response->set_ready(Resolve(request->name(), request->version()).ok());
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ServerMetadata(grpc::ServerContext* context,
                                                  const inference::ServerMetadataRequest*,
                                                  inference::ServerMetadataResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    return allowed;
  }
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  response->add_extensions(kModelConfigurationExtension);
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ModelMetadata(grpc::ServerContext* context,
                                                 const inference::ModelMetadataRequest* request,
                                                 inference::ModelMetadataResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    return allowed;
  }
  absl::StatusOr<std::shared_ptr<const LiveModel::Version>> served =
      Resolve(request->name(), request->version());
  if (!served.ok()) return ToGrpcStatus(served.status());
  const Model::Signature signature = (*served)->model->signature();
  response->set_name(options_.model_name);
  response->add_versions(absl::StrCat((*served)->version));
  response->set_platform(kPlatform);
  inference::ModelMetadataResponse::TensorMetadata* input = response->add_inputs();
  input->set_name(kInputName);
  input->set_datatype(kFp32);
  input->add_shape(-1);
  for (int64_t dim : signature.input_shape) input->add_shape(dim);
  inference::ModelMetadataResponse::TensorMetadata* probabilities = response->add_outputs();
  probabilities->set_name(kProbabilitiesName);
  probabilities->set_datatype(kFp32);
  probabilities->add_shape(-1);
  probabilities->add_shape(signature.num_classes);
  inference::ModelMetadataResponse::TensorMetadata* label = response->add_outputs();
  label->set_name(kLabelName);
  label->set_datatype(kInt64);
  label->add_shape(-1);
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ModelConfig(grpc::ServerContext* context,
                                               const inference::ModelConfigRequest* request,
                                               inference::ModelConfigResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    return allowed;
  }
  absl::StatusOr<std::shared_ptr<const LiveModel::Version>> served =
      Resolve(request->name(), request->version());
  if (!served.ok()) return ToGrpcStatus(served.status());
  const Model::Signature signature = (*served)->model->signature();
  inference::ModelConfig* config = response->mutable_config();
  config->set_name(options_.model_name);
  config->set_platform(kPlatform);
  config->set_backend("pytorch");
  config->set_max_batch_size(static_cast<int32_t>(
      std::min<int64_t>(options_.max_batch, std::numeric_limits<int32_t>::max())));
  // With max_batch_size > 0 Triton's dims leave out the batch dimension.
  inference::ModelInput* input = config->add_input();
  input->set_name(kInputName);
  input->set_data_type(inference::TYPE_FP32);
  for (int64_t dim : signature.input_shape) input->add_dims(dim);
  inference::ModelOutput* probabilities = config->add_output();
  probabilities->set_name(kProbabilitiesName);
  probabilities->set_data_type(inference::TYPE_FP32);
  probabilities->add_dims(signature.num_classes);
  // One label per example: Triton writes a per-example scalar of a batched
  // model as dims [1] reshaped to [].
  inference::ModelOutput* label = config->add_output();
  label->set_name(kLabelName);
  label->set_data_type(inference::TYPE_INT64);
  label->add_dims(1);
  label->mutable_reshape();
  return grpc::Status::OK;
}

grpc::Status InferenceServiceImpl::ModelInfer(grpc::ServerContext* context,
                                              const inference::ModelInferRequest* request,
                                              inference::ModelInferResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    return allowed;
  }
  return ToGrpcStatus(Infer(*request, response));
}

absl::StatusOr<LiveModel::Predictions> InferenceServiceImpl::Predict(
    absl::Span<const int64_t> shape, absl::Span<const float> values) {
  if (batcher_ == nullptr) return live_->Predict(shape, values);
  // A synchronous handler: its thread waits for the worker's answer.
  absl::StatusOr<LiveModel::Predictions> answer;
  absl::Notification answered;
  batcher_->Submit(shape, values, [&](absl::StatusOr<LiveModel::Predictions> predictions) {
    answer = std::move(predictions);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

absl::Status InferenceServiceImpl::Infer(const ModelInferRequest& request,
                                         ModelInferResponse* response) {
  CONTRAIL_ASSIGN_OR_RETURN(std::shared_ptr<const LiveModel::Version> served,
                            Resolve(request.model_name(), request.model_version()));
  std::vector<int64_t> shape;
  CONTRAIL_ASSIGN_OR_RETURN(
      std::vector<float> values,
      DecodeInput(request, *served, options_.model_name, options_.max_batch, &shape));
  CONTRAIL_ASSIGN_OR_RETURN(std::vector<std::string> outputs,
                            RequestedOutputs(request, options_.model_name));
  CONTRAIL_ASSIGN_OR_RETURN(LiveModel::Predictions predictions, Predict(shape, values));
  // An update may have landed between Resolve() and Predict(): a request
  // for one version is answered by that version or not at all.
  if (!request.model_version().empty() && predictions.version != served->version) {
    return absl::NotFoundError(absl::StrCat(
        "model '", options_.model_name, "' moved from version ", served->version, " to ",
        predictions.version, " during the request; version ", request.model_version(),
        " is no longer served"));
  }
  const int64_t batch = static_cast<int64_t>(predictions.labels.size());
  response->set_model_name(options_.model_name);
  response->set_model_version(absl::StrCat(predictions.version));
  response->set_id(request.id());
  for (const std::string& name : outputs) {
    ModelInferResponse::InferOutputTensor* output = response->add_outputs();
    output->set_name(name);
    output->add_shape(batch);
    std::string* raw = response->add_raw_output_contents();
    if (name == kProbabilitiesName) {
      output->set_datatype(kFp32);
      output->add_shape(predictions.num_classes);
      raw->assign(reinterpret_cast<const char*>(predictions.probabilities.data()),
                  predictions.probabilities.size() * sizeof(float));
    } else {
      output->set_datatype(kInt64);
      const std::vector<int64_t> labels(predictions.labels.begin(), predictions.labels.end());
      raw->assign(reinterpret_cast<const char*>(labels.data()), labels.size() * sizeof(int64_t));
    }
  }
  inferences_ += batch;
  return absl::OkStatus();
}

}  // namespace contrail
