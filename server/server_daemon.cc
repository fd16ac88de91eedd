#include "server/server_daemon.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// gRPC's message sizes are ints.
constexpr int64_t kMaxMessageBytes = std::numeric_limits<int32_t>::max();
// Beyond the packed floats of a Predict request: the tags and lengths of
// the inputs and their values, and a shape of a few varints.
constexpr int64_t kFramingBytes = 4096;

}  // namespace

absl::StatusOr<std::unique_ptr<ServerDaemon>> ServerDaemon::Create(const Options& options) {
  CONTRAIL_RETURN_IF_ERROR(CheckListenAddress(options.listen));
  if (options.trainer.empty()) return absl::InvalidArgumentError("trainer must not be empty");
  if (options.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown_grace must be >= 0, got ", absl::FormatDuration(options.shutdown_grace)));
  }
  if (options.max_example_floats < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_example_floats must be >= 1, got ", options.max_example_floats));
  }
  if (options.max_batch >= 1 &&
      options.max_batch > (kMaxMessageBytes - kFramingBytes) / 4 / options.max_example_floats) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch (", options.max_batch, ") x max_example_floats (",
        options.max_example_floats, ") floats make Predict requests larger than gRPC's "
        "limit of ", kMaxMessageBytes, " bytes"));
  }
  CONTRAIL_RETURN_IF_ERROR(UpdateSubscriber::CheckKeepalive(options.keepalive));
  LiveModel::Options live_options;
  live_options.max_batch = options.max_batch;
  live_options.clock = options.clock;
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<LiveModel> live, LiveModel::Create(live_options));
  std::unique_ptr<ServedModelStore> store;
  std::unique_ptr<ServedModelSaver> saver;
  if (!options.state_dir.empty()) {
    ServedModelStore::Options store_options;
    store_options.dir = options.state_dir;
    CONTRAIL_ASSIGN_OR_RETURN(store, ServedModelStore::Create(store_options));
    ServedModelSaver::Options saver_options;
    saver_options.interval = options.save_every;
    saver_options.clock = options.clock;
    CONTRAIL_ASSIGN_OR_RETURN(saver,
                              ServedModelSaver::Create(saver_options, live.get(), store.get()));
    // Served from Start() on, trainer or not; the subscription continues
    // from it.
    if (store->Restore(live.get()).ok()) {
      const std::shared_ptr<const LiveModel::Version> restored = live->Current();
      saver->MarkSaved(restored->run, restored->version);
    }
  }
  std::unique_ptr<UpdateRelay> relay;
  if (options.relay) {
    if (options.relay_max_subscribers < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "relay_max_subscribers must be >= 1, got ", options.relay_max_subscribers));
    }
    // After the restore: the version restored is the first passed on.
    CONTRAIL_ASSIGN_OR_RETURN(relay, UpdateRelay::Create(options.relay_options, live.get()));
  }
  UpdateSubscriber::Options subscriber_options;
  subscriber_options.trainer = options.trainer;
  subscriber_options.name =
      options.name.empty() ? absl::StrCat("server@", options.listen) : options.name;
  subscriber_options.backoff = options.backoff;
  subscriber_options.clock = options.clock;
  subscriber_options.applier = relay.get();
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<UpdateSubscriber> subscriber,
      UpdateSubscriber::Create(
          subscriber_options,
          UpdateSubscriber::MakeChannel(options.trainer, options.keepalive), live.get()));
  return std::unique_ptr<ServerDaemon>(new ServerDaemon(options, std::move(live),
                                                        std::move(relay), std::move(subscriber),
                                                        std::move(store), std::move(saver)));
}

int64_t ServerDaemon::MaxPredictRequestBytes(const Options& options) {
  return options.max_batch * options.max_example_floats * 4 + kFramingBytes;
}

ServerDaemon::ServerDaemon(const Options& options, std::unique_ptr<LiveModel> live,
                           std::unique_ptr<UpdateRelay> relay,
                           std::unique_ptr<UpdateSubscriber> subscriber,
                           std::unique_ptr<ServedModelStore> store,
                           std::unique_ptr<ServedModelSaver> saver)
    : options_(options),
      live_(std::move(live)),
      relay_(std::move(relay)),
      subscriber_(std::move(subscriber)),
      store_(std::move(store)),
      saver_(std::move(saver)),
      prediction_service_(live_.get()),
      update_service_(relay_ == nullptr
                          ? nullptr
                          : std::make_unique<UpdateServiceImpl>(relay_.get(),
                                                                options.relay_max_subscribers,
                                                                "--relay_max_subscribers")),
      status_service_(live_.get(), subscriber_.get(), &prediction_service_, saver_.get(),
                      update_service_.get()) {}

ServerDaemon::~ServerDaemon() { Shutdown(); }

absl::Status ServerDaemon::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || shut_down_) {
    return absl::FailedPreconditionError(shut_down_ ? "the server daemon was shut down"
                                                    : "the server daemon already started");
  }
  GrpcServerOptions server_options;
  server_options.max_receive_message_bytes =
      static_cast<int>(MaxPredictRequestBytes(options_));
  std::vector<grpc::Service*> services = {&prediction_service_, &status_service_};
  if (update_service_ != nullptr) services.push_back(update_service_.get());
  absl::StatusOr<StartedServer> server =
      StartGrpcServer(options_.listen, services, server_options);
  if (!server.ok()) return server.status();
  server_ = std::move(server->server);
  port_ = server->port;
  started_ = true;
  spdlog::info("listening on port {}, following the trainer at {}{}", port_,
               options_.trainer, relay_ != nullptr ? ", relaying its updates" : "");
  subscriber_->Start();
  if (saver_ != nullptr) saver_->Start();
  return absl::OkStatus();
}

int ServerDaemon::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

void ServerDaemon::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  subscriber_->Stop();
  // The last version applied is on disk before the port closes.
  if (saver_ != nullptr) saver_->Stop();
  // Subscriptions below end now rather than at the grace deadline.
  if (relay_ != nullptr) relay_->Close();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(options_.shutdown_grace));
  const std::shared_ptr<const LiveModel::Version> served = live_->Current();
  spdlog::info("stopped serving version {}", served ? served->version : 0);
}

}  // namespace contrail
