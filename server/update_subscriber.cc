#include "server/update_subscriber.h"

#include <algorithm>

#include "spdlog/spdlog.h"

namespace contrail {
namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments arguments;
  // Snapshots of large models exceed gRPC's 4 MiB default.
  arguments.SetMaxReceiveMessageSize(-1);
  // gRPC's own reconnect backoff grows to 120 s by default; keep it within
  // the subscriber's so that a restarted trainer is found quickly.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   arguments);
}

}  // namespace

UpdateSubscriber::UpdateSubscriber(const Options& options, LiveModel* live)
    : options_(options),
      live_(live),
      stub_(UpdateService::NewStub(MakeChannel(options.trainer))) {}

UpdateSubscriber::~UpdateSubscriber() { Stop(); }

void UpdateSubscriber::Start() { thread_ = std::thread([this] { Run(); }); }

void UpdateSubscriber::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void UpdateSubscriber::Run() {
  absl::Duration backoff = options_.initial_backoff;
  while (!stop_.HasBeenNotified()) {
    bool received_any = false;
    const bool rejected = SubscribeOnce(&received_any);
    if (stop_.HasBeenNotified()) break;
    if (rejected) {
      ++resyncs_;
      backoff = options_.initial_backoff;
      continue;  // resubscribe at once, from the version held
    }
    if (received_any) backoff = options_.initial_backoff;
    spdlog::info("reconnecting to the trainer at {} in {}", options_.trainer,
                 absl::FormatDuration(backoff));
    stop_.WaitForNotificationWithTimeout(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool UpdateSubscriber::SubscribeOnce(bool* received_any) {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return false;
    context_ = &context;
  }
  SubscribeRequest request;
  request.set_subscriber(options_.name);
  if (std::shared_ptr<const LiveModel::Version> held = live_->Current()) {
    request.set_have_version(held->version);
    request.set_have_run(held->run);
    request.set_have_fingerprint(held->model->spec().fingerprint());
  }
  std::unique_ptr<grpc::ClientReader<Update>> reader =
      stub_->SubscribeUpdates(&context, request);
  bool rejected = false;
  Update update;
  while (reader->Read(&update)) {
    if (!*received_any) {
      spdlog::info("subscribed to the trainer at {} holding version {}",
                   options_.trainer, request.have_version());
    }
    *received_any = true;
    connected_ = true;
    bytes_received_ += update.ByteSizeLong();
    const absl::Status applied = live_->Apply(update);
    if (!applied.ok()) {
      std::shared_ptr<const LiveModel::Version> held = live_->Current();
      spdlog::warn("rejected {} {}: {}; resubscribing from version {}",
                   update.snapshot() ? "snapshot" : "update", update.version(),
                   applied.ToString(), held ? held->version : 0);
      rejected = true;
      context.TryCancel();
      break;
    }
    ++updates_applied_;
    if (update.snapshot()) {
      spdlog::info("loaded snapshot of version {} ({}, checksum {:016x})",
                   update.version(), update.spec().architecture(),
                   update.model_checksum());
    }
  }
  const grpc::Status status = reader->Finish();
  connected_ = false;
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  if (!rejected && !stop_.HasBeenNotified()) {
    spdlog::warn("update stream from {} ended: {} ({})", options_.trainer,
                 status.error_message(), static_cast<int>(status.error_code()));
  }
  return rejected;
}

}  // namespace contrail
