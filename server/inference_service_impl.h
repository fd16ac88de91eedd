// gRPC GRPCInferenceService of a server: the Open Inference Protocol
// (KServe v2, proto/grpc_predict_v2.proto) over the LiveModel, beside
// contrail's own PredictionService, so that clients built for Triton,
// KServe and MLServer work unchanged. It translates between that wire and
// LiveModel::Predict(), and answers exactly what Predict answers.
//
// The server serves one model, named Options::model_name, whose versions
// are contrail's: the model version is the served version number as a
// decimal string, and only the version served now can be addressed (a
// request that names another gets NOT_FOUND naming the one served; an
// empty version means the newest, as in the protocol). The model takes
// one FP32 input, "input", of shape [N] + the model's input shape, in
// raw_input_contents (little-endian) or in contents.fp32_contents, and
// gives two outputs, always in raw_output_contents (Triton's clients read
// only those): "probabilities", FP32 [N, num_classes], the softmax scores
// Predict returns, and "label", INT64 [N], their arg-max.
//
// Every handler first translates its request (the place for an
// authorisation check is the top of each handler), and every error is a
// gRPC status with a message that names the field and what was expected.
//
// This class is thread-safe.
#ifndef CONTRAIL_SERVER_INFERENCE_SERVICE_IMPL_H_
#define CONTRAIL_SERVER_INFERENCE_SERVICE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/access_policy.h"
#include "proto/grpc_predict_v2.grpc.pb.h"
#include "server/live_model.h"
#include "server/predict_batcher.h"

namespace contrail {

class InferenceServiceImpl final : public inference::GRPCInferenceService::Service {
 public:
  struct Options {
    // The name clients address the model by (ModelInferRequest.model_name).
    std::string model_name = "contrail";
    // Largest batch one ModelInfer may carry, as the LiveModel enforces it
    // (LiveModel::Options::max_batch); ModelConfig reports it as
    // max_batch_size.
    int64_t max_batch = 1024;
  };

  // Names of the model's tensors.
  static constexpr char kInputName[] = "input";
  static constexpr char kProbabilitiesName[] = "probabilities";
  static constexpr char kLabelName[] = "label";
  // ModelMetadata.platform and ModelConfig.platform, in Triton's naming:
  // the network runs on LibTorch.
  static constexpr char kPlatform[] = "pytorch_libtorch";

  // INVALID_ARGUMENT naming the field unless `options` is usable:
  // model_name not empty and without whitespace or '/', max_batch >= 1.
  static absl::Status CheckOptions(const Options& options);

  // `live` and `access` must outlive the service; `options` must pass
  // CheckOptions(). ServerLive, ServerReady and ModelReady are open to
  // every caller, as probes; the other calls need the predict role under
  // `access`. ModelInfer runs its forward pass through `batcher` when one
  // is given (the one Predict uses, so that both protocols' requests share
  // the workers and merge under dynamic batching; it must outlive the
  // service), else on the calling thread.
  InferenceServiceImpl(const Options& options, LiveModel* live,
                       const AccessPolicy* access = &AccessPolicy::Open(),
                       PredictBatcher* batcher = nullptr)
      : options_(options), live_(live), access_(access), batcher_(batcher) {}

  grpc::Status ServerLive(grpc::ServerContext* context,
                          const inference::ServerLiveRequest* request,
                          inference::ServerLiveResponse* response) override;
  grpc::Status ServerReady(grpc::ServerContext* context,
                           const inference::ServerReadyRequest* request,
                           inference::ServerReadyResponse* response) override;
  grpc::Status ModelReady(grpc::ServerContext* context,
                          const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override;
  grpc::Status ServerMetadata(grpc::ServerContext* context,
                              const inference::ServerMetadataRequest* request,
                              inference::ServerMetadataResponse* response) override;
  grpc::Status ModelMetadata(grpc::ServerContext* context,
                             const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override;
  grpc::Status ModelInfer(grpc::ServerContext* context,
                          const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override;
  grpc::Status ModelConfig(grpc::ServerContext* context,
                           const inference::ModelConfigRequest* request,
                           inference::ModelConfigResponse* response) override;

  // Examples inferred so far through ModelInfer.
  uint64_t inferences() const { return inferences_.load(); }

 private:
  // The version served now, if `name` and `version` address it: NOT_FOUND
  // for another model or version, UNAVAILABLE while no model is held.
  absl::StatusOr<std::shared_ptr<const LiveModel::Version>> Resolve(
      const std::string& name, const std::string& version) const;
  absl::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response);
  // LiveModel::Predict, through the batcher when there is one.
  absl::StatusOr<LiveModel::Predictions> Predict(absl::Span<const int64_t> shape,
                                                 absl::Span<const float> values);

  // Constant after construction.
  const Options options_;
  LiveModel* const live_;
  const AccessPolicy* const access_;
  PredictBatcher* const batcher_;

  std::atomic<uint64_t> inferences_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_INFERENCE_SERVICE_IMPL_H_
