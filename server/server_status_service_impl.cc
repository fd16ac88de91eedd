#include "server/server_status_service_impl.h"

#include "common/model_spec.h"

namespace contrail {

grpc::Status ServerStatusServiceImpl::GetStatus(grpc::ServerContext* context,
                                                const StatusRequest*,
                                                StatusResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kStatus); !allowed.ok()) {
    return allowed;
  }
  Fill(response);
  return grpc::Status::OK;
}

void ServerStatusServiceImpl::Fill(StatusResponse* response) const {
  response->set_role("server");
  std::shared_ptr<const LiveModel::Version> served = live_->Current();
  const bool connected = subscriber_->connected();
  response->set_connected(connected);
  if (served == nullptr) {
    response->set_phase(WAITING);
  } else {
    response->set_phase(connected ? SERVING : SERVING_DISCONNECTED);
    response->set_seconds_since_update(absl::ToDoubleSeconds(live_->SinceLastUpdate()));
    *response->mutable_spec() = served->model->spec();
    response->set_parameters(ModelSize(served->model->spec()));
    response->set_version(served->version);
    response->set_checksum(served->checksum);
  }
  response->set_updates_applied(subscriber_->updates_applied());
  response->set_bytes_received(subscriber_->bytes_received());
  response->set_resyncs(subscriber_->resyncs());
  response->set_predictions(predictions_->predictions());
  if (saver_ != nullptr) response->set_saved_version(saver_->saved_version());
  if (relay_ != nullptr) {
    response->set_bytes_sent(relay_->bytes_sent());
    response->set_subscribers(relay_->subscribers());
  }
}

}  // namespace contrail
