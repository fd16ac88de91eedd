// contrailctl: a command-line client for contrail's trainer and servers.
//
//   contrailctl status  --target=host:port
//   contrailctl predict --target=host:port [--data_dir=...] [--count=N]
//   contrailctl compare --trainer=host:port --server=host:port [--wait_s=S]
//   contrailctl ingest  --target=host:port [--data_dir=...] [--split=train]
//                       [--offset=N] [--count=N] [--rate=R] [--bad_every=K]
//   contrailctl ingest  --nats=nats://HOST:PORT/STREAM/SUBJECT [the same flags]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/idx_reader.h"
#include "common/jetstream_publisher.h"
#include "common/tls_flags.h"
#include "common/transport_security.h"
#include "proto/contrail.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50052",
          "status, predict: host:port of a trainer or server");
ABSL_FLAG(std::string, data_dir, contrail::kFashionMnistDir,
          "predict, ingest: folder with the Fashion-MNIST IDX files");
ABSL_FLAG(int64_t, count, 10000, "predict, ingest: how many images to send");
ABSL_FLAG(std::string, split, "train",
          "ingest: the data set's train split (train-*-ubyte.gz) or test split (t10k-*)");
ABSL_FLAG(int64_t, offset, 0, "ingest: first example of the split to send");
ABSL_FLAG(double, rate, 0, "ingest: examples per second; 0 = as fast as the trainer takes them");
ABSL_FLAG(int64_t, bad_every, 0,
          "ingest: make every K-th example bad on purpose (in turn: wrong shape, a "
          "NaN input, a label out of range, and with --nats bytes that are not an "
          "Example), to see the trainer reject them; 0 = none");
ABSL_FLAG(std::string, nats, "",
          "ingest: publish to this NATS JetStream stream, "
          "nats://HOST:PORT/STREAM/SUBJECT (created when missing), instead of "
          "streaming to --target's IngestService");
ABSL_FLAG(int64_t, batch, 250, "predict: images per Predict call");
ABSL_FLAG(std::string, trainer, "127.0.0.1:50051", "compare: the trainer");
ABSL_FLAG(std::string, server, "127.0.0.1:50052", "compare: the server");
ABSL_FLAG(double, wait_s, 0,
          "compare: first wait up to this many seconds for the trainer to "
          "finish its stream and the server to reach its version");
ABSL_FLAG(double, timeout_s, 10, "deadline of each RPC, in seconds");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token to send (one with the role the command needs "
          "in the daemon's --tokens_file: status, predict or ingest; compare needs "
          "status on both); empty sends none");

namespace {

// Ends contrailctl with `status`'s message and exit status 2: bad flags.
[[noreturn]] void FailFlags(const absl::Status& status) {
  std::fprintf(stderr, "contrailctl: %s\n", std::string(status.message()).c_str());
  std::exit(2);
}

// The token of --token_file, read once; "" without one.
const std::string& Token() {
  static const std::string* const token = [] {
    absl::StatusOr<std::string> read =
        contrail::ReadTokenFile("token_file", absl::GetFlag(FLAGS_token_file));
    if (!read.ok()) FailFlags(read.status());
    return new std::string(*std::move(read));
  }();
  return *token;
}

std::unique_ptr<grpc::ClientContext> NewContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  contrail::AttachBearerToken(Token(), context.get());
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(
                            absl::GetFlag(FLAGS_timeout_s) * 1000)));
  return context;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& target) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      contrail::MakeChannelCredentials(contrail::TlsFlags());
  if (!credentials.ok()) FailFlags(credentials.status());
  return grpc::CreateCustomChannel(target, *credentials, arguments);
}

int RpcFailed(const std::string& what, const std::string& target,
              const grpc::Status& status) {
  std::fprintf(stderr, "contrailctl: %s %s failed: %s (code %d)\n", what.c_str(),
               target.c_str(), status.error_message().c_str(),
               static_cast<int>(status.error_code()));
  return 1;
}

grpc::Status GetStatus(const std::string& target, contrail::StatusResponse* out) {
  auto stub = contrail::StatusService::NewStub(Connect(target));
  return stub->GetStatus(NewContext().get(), contrail::StatusRequest(), out);
}

// "done", "serving_disconnected": the phase as people read it.
std::string PhaseName(contrail::Phase phase) {
  return absl::AsciiStrToLower(contrail::Phase_Name(phase));
}

void PrintStatus(const contrail::StatusResponse& s) {
  std::printf("role: %s\n", s.role().c_str());
  std::printf("phase: %s\n", PhaseName(s.phase()).c_str());
  if (s.phase() == contrail::FAILED) {
    std::printf("error: %s: %s\n",
                absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())).c_str(),
                s.error_message().c_str());
  }
  std::printf("model: %s\n", s.spec().architecture().c_str());
  std::printf("parameters: %llu\n", static_cast<unsigned long long>(s.parameters()));
  std::printf("fingerprint: %016llx\n",
              static_cast<unsigned long long>(s.spec().fingerprint()));
  std::printf("version: %llu\n", static_cast<unsigned long long>(s.version()));
  std::printf("checksum: %016llx\n", static_cast<unsigned long long>(s.checksum()));
  if (s.role() == "trainer") {
    std::printf("trainer_checksum: %016llx\n",
                static_cast<unsigned long long>(s.trainer_checksum()));
    std::printf("examples_seen: %llu\n",
                static_cast<unsigned long long>(s.examples_seen()));
    std::printf("prequential_accuracy: %.4f\n", s.prequential_accuracy());
    std::printf("served_prequential_accuracy: %.4f\n", s.served_prequential_accuracy());
    std::printf("updates_published: %llu\n",
                static_cast<unsigned long long>(s.updates_published()));
    std::printf("entries_published: %llu\n",
                static_cast<unsigned long long>(s.entries_published()));
    std::printf("payload_bytes_published: %llu\n",
                static_cast<unsigned long long>(s.payload_bytes_published()));
    std::printf("bytes_sent: %llu\n", static_cast<unsigned long long>(s.bytes_sent()));
    std::printf("subscribers: %llu\n", static_cast<unsigned long long>(s.subscribers()));
    std::printf("source: %s\n", s.source().c_str());
    std::printf("examples_accepted: %llu\n",
                static_cast<unsigned long long>(s.examples_accepted()));
    std::printf("examples_trained: %llu\n",
                static_cast<unsigned long long>(s.examples_trained()));
    std::printf("examples_queued: %llu\n",
                static_cast<unsigned long long>(s.examples_queued()));
    std::printf("examples_rejected: %llu\n",
                static_cast<unsigned long long>(s.examples_rejected()));
    for (const auto& [reason, n] : std::map<std::string, uint64_t>(
             s.rejected_by_reason().begin(), s.rejected_by_reason().end())) {
      std::printf("  %s: %llu\n", reason.c_str(), static_cast<unsigned long long>(n));
    }
  } else {
    std::printf("updates_applied: %llu\n",
                static_cast<unsigned long long>(s.updates_applied()));
    std::printf("bytes_received: %llu\n",
                static_cast<unsigned long long>(s.bytes_received()));
    std::printf("resyncs: %llu\n", static_cast<unsigned long long>(s.resyncs()));
    std::printf("predictions: %llu\n", static_cast<unsigned long long>(s.predictions()));
    std::printf("connected: %s\n", s.connected() ? "yes" : "no");
    std::printf("seconds_since_update: %.1f\n", s.seconds_since_update());
    std::printf("saved_version: %llu\n", static_cast<unsigned long long>(s.saved_version()));
  }
}

int Status() {
  contrail::StatusResponse status;
  const std::string target = absl::GetFlag(FLAGS_target);
  const grpc::Status rpc = GetStatus(target, &status);
  if (!rpc.ok()) return RpcFailed("GetStatus on", target, rpc);
  PrintStatus(status);
  return 0;
}

int Predict() {
  const std::string target = absl::GetFlag(FLAGS_target);
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1) {
    std::fprintf(stderr, "contrailctl: --batch must be >= 1\n");
    return 2;
  }
  absl::StatusOr<contrail::LabelledImages> data =
      contrail::ReadFashionMnist(absl::GetFlag(FLAGS_data_dir), /*train=*/false);
  if (!data.ok()) {
    std::fprintf(stderr, "contrailctl: %s\n", std::string(data.status().message()).c_str());
    return 2;
  }
  const int64_t count = std::min(absl::GetFlag(FLAGS_count), data->count);
  if (count < 1) {
    std::fprintf(stderr, "contrailctl: --count must be >= 1\n");
    return 2;
  }
  auto stub = contrail::PredictionService::NewStub(Connect(target));
  const int64_t size = data->example_size();
  int64_t correct = 0;
  std::map<uint64_t, int64_t> versions;  // version -> examples it answered
  const absl::Time start = absl::Now();
  for (int64_t begin = 0; begin < count; begin += batch) {
    const int64_t n = std::min(batch, count - begin);
    contrail::PredictRequest request;
    contrail::Tensor* inputs = request.mutable_inputs();
    inputs->add_shape(n);
    inputs->add_shape(1);
    inputs->add_shape(data->rows);
    inputs->add_shape(data->cols);
    inputs->mutable_values()->Add(data->pixels.begin() + begin * size,
                                  data->pixels.begin() + (begin + n) * size);
    contrail::PredictResponse response;
    const grpc::Status rpc = stub->Predict(NewContext().get(), request, &response);
    if (!rpc.ok()) return RpcFailed("Predict on", target, rpc);
    for (int64_t i = 0; i < n; ++i) {
      correct += response.predictions(i).label() == data->labels[begin + i];
    }
    versions[response.version()] += n;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<std::string> answered;
  for (const auto& [version, n] : versions) {
    answered.push_back(absl::StrCat(version, " (", n, " examples)"));
  }
  std::printf("accuracy: %.4f (%lld of %lld test images)\n",
              static_cast<double>(correct) / count,
              static_cast<long long>(correct), static_cast<long long>(count));
  std::printf("versions: %s\n", absl::StrJoin(answered, ", ").c_str());
  std::printf("throughput: %.0f examples/s\n", count / std::max(seconds, 1e-9));
  return 0;
}

// Example `index` of `data` as an IngestService Example; with `bad` set,
// spoilt in the way `bad` - 1 picks (wrong shape, NaN, label out of range).
contrail::Example MakeExample(const contrail::LabelledImages& data, int64_t index,
                              int bad) {
  contrail::Example example;
  contrail::Tensor* inputs = example.mutable_inputs();
  const int64_t size = data.example_size();
  inputs->add_shape(1);
  inputs->add_shape(data.rows);
  inputs->add_shape(data.cols);
  inputs->mutable_values()->Add(data.pixels.begin() + index * size,
                                data.pixels.begin() + (index + 1) * size);
  example.set_label(data.labels[index]);
  example.set_id(absl::StrCat(absl::GetFlag(FLAGS_split), "-", index));
  example.set_event_time_us(absl::ToUnixMicros(absl::Now()));
  switch (bad) {
    case 1:
      inputs->clear_shape();
      inputs->add_shape(size);
      break;
    case 2:
      inputs->set_values(0, std::nanf(""));
      break;
    case 3:
      example.set_label(-1);
      break;
    default:
      break;
  }
  return example;
}

// The kind of spoilt example the `sent`-th (from 0) is: 0 for a good one,
// otherwise 1..`kinds` in turn, every --bad_every-th.
int BadKind(int64_t sent, int64_t bad_every, int kinds) {
  if (bad_every <= 0 || (sent + 1) % bad_every != 0) return 0;
  return static_cast<int>((sent + 1) / bad_every - 1) % kinds + 1;
}

// Calls `send` (false: stop) for examples [offset, offset + count) at
// `rate` per second (0: as fast as it takes them), with the kind of bad
// example each must be; reports progress every 2 s. How many were sent.
int64_t SendExamples(int64_t offset, int64_t count, double rate, int64_t bad_every,
                     int bad_kinds, const std::function<bool(int64_t, int)>& send) {
  const absl::Time start = absl::Now();
  absl::Time next_report = start + absl::Seconds(2);
  int64_t sent = 0;
  for (; sent < count; ++sent) {
    if (rate > 0) absl::SleepFor(start + absl::Seconds(sent / rate) - absl::Now());
    if (!send(offset + sent, BadKind(sent, bad_every, bad_kinds))) break;
    if (absl::Now() >= next_report) {
      next_report += absl::Seconds(2);
      std::printf("sent %lld of %lld examples (%.0f/s)\n", static_cast<long long>(sent + 1),
                  static_cast<long long>(count),
                  (sent + 1) / absl::ToDoubleSeconds(absl::Now() - start));
      std::fflush(stdout);
    }
  }
  return sent;
}

// contrailctl ingest --nats: the examples go to a JetStream stream, from
// which a trainer's nats:// source reads them (validating them then).
int IngestToNats(const contrail::LabelledImages& data, int64_t offset, int64_t count,
                 double rate, int64_t bad_every) {
  const std::string url = absl::GetFlag(FLAGS_nats);
  absl::StatusOr<std::unique_ptr<contrail::JetStreamPublisher>> publisher =
      contrail::JetStreamPublisher::Connect(url);
  if (!publisher.ok()) {
    std::fprintf(stderr, "contrailctl: %s\n", publisher.status().ToString().c_str());
    return 1;
  }
  // Kind 4, bytes that do not parse as an Example, exists only here: gRPC
  // itself refuses them.
  constexpr int kMalformed = 4;
  absl::Status failed;
  const absl::Time start = absl::Now();
  const int64_t sent = SendExamples(
      offset, count, rate, bad_every, kMalformed, [&](int64_t index, int bad) {
        failed = bad == kMalformed
                     ? (*publisher)->PublishBytesAsync("\x0f not an Example")
                     : (*publisher)->PublishAsync(MakeExample(data, index, bad));
        return failed.ok();
      });
  if (failed.ok()) failed = (*publisher)->Flush();
  if (!failed.ok()) {
    std::fprintf(stderr, "contrailctl: after %lld examples: %s\n",
                 static_cast<long long>(sent), failed.ToString().c_str());
    return 1;
  }
  std::printf("published: %lld examples to %s in %.1f s\n", static_cast<long long>(sent),
              (*publisher)->url().ToString().c_str(),
              absl::ToDoubleSeconds(absl::Now() - start));
  std::printf("(the trainer validates them as it reads them: contrailctl status "
              "--target=TRAINER shows what it accepted and rejected)\n");
  return 0;
}

int Ingest() {
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string split = absl::GetFlag(FLAGS_split);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t bad_every = absl::GetFlag(FLAGS_bad_every);
  if (split != "train" && split != "test") {
    std::fprintf(stderr, "contrailctl: --split must be train or test\n");
    return 2;
  }
  if (!(rate >= 0) || !std::isfinite(rate) || bad_every < 0) {
    std::fprintf(stderr, "contrailctl: --rate and --bad_every must be >= 0\n");
    return 2;
  }
  absl::StatusOr<contrail::LabelledImages> data =
      contrail::ReadFashionMnist(absl::GetFlag(FLAGS_data_dir), split == "train");
  if (!data.ok()) {
    std::fprintf(stderr, "contrailctl: %s\n", std::string(data.status().message()).c_str());
    return 2;
  }
  const int64_t offset = absl::GetFlag(FLAGS_offset);
  const int64_t count = std::min(absl::GetFlag(FLAGS_count), data->count - offset);
  if (offset < 0 || count < 1) {
    std::fprintf(stderr, "contrailctl: --offset %lld and --count leave no examples of %lld\n",
                 static_cast<long long>(offset), static_cast<long long>(data->count));
    return 2;
  }
  if (!absl::GetFlag(FLAGS_nats).empty()) {
    return IngestToNats(*data, offset, count, rate, bad_every);
  }
  auto stub = contrail::IngestService::NewStub(Connect(target));
  grpc::ClientContext context;  // no deadline: a stream lasts as long as it takes
  contrail::AttachBearerToken(Token(), &context);
  contrail::IngestSummary summary;
  std::unique_ptr<grpc::ClientWriter<contrail::Example>> writer =
      stub->Ingest(&context, &summary);
  const absl::Time start = absl::Now();
  // The call ends early when Write() fails.
  const int64_t sent = SendExamples(offset, count, rate, bad_every, /*bad_kinds=*/3,
                                    [&](int64_t index, int bad) {
                                      return writer->Write(MakeExample(*data, index, bad));
                                    });
  writer->WritesDone();
  const grpc::Status rpc = writer->Finish();
  if (!rpc.ok()) return RpcFailed(absl::StrCat("Ingest (after ", sent, " examples) to"), target, rpc);
  std::printf("sent: %lld examples in %.1f s\n", static_cast<long long>(sent),
              absl::ToDoubleSeconds(absl::Now() - start));
  std::printf("accepted: %llu\n", static_cast<unsigned long long>(summary.accepted()));
  std::printf("rejected: %llu\n", static_cast<unsigned long long>(summary.rejected()));
  for (const auto& [reason, n] : std::map<std::string, uint64_t>(
           summary.rejected_by_reason().begin(), summary.rejected_by_reason().end())) {
    std::printf("  %s: %llu\n", reason.c_str(), static_cast<unsigned long long>(n));
  }
  for (const std::string& first : summary.first_rejections()) {
    std::printf("  %s\n", first.c_str());
  }
  return 0;
}

int Compare() {
  const std::string trainer = absl::GetFlag(FLAGS_trainer);
  const std::string server = absl::GetFlag(FLAGS_server);
  const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_wait_s));
  contrail::StatusResponse t, s;
  while (true) {
    grpc::Status rpc = GetStatus(trainer, &t);
    if (!rpc.ok()) return RpcFailed("GetStatus on", trainer, rpc);
    rpc = GetStatus(server, &s);
    if (!rpc.ok()) return RpcFailed("GetStatus on", server, rpc);
    const bool finished = t.phase() == contrail::DONE || t.phase() == contrail::FAILED ||
                          t.phase() == contrail::STOPPED;
    if ((finished && s.version() == t.version()) || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::printf("%-10s %-10s %-10s %-18s\n", "", "phase", "version", "checksum");
  std::printf("%-10s %-10s %-10llu %016llx\n", "trainer", PhaseName(t.phase()).c_str(),
              static_cast<unsigned long long>(t.version()),
              static_cast<unsigned long long>(t.checksum()));
  std::printf("%-10s %-10s %-10llu %016llx\n", "server", PhaseName(s.phase()).c_str(),
              static_cast<unsigned long long>(s.version()),
              static_cast<unsigned long long>(s.checksum()));
  const bool identical = t.version() == s.version() && t.checksum() == s.checksum();
  std::printf("%s\n", identical ? "identical: the server holds the trainer's model bit for bit"
                                : "DIFFERENT: the server does not hold the trainer's latest model");
  return identical ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A client for contrail daemons.\n"
      "  contrailctl status  --target=host:port\n"
      "  contrailctl predict --target=host:port [--data_dir=DIR] [--count=N]\n"
      "  contrailctl compare --trainer=host:port --server=host:port [--wait_s=S]\n"
      "  contrailctl ingest  --target=host:port [--data_dir=DIR] [--split=train]\n"
      "                      [--offset=N] [--count=N] [--rate=R] [--bad_every=K]\n"
      "  contrailctl ingest  --nats=nats://HOST:PORT/STREAM/SUBJECT [the same flags]\n"
      "Against daemons with TLS or tokens add --tls_ca=CA.pem (and --tls_cert, --tls_key\n"
      "for a trainer, which requires a client certificate) and --token_file=FILE.");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() == 2 ? args[1] : "";
  if (command == "status") return Status();
  if (command == "predict") return Predict();
  if (command == "compare") return Compare();
  if (command == "ingest") return Ingest();
  std::fprintf(stderr,
               "contrailctl: expected one command, status, predict, compare or "
               "ingest; see --help\n");
  return 2;
}
