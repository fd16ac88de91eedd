// contrail server: serves predictions from a live model that follows a
// trainer update by update.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "server/live_model.h"
#include "server/prediction_service_impl.h"
#include "server/server_status_service_impl.h"
#include "server/update_subscriber.h"
#include "spdlog/spdlog.h"
#include "torch/torch.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052",
          "host:port to serve Predict and GetStatus on (port 0 picks a free "
          "port; see --port_file)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once listening");
ABSL_FLAG(std::string, trainer, "127.0.0.1:50051",
          "host:port of the trainer to follow");
ABSL_FLAG(std::string, name, "",
          "name of this server in the trainer's logs (default: server@<listen>)");
ABSL_FLAG(int64_t, max_batch, 1024, "largest batch one Predict may carry");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads; 0 keeps LibTorch's default");

namespace {

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "server: %s\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves Predict from a model that follows a contrail trainer.\n"
      "Usage: server [--listen=127.0.0.1:50052] [--trainer=127.0.0.1:50051]");
  absl::ParseCommandLine(argc, argv);
  contrail::BlockTerminationSignals();
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e server %^%l%$ %v");
  if (absl::GetFlag(FLAGS_max_batch) < 1) Fail("--max_batch must be >= 1");
  if (absl::GetFlag(FLAGS_threads) < 0) Fail("--threads must be >= 0");
  if (absl::GetFlag(FLAGS_threads) > 0) torch::set_num_threads(absl::GetFlag(FLAGS_threads));

  contrail::LiveModel::Options live_options;
  live_options.max_batch = absl::GetFlag(FLAGS_max_batch);
  contrail::LiveModel live(live_options);
  contrail::UpdateSubscriber::Options subscriber_options;
  subscriber_options.trainer = absl::GetFlag(FLAGS_trainer);
  subscriber_options.name = absl::GetFlag(FLAGS_name).empty()
                                ? absl::StrCat("server@", absl::GetFlag(FLAGS_listen))
                                : absl::GetFlag(FLAGS_name);
  auto subscriber = contrail::UpdateSubscriber::Create(
      subscriber_options,
      contrail::UpdateSubscriber::MakeChannel(subscriber_options.trainer), &live);
  if (!subscriber.ok()) Fail(std::string(subscriber.status().message()));
  contrail::PredictionServiceImpl prediction_service(&live);
  contrail::ServerStatusServiceImpl status_service(&live, subscriber->get(),
                                                   &prediction_service);
  auto server = contrail::StartGrpcServer(absl::GetFlag(FLAGS_listen),
                                          {&prediction_service, &status_service});
  if (!server.ok()) Fail(std::string(server.status().message()));
  const absl::Status port_written =
      contrail::WritePortFile(absl::GetFlag(FLAGS_port_file), server->port);
  if (!port_written.ok()) Fail(std::string(port_written.message()));
  spdlog::info("listening on port {}, following the trainer at {}", server->port,
               subscriber_options.trainer);

  (*subscriber)->Start();
  const int signal = contrail::WaitForTerminationSignal();
  spdlog::info("signal {} received: shutting down", signal);
  (*subscriber)->Stop();
  server->server->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(2));
  auto served = live.Current();
  spdlog::info("stopped serving version {}", served ? served->version : 0);
  return 0;
}
