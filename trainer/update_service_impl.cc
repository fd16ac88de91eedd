#include "trainer/update_service_impl.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// How often a waiting subscription checks whether its client has gone.
constexpr absl::Duration kPollInterval = absl::Milliseconds(200);

}  // namespace

grpc::Status UpdateServiceImpl::SubscribeUpdates(
    grpc::ServerContext* context, const SubscribeRequest* request,
    grpc::ServerWriter<Update>* writer) {
  if (grpc::Status allowed = access_->Check(*context, Role::kSubscribe); !allowed.ok()) {
    return allowed;
  }
  const std::string who =
      request->subscriber().empty() ? context->peer() : request->subscriber();
  if (++subscribers_ > max_subscribers_) {
    --subscribers_;
    spdlog::warn("refused subscriber {}: {} streams open already", who, max_subscribers_);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("at most ", max_subscribers_, " subscribers are served (",
                                     max_subscribers_flag_, ")"));
  }
  spdlog::info("subscriber {} connected holding version {}", who,
               request->have_version());
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    open_[id].name = who;
    open_[id].version = request->have_version();
  }
  uint64_t run = request->have_run();
  uint64_t version = request->have_version();
  uint64_t fingerprint = request->have_fingerprint();
  std::vector<std::shared_ptr<const Update>> batch;
  grpc::Status result = grpc::Status::OK;
  while (!context->IsCancelled()) {
    const absl::Status next =
        feed_->Next(run, version, fingerprint, kPollInterval, &batch);
    if (!next.ok()) {
      result = ToGrpcStatus(next);
      break;
    }
    if (batch.size() > kMaxBatch) batch.resize(kMaxBatch);
    bool open = true;
    for (const std::shared_ptr<const Update>& update : batch) {
      if (update->snapshot()) {
        spdlog::info("sending {} a snapshot of version {}", who,
                     update->version());
      }
      if (!writer->Write(*update)) {
        open = false;
        break;
      }
      bytes_sent_ += update->ByteSizeLong();
      {
        absl::MutexLock lock(&mu_);
        Subscriber& state = open_[id];
        state.version = update->version();
        if (update->publish_time_us() > 0) {
          state.send_lag =
              absl::Now() - absl::FromUnixMicros(static_cast<int64_t>(update->publish_time_us()));
        }
      }
      run = update->run();
      version = update->version();
      fingerprint = update->fingerprint();
    }
    if (!open) break;
  }
  --subscribers_;
  {
    absl::MutexLock lock(&mu_);
    open_.erase(id);
  }
  spdlog::info("subscriber {} left at version {}", who, version);
  return result;
}

std::vector<UpdateServiceImpl::Subscriber> UpdateServiceImpl::OpenSubscribers() const {
  absl::MutexLock lock(&mu_);
  std::vector<Subscriber> open;
  open.reserve(open_.size());
  for (const auto& [id, state] : open_) open.push_back(state);
  return open;
}

}  // namespace contrail
