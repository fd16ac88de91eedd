// contrail server: serves predictions from a live model that follows a
// trainer update by update. Flags become ServerDaemon::Options; the daemon
// runs until SIGINT or SIGTERM.
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "common/daemon_main.h"
#include "common/model.h"
#include "server/server_daemon.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052",
          "host:port to serve Predict and GetStatus on (port 0 picks a free "
          "port; see --port_file)");
ABSL_FLAG(std::string, trainer, "127.0.0.1:50051",
          "host:port of the trainer to follow");
ABSL_FLAG(std::string, name, "",
          "name of this server in the trainer's logs (default: server@<listen>)");
ABSL_FLAG(int64_t, max_batch, 1024, "largest batch one Predict may carry");

namespace {
constexpr char kProgram[] = "server";
}  // namespace

int main(int argc, char** argv) {
  contrail::InitDaemon(
      kProgram,
      "Serves Predict from a model that follows a contrail trainer.\n"
      "Usage: server [--listen=127.0.0.1:50052] [--trainer=127.0.0.1:50051]",
      argc, argv);
  if (contrail::ThreadsFlag() > 0) contrail::SetLibTorchThreads(contrail::ThreadsFlag());

  contrail::ServerDaemon::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.trainer = absl::GetFlag(FLAGS_trainer);
  options.name = absl::GetFlag(FLAGS_name);
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  absl::StatusOr<std::unique_ptr<contrail::ServerDaemon>> daemon =
      contrail::ServerDaemon::Create(options);
  if (!daemon.ok()) contrail::Fail(kProgram, daemon.status());
  return contrail::ServeUntilSignal(kProgram, **daemon);
}
