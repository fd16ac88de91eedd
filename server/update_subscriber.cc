#include "server/update_subscriber.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/access_policy.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {

absl::Status UpdateSubscriber::CheckKeepalive(const Keepalive& keepalive) {
  if (keepalive.interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive interval (--keepalive_s) must be >= 1s (trainers refuse more "
        "frequent pings), got ",
        absl::FormatDuration(keepalive.interval)));
  }
  if (keepalive.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keepalive timeout (--keepalive_timeout_s) must be > 0, got ",
        absl::FormatDuration(keepalive.timeout)));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> UpdateSubscriber::MakeChannel(const std::string& trainer) {
  return MakeChannel(trainer, Keepalive());
}

std::shared_ptr<grpc::Channel> UpdateSubscriber::MakeChannel(
    const std::string& trainer, const Keepalive& keepalive,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments arguments;
  // Snapshots of large models exceed gRPC's 4 MiB default.
  arguments.SetMaxReceiveMessageSize(-1);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
                   static_cast<int>(absl::ToInt64Milliseconds(keepalive.interval)));
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                   static_cast<int>(absl::ToInt64Milliseconds(keepalive.timeout)));
  // gRPC stops pinging after two pings without data by default: an idle
  // trainer (a finished stream, a quiet source) would then go unwatched.
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // gRPC's own reconnect backoff grows to 120 s by default; keep it within
  // the subscriber's so that a restarted trainer is found quickly.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return grpc::CreateCustomChannel(
      trainer, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(),
      arguments);
}

absl::StatusOr<std::unique_ptr<UpdateSubscriber>> UpdateSubscriber::Create(
    const Options& options, std::shared_ptr<grpc::Channel> channel, LiveModel* live) {
  if (options.trainer.empty()) return absl::InvalidArgumentError("trainer must not be empty");
  if (options.name.empty()) return absl::InvalidArgumentError("name must not be empty");
  if (options.clock == nullptr) return absl::InvalidArgumentError("clock must not be null");
  if (channel == nullptr) return absl::InvalidArgumentError("channel must not be null");
  if (live == nullptr) return absl::InvalidArgumentError("live model must not be null");
  CONTRAIL_ASSIGN_OR_RETURN(Backoff backoff, Backoff::Create(options.backoff));
  return std::unique_ptr<UpdateSubscriber>(
      new UpdateSubscriber(options, std::move(backoff), std::move(channel), live));
}

UpdateSubscriber::UpdateSubscriber(const Options& options, Backoff backoff,
                                   std::shared_ptr<grpc::Channel> channel,
                                   LiveModel* live)
    : options_(options),
      live_(live),
      channel_(std::move(channel)),
      stub_(UpdateService::NewStub(channel_)),
      backoff_(std::move(backoff)) {}

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

bool UpdateSubscriber::connected() const {
  // An open call alone is not enough: while the channel connects, or after
  // a dead link, the call waits with nothing behind it.
  return subscribed_.load() &&
         channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
}

uint64_t UpdateSubscriber::HeldVersion() const {
  const std::shared_ptr<const LiveModel::Version> held = live_->Current();
  return held ? held->version : 0;
}

void UpdateSubscriber::Run() {
  while (!stop_.HasBeenNotified()) {
    const Ended ended = SubscribeOnce();
    if (stop_.HasBeenNotified()) break;
    if (ended.rejected) ++resyncs_;
    if (ended.applied || ended.lasted >= options_.backoff.max) backoff_.Reset();
    const absl::Duration wait = backoff_.Next();
    spdlog::warn("{}; resubscribing from version {} in {}", ended.reason,
                 HeldVersion(), absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1))));
    options_.clock->SleepUntil(options_.clock->Now() + wait, &stop_);
  }
}

UpdateSubscriber::Ended UpdateSubscriber::SubscribeOnce() {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.HasBeenNotified()) return {};
    context_ = &context;
  }
  AttachBearerToken(options_.token, &context);
  const absl::Time started = options_.clock->Now();
  SubscribeRequest request;
  request.set_subscriber(options_.name);
  if (std::shared_ptr<const LiveModel::Version> held = live_->Current()) {
    request.set_have_version(held->version);
    request.set_have_run(held->run);
    request.set_have_fingerprint(held->model->spec().fingerprint());
  }
  subscribed_ = true;
  std::unique_ptr<grpc::ClientReader<Update>> reader =
      stub_->SubscribeUpdates(&context, request);
  Ended ended;
  bool received_any = false;
  Update update;
  while (reader->Read(&update)) {
    if (!received_any) {
      spdlog::info("subscribed to the trainer at {} holding version {}",
                   options_.trainer, request.have_version());
    }
    received_any = true;
    const uint64_t wire_bytes = update.ByteSizeLong();
    bytes_received_ += wire_bytes;
    const absl::Time apply_started = absl::Now();
    const absl::Status applied = options_.applier != nullptr
                                     ? options_.applier->Apply(update)
                                     : live_->Apply(update);
    const absl::Time applied_at = absl::Now();
    if (!applied.ok()) {
      ended.rejected = true;
      ended.reason = absl::StrCat("rejected ", update.snapshot() ? "snapshot " : "update ",
                                  update.version(), ": ", applied.ToString());
      context.TryCancel();
      break;
    }
    ended.applied = true;
    ++updates_applied_;
    if (options_.observer != nullptr) {
      options_.observer->Applied(update, wire_bytes, applied_at - apply_started, applied_at);
    }
    if (update.snapshot()) {
      spdlog::info("loaded snapshot of version {} ({}, checksum {:016x})",
                   update.version(), update.spec().architecture(),
                   update.model_checksum());
    }
  }
  const grpc::Status status = reader->Finish();
  subscribed_ = false;
  ended.lasted = options_.clock->Now() - started;
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  if (!ended.rejected) {
    ended.reason = absl::StrCat("update stream from ", options_.trainer, " ended: ",
                                status.error_message(), " (",
                                static_cast<int>(status.error_code()), ")");
  }
  return ended;
}

}  // namespace contrail
