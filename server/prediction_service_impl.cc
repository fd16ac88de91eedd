#include "server/prediction_service_impl.h"

#include <utility>

#include "common/grpc_status.h"

namespace contrail {

PredictionServiceImpl::PredictionServiceImpl(LiveModel* live, const AccessPolicy* access,
                                             const PredictBatcher::Options& batching)
    : access_(access), batcher_(PredictBatcher::Create(batching, live).value()) {}

grpc::ServerUnaryReactor* PredictionServiceImpl::Predict(grpc::CallbackServerContext* context,
                                                         const PredictRequest* request,
                                                         PredictResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status allowed = access_->Check(*context, Role::kPredict); !allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  if (!request->has_inputs()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "PredictRequest.inputs is missing"));
    return reactor;
  }
  const Tensor& inputs = request->inputs();
  // The request and response live until Finish().
  batcher_->Submit(
      inputs.shape(), inputs.values(),
      [this, reactor, response](absl::StatusOr<LiveModel::Predictions> predictions) {
        if (!predictions.ok()) {
          reactor->Finish(ToGrpcStatus(predictions.status()));
          return;
        }
        response->set_version(predictions->version);
        const int64_t classes = predictions->num_classes;
        for (size_t i = 0; i < predictions->labels.size(); ++i) {
          Prediction* prediction = response->add_predictions();
          prediction->set_label(predictions->labels[i]);
          const float* row = predictions->probabilities.data() + i * classes;
          prediction->mutable_scores()->Add(row, row + classes);
        }
        predictions_ += predictions->labels.size();
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace contrail
