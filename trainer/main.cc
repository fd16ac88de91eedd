// contrail trainer: learns from a labelled stream with sparse proactive SGD
// and streams every step's changes to subscribed servers. Flags become
// TrainerDaemon::Options; the daemon runs until SIGINT or SIGTERM, serving
// its final model after the stream ends.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "common/daemon_main.h"
#include "common/idx_reader.h"
#include "common/model.h"
#include "common/tls_flags.h"
#include "trainer/trainer_daemon.h"
#include "trainer/trainer_flags.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve SubscribeUpdates and GetStatus on (port 0 picks "
          "a free port; see --port_file)");
ABSL_FLAG(std::string, source, "replay",
          "where examples come from: replay (the IDX data set in --data_dir, "
          "replayed at --replay_rate), ingest (only what producers send over "
          "IngestService, e.g. contrailctl ingest) or "
          "nats://HOST:PORT/STREAM/SUBJECT (a NATS JetStream stream, read by the "
          "durable consumer contrail-trainer and acked once trained; a restart "
          "resumes after the last acked example)");
ABSL_FLAG(std::string, data_dir, contrail::kFashionMnistDir,
          "--source=replay: folder with train-images-idx3-ubyte.gz and "
          "train-labels-idx1-ubyte.gz");
ABSL_FLAG(std::string, state_dir, "",
          "folder for checkpoints and the update log, so that a restarted trainer "
          "(even after kill -9) continues the same run and versions; empty = none");
ABSL_FLAG(double, checkpoint_every_s, 30,
          "--state_dir: seconds between checkpoints (one also follows initial "
          "training and ends training)");
ABSL_FLAG(uint64_t, max_subscribers, 256,
          "update streams (servers) served at once; more are refused with "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, ingest_queue, 10000,
          "--source=ingest: accepted examples that may wait for training; "
          "producers are held back (gRPC flow control) while the queue is full");

ABSL_FLAG(std::string, health_listen, "",
          "host:port of a plaintext port serving only grpc.health.v1, for probes "
          "without TLS (Kubernetes' gRPC probes); empty: none");

namespace {
constexpr char kProgram[] = "trainer";
}  // namespace

int main(int argc, char** argv) {
  contrail::InitDaemon(
      kProgram,
      "Trains a model on a labelled stream with sparse proactive SGD and "
      "streams sparse updates to contrail servers.\n"
      "Usage: trainer [--listen=127.0.0.1:50051] [--source=replay|ingest|nats://...] "
      "[--data_dir=...] "
      "[--sparsity=topk --ratio=0.001] ...",
      argc, argv);
  if (contrail::ThreadsFlag() > 0) contrail::SetLibTorchThreads(contrail::ThreadsFlag());

  contrail::TrainerDaemon::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.source = absl::GetFlag(FLAGS_source);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.ingest_queue = absl::GetFlag(FLAGS_ingest_queue);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.max_subscribers = absl::GetFlag(FLAGS_max_subscribers);
  options.checkpoint_every = absl::Seconds(absl::GetFlag(FLAGS_checkpoint_every_s));
  options.tls = contrail::TlsFlags();
  options.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.metrics_listen = contrail::MetricsListenFlag();
  // With TLS on, metrics and the status page are served over HTTPS with
  // the same certificate.
  options.metrics_tls_cert_file = options.tls.cert_file;
  options.metrics_tls_key_file = options.tls.key_file;
  absl::StatusOr<contrail::TrainingConfig> training = contrail::TrainingConfigFromFlags();
  if (!training.ok()) contrail::Fail(kProgram, training.status());
  options.training = *std::move(training);
  absl::StatusOr<std::unique_ptr<contrail::TrainerDaemon>> daemon =
      contrail::TrainerDaemon::Create(options);
  if (!daemon.ok()) contrail::Fail(kProgram, daemon.status());
  return contrail::ServeUntilSignal(kProgram, **daemon);
}
