#include "trainer/trainer_status_service_impl.h"

#include "common/model_spec.h"

namespace contrail {

grpc::Status TrainerStatusServiceImpl::GetStatus(grpc::ServerContext* context,
                                                 const StatusRequest*,
                                                 StatusResponse* response) {
  if (grpc::Status allowed = access_->Check(*context, Role::kStatus); !allowed.ok()) {
    return allowed;
  }
  Fill(response);
  return grpc::Status::OK;
}

void TrainerStatusServiceImpl::Fill(StatusResponse* response) const {
  const SourceCounters source = trainer_->source_counters();
  const StreamTrainer::Stats stats = trainer_->stats();
  response->set_role("trainer");
  response->set_source(trainer_->source_name());
  response->set_examples_accepted(source.accepted);
  response->set_examples_rejected(source.rejected);
  for (const auto& [reason, count] : source.rejected_by_reason) {
    (*response->mutable_rejected_by_reason())[reason] = count;
  }
  // Waiting in the source's queue, or read and awaiting their step.
  response->set_examples_queued(source.queued + stats.examples_read -
                                stats.examples_trained);
  response->set_examples_trained(stats.examples_trained);
  response->set_phase(stats.phase);
  if (stats.phase == FAILED) {
    response->set_error_code(static_cast<int32_t>(stats.outcome.code()));
    response->set_error_message(std::string(stats.outcome.message()));
  }
  *response->mutable_spec() = publisher_->spec();
  response->set_parameters(ModelSize(publisher_->spec()));
  response->set_version(publisher_->version());
  response->set_checksum(publisher_->mirror_checksum());
  response->set_trainer_checksum(stats.trainer_checksum);
  response->set_examples_seen(stats.examples_seen);
  response->set_updates_published(stats.updates_published);
  response->set_entries_published(stats.entries_published);
  response->set_payload_bytes_published(stats.payload_bytes_published);
  response->set_bytes_sent(updates_->bytes_sent());
  response->set_subscribers(updates_->subscribers());
  response->set_prequential_accuracy(stats.prequential_accuracy());
  response->set_served_prequential_accuracy(stats.served_prequential_accuracy());
  response->set_guard_state(QualityGuard::StateName(stats.guard_state));
  response->set_trainer_window_accuracy(stats.trainer_window_accuracy);
  response->set_served_window_accuracy(stats.served_window_accuracy);
  response->set_best_served_window_accuracy(stats.best_served_window_accuracy);
  response->set_guard_holds(static_cast<uint64_t>(stats.guard_holds));
  response->set_guard_rollbacks(static_cast<uint64_t>(stats.guard_rollbacks));
  response->set_guard_good_version(stats.guard_good_version);
}

}  // namespace contrail
