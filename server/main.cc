// contrail server: serves predictions from a live model that follows a
// trainer update by update. Flags become ServerDaemon::Options; the daemon
// runs until SIGINT or SIGTERM.
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/daemon_main.h"
#include "common/model.h"
#include "common/tls_flags.h"
#include "server/server_daemon.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052",
          "host:port to serve Predict and GetStatus on (port 0 picks a free "
          "port; see --port_file)");
ABSL_FLAG(std::string, trainer, "127.0.0.1:50051",
          "host:port of the trainer to follow");
ABSL_FLAG(std::string, name, "",
          "name of this server in the trainer's logs (default: server@<listen>)");
ABSL_FLAG(int64_t, max_batch, 1024, "largest batch one Predict may carry");
ABSL_FLAG(int32_t, max_spare_versions, 3,
          "retired versions of the model kept for updates to write into while "
          "predictions still read the newer ones; each is a copy of the model in memory");
ABSL_FLAG(int32_t, predict_threads, 0,
          "threads running Predict's forward passes; 0: one per core");
ABSL_FLAG(bool, dynamic_batching, false,
          "merge the Predict requests that wait into one forward pass of at most "
          "--max_batch examples, as Triton's dynamic batcher does");
ABSL_FLAG(int64_t, batch_timeout_us, 500,
          "with --dynamic_batching, how long the oldest waiting request waits for more "
          "to join its batch, in microseconds; 0 merges only what is already queued");
ABSL_FLAG(std::string, model_name, "contrail",
          "name of the model in the Open Inference Protocol (KServe v2) API");
ABSL_FLAG(int64_t, max_example_floats, 28 * 28,
          "floats per example of the largest model input Predict takes; with "
          "--max_batch it bounds the size of a Predict request");
ABSL_FLAG(std::string, state_dir, "",
          "directory where the served model is saved, so that a restarted "
          "server serves it at once and continues from its version (empty: "
          "keep nothing)");
ABSL_FLAG(double, save_every_s, 5,
          "with --state_dir: seconds between saves of the served model (only "
          "when its version moved; once more at shutdown)");
ABSL_FLAG(double, keepalive_s, 2,
          "seconds between pings to the trainer while subscribed (>= 1)");
ABSL_FLAG(std::string, trainer_token_file, "",
          "file holding the bearer token sent to the trainer (one with the subscribe "
          "role in the trainer's --tokens_file); empty sends none");
ABSL_FLAG(double, keepalive_timeout_s, 2,
          "seconds a ping to the trainer may go unanswered before the link "
          "counts as dead and the server reconnects");
ABSL_FLAG(bool, relay, false,
          "also serve UpdateService on --listen, passing every update applied "
          "on unchanged, so that other servers can follow this one (a tree "
          "of servers below the trainer)");
ABSL_FLAG(int64_t, relay_retain, 4096,
          "with --relay: updates kept for servers that follow this one; one "
          "that falls further behind gets a snapshot");
ABSL_FLAG(int64_t, relay_max_subscribers, 64,
          "with --relay: servers that may follow this one at once");

ABSL_FLAG(std::string, health_listen, "",
          "host:port of a plaintext port serving only grpc.health.v1, for probes "
          "without TLS (Kubernetes' gRPC probes); empty: none");

namespace {
constexpr char kProgram[] = "server";
}  // namespace

int main(int argc, char** argv) {
  contrail::InitDaemon(
      kProgram,
      "Serves Predict from a model that follows a contrail trainer.\n"
      "Usage: server [--listen=127.0.0.1:50052] [--trainer=127.0.0.1:50051] "
      "[--state_dir=DIR]",
      argc, argv);
  if (contrail::ThreadsFlag() > 0) contrail::SetLibTorchThreads(contrail::ThreadsFlag());

  contrail::ServerDaemon::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.trainer = absl::GetFlag(FLAGS_trainer);
  options.name = absl::GetFlag(FLAGS_name);
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.max_example_floats = absl::GetFlag(FLAGS_max_example_floats);
  options.max_spare_versions = absl::GetFlag(FLAGS_max_spare_versions);
  options.predict_threads = absl::GetFlag(FLAGS_predict_threads);
  options.dynamic_batching = absl::GetFlag(FLAGS_dynamic_batching);
  options.batch_timeout = absl::Microseconds(absl::GetFlag(FLAGS_batch_timeout_us));
  options.model_name = absl::GetFlag(FLAGS_model_name);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.save_every = absl::Seconds(absl::GetFlag(FLAGS_save_every_s));
  options.keepalive.interval = absl::Seconds(absl::GetFlag(FLAGS_keepalive_s));
  options.keepalive.timeout = absl::Seconds(absl::GetFlag(FLAGS_keepalive_timeout_s));
  options.tls = contrail::TlsFlags();
  options.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  options.trainer_token_file = absl::GetFlag(FLAGS_trainer_token_file);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.metrics_listen = contrail::MetricsListenFlag();
  // With TLS on, metrics and the status page are served over HTTPS with
  // the same certificate.
  options.metrics_tls_cert_file = options.tls.cert_file;
  options.metrics_tls_key_file = options.tls.key_file;
  options.relay = absl::GetFlag(FLAGS_relay);
  const int64_t relay_retain = absl::GetFlag(FLAGS_relay_retain);
  const int64_t relay_max_subscribers = absl::GetFlag(FLAGS_relay_max_subscribers);
  if (relay_retain < 1) {
    contrail::Fail(kProgram, absl::StrCat("--relay_retain must be >= 1, got ", relay_retain));
  }
  if (relay_max_subscribers < 1) {
    contrail::Fail(kProgram, absl::StrCat("--relay_max_subscribers must be >= 1, got ",
                                          relay_max_subscribers));
  }
  options.relay_options.max_retained_updates = static_cast<size_t>(relay_retain);
  options.relay_max_subscribers = static_cast<uint64_t>(relay_max_subscribers);
  absl::StatusOr<std::unique_ptr<contrail::ServerDaemon>> daemon =
      contrail::ServerDaemon::Create(options);
  if (!daemon.ok()) contrail::Fail(kProgram, daemon.status());
  return contrail::ServeUntilSignal(kProgram, **daemon);
}
