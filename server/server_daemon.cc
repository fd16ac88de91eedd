#include "server/server_daemon.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {

absl::StatusOr<std::unique_ptr<ServerDaemon>> ServerDaemon::Create(const Options& options) {
  CONTRAIL_RETURN_IF_ERROR(CheckListenAddress(options.listen));
  if (options.trainer.empty()) return absl::InvalidArgumentError("trainer must not be empty");
  if (options.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown_grace must be >= 0, got ", absl::FormatDuration(options.shutdown_grace)));
  }
  LiveModel::Options live_options;
  live_options.max_batch = options.max_batch;
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<LiveModel> live, LiveModel::Create(live_options));
  UpdateSubscriber::Options subscriber_options;
  subscriber_options.trainer = options.trainer;
  subscriber_options.name =
      options.name.empty() ? absl::StrCat("server@", options.listen) : options.name;
  subscriber_options.backoff = options.backoff;
  subscriber_options.clock = options.clock;
  CONTRAIL_ASSIGN_OR_RETURN(
      std::unique_ptr<UpdateSubscriber> subscriber,
      UpdateSubscriber::Create(subscriber_options,
                               UpdateSubscriber::MakeChannel(options.trainer), live.get()));
  return std::unique_ptr<ServerDaemon>(
      new ServerDaemon(options, std::move(live), std::move(subscriber)));
}

ServerDaemon::ServerDaemon(const Options& options, std::unique_ptr<LiveModel> live,
                           std::unique_ptr<UpdateSubscriber> subscriber)
    : options_(options),
      live_(std::move(live)),
      subscriber_(std::move(subscriber)),
      prediction_service_(live_.get()),
      status_service_(live_.get(), subscriber_.get(), &prediction_service_) {}

ServerDaemon::~ServerDaemon() { Shutdown(); }

absl::Status ServerDaemon::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || shut_down_) {
    return absl::FailedPreconditionError(shut_down_ ? "the server daemon was shut down"
                                                    : "the server daemon already started");
  }
  absl::StatusOr<StartedServer> server =
      StartGrpcServer(options_.listen, {&prediction_service_, &status_service_});
  if (!server.ok()) return server.status();
  server_ = std::move(server->server);
  port_ = server->port;
  started_ = true;
  spdlog::info("listening on port {}, following the trainer at {}", port_,
               options_.trainer);
  subscriber_->Start();
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
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(options_.shutdown_grace));
  const std::shared_ptr<const LiveModel::Version> served = live_->Current();
  spdlog::info("stopped serving version {}", served ? served->version : 0);
}

}  // namespace contrail
