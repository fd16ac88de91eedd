#include "server/prediction_service_impl.h"

#include "common/grpc_status.h"

namespace contrail {

grpc::Status PredictionServiceImpl::Predict(grpc::ServerContext* context,
                                            const PredictRequest* request,
                                            PredictResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    return allowed;
  }
  if (!request->has_inputs()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "PredictRequest.inputs is missing");
  }
  const Tensor& inputs = request->inputs();
  absl::StatusOr<LiveModel::Predictions> predictions =
      live_->Predict(inputs.shape(), inputs.values());
  if (!predictions.ok()) return ToGrpcStatus(predictions.status());
  response->set_version(predictions->version);
  const int64_t classes = predictions->num_classes;
  for (size_t i = 0; i < predictions->labels.size(); ++i) {
    Prediction* prediction = response->add_predictions();
    prediction->set_label(predictions->labels[i]);
    const float* row = predictions->probabilities.data() + i * classes;
    prediction->mutable_scores()->Add(row, row + classes);
  }
  predictions_ += predictions->labels.size();
  return grpc::Status::OK;
}

}  // namespace contrail
