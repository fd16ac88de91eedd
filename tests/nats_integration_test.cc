// End to end with a NATS JetStream source: Debian's nats-server, the real
// trainer (--source=nats://...) and server binaries as child processes on
// 127.0.0.1, examples (good and bad) published by the test from a
// synthetic Fashion-MNIST-shaped data set, and the trainer killed with
// SIGKILL mid-stream and restarted.
//
// What must hold: every good example is trained at least once (the
// durable consumer's ack floor reaches the last message with nothing
// pending, and the runs' examples_trained add up to the good examples),
// every bad one is counted as rejected by reason, and the server ends
// bit-identical to the restarted trainer.
#include <grpcpp/grpcpp.h>
#include <nats/nats.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/idx_reader.h"
#include "common/jetstream_connection.h"
#include "common/jetstream_publisher.h"
#include "common/jetstream_url.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/child_process.h"
#include "tests/test_util/daemon_cluster.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/nats_server.h"
#include "tests/test_util/runfiles.h"

namespace contrail {
namespace {

using test::ChildProcess;
using test::ReadFileOrEmpty;
using test::TestTmpDir;

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
// From exec to the port file: loading LibTorch, connecting to NATS.
constexpr absl::Duration kStartDeadline = absl::Seconds(30);
// For a trainer to work through what was published, a server to catch up.
constexpr absl::Duration kRunDeadline = absl::Seconds(60);
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);

constexpr char kStream[] = "EXAMPLES";
constexpr char kSubject[] = "examples.fashion";
constexpr int64_t kInitialExamples = 200;
constexpr int64_t kTrigger = 8;
constexpr int64_t kGoodExamples = 600;
// Good examples published before the first trainer is killed: the initial
// ones, 5 steps of 8, and 5 more that wait for a step that never comes.
constexpr int64_t kFirstPart = kInitialExamples + 5 * kTrigger + 5;

// Ways to spoil an example, each counted under its reason.
enum class Bad { kWrongShape, kShortValues, kNaN, kInfinite, kLabelHigh, kLabelNegative, kBytes };
constexpr int kBadKinds = 7;

const char* ReasonOf(Bad bad) {
  switch (bad) {
    case Bad::kWrongShape:
    case Bad::kShortValues:
      return "wrong_shape";
    case Bad::kNaN:
    case Bad::kInfinite:
      return "non_finite";
    case Bad::kLabelHigh:
    case Bad::kLabelNegative:
      return "label_out_of_range";
    case Bad::kBytes:
      return "malformed";
  }
  return "";
}

using Counts = std::map<std::string, uint64_t>;

Counts ByReason(const StatusResponse& status) {
  return Counts(status.rejected_by_reason().begin(), status.rejected_by_reason().end());
}

uint64_t Total(const Counts& counts) {
  uint64_t total = 0;
  for (const auto& [reason, n] : counts) total += n;
  return total;
}

// Status stubs of one daemon.
struct Client {
  explicit Client(int port) {
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    stub = StatusService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), arguments));
  }

  absl::StatusOr<StatusResponse> GetStatus() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcDeadline));
    StatusResponse response;
    const grpc::Status rpc = stub->GetStatus(&context, StatusRequest(), &response);
    if (!rpc.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(rpc.error_code()),
                          rpc.error_message());
    }
    return response;
  }

  std::unique_ptr<StatusService::Stub> stub;
};

using Flags = test::DaemonFlags;
using Daemon = test::RunningDaemon;

// The server's view of the trainer's durable consumer.
struct ConsumerState {
  uint64_t ack_floor = 0;
  int64_t ack_pending = 0;
  uint64_t stream_pending = 0;
};

class NatsIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new std::string(TestTmpDir() + "/fashion-mnist");
    const absl::Status written =
        test::WriteSyntheticFashionMnist(*data_dir_, kGoodExamples, 10, /*seed=*/17);
    ASSERT_TRUE(written.ok()) << written;
    absl::StatusOr<LabelledImages> data = ReadFashionMnist(*data_dir_, /*train=*/true);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new LabelledImages(*std::move(data));
  }

  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
    delete data_dir_;
    data_dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(data_, nullptr);
    absl::StatusOr<std::unique_ptr<test::NatsServer>> nats = test::NatsServer::Start();
    ASSERT_TRUE(nats.ok()) << nats.status();
    nats_ = *std::move(nats);
    url_ = nats_->Url(kStream, kSubject);
    absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
        JetStreamPublisher::Connect(url_);
    ASSERT_TRUE(publisher.ok()) << publisher.status();
    publisher_ = *std::move(publisher);
    absl::StatusOr<JetStreamUrl> parsed = ParseJetStreamUrl(url_);
    ASSERT_TRUE(parsed.ok());
    absl::StatusOr<std::unique_ptr<JetStreamConnection>> inspector =
        JetStreamConnection::Connect(*parsed, "inspector");
    ASSERT_TRUE(inspector.ok()) << inspector.status();
    inspector_ = *std::move(inspector);
  }

  void TearDown() override {
    cluster_.StopAll();
    if (HasFailure()) {
      std::fprintf(stderr, "%s%s", cluster_.Logs().c_str(), nats_->Logs().c_str());
    }
    publisher_.reset();
    inspector_.reset();
  }

  // Good example `i` of the data set.
  static Example GoodExample(int64_t i) {
    Example example;
    Tensor* inputs = example.mutable_inputs();
    for (int64_t d : {int64_t{1}, data_->rows, data_->cols}) inputs->add_shape(d);
    const int64_t size = data_->example_size();
    inputs->mutable_values()->Add(data_->pixels.begin() + i * size,
                                  data_->pixels.begin() + (i + 1) * size);
    example.set_label(data_->labels[i]);
    example.set_id(absl::StrCat("train-", i));
    return example;
  }

  // Publishes a good example, remembering its stream sequence.
  void PublishGood(int64_t i) {
    absl::StatusOr<uint64_t> sequence = publisher_->Publish(GoodExample(i));
    ASSERT_TRUE(sequence.ok()) << sequence.status();
    last_sequence_ = *sequence;
    good_sequences_.push_back(*sequence);
  }

  // Publishes the next bad message (the kinds in turn), remembering its
  // sequence and reason.
  void PublishBad() {
    const Bad bad = static_cast<Bad>(bad_published_++ % kBadKinds);
    Example example = GoodExample(0);
    example.set_id(absl::StrCat("bad-", bad_published_));
    absl::StatusOr<uint64_t> sequence;
    switch (bad) {
      case Bad::kWrongShape:
        example.mutable_inputs()->clear_shape();
        example.mutable_inputs()->add_shape(data_->example_size());
        break;
      case Bad::kShortValues:
        example.mutable_inputs()->mutable_values()->RemoveLast();
        break;
      case Bad::kNaN:
        example.mutable_inputs()->set_values(7, std::nanf(""));
        break;
      case Bad::kInfinite:
        example.mutable_inputs()->set_values(0, INFINITY);
        break;
      case Bad::kLabelHigh:
        example.set_label(10);
        break;
      case Bad::kLabelNegative:
        example.set_label(-2);
        break;
      case Bad::kBytes:
        break;
    }
    sequence = bad == Bad::kBytes ? publisher_->PublishBytes("\x0f not an Example")
                                  : publisher_->Publish(example);
    ASSERT_TRUE(sequence.ok()) << sequence.status();
    last_sequence_ = *sequence;
    bad_sequences_.push_back({*sequence, ReasonOf(bad)});
  }

  // Good examples [begin, end), a bad message after every `bad_every`.
  void PublishRange(int64_t begin, int64_t end, int64_t bad_every) {
    for (int64_t i = begin; i < end; ++i) {
      PublishGood(i);
      if ((i + 1) % bad_every == 0) PublishBad();
    }
  }

  // Bad messages published with a sequence in [first, last], by reason.
  Counts BadBetween(uint64_t first, uint64_t last) const {
    Counts counts;
    for (const auto& [sequence, reason] : bad_sequences_) {
      if (sequence >= first && sequence <= last) ++counts[reason];
    }
    return counts;
  }

  int64_t GoodBetween(uint64_t first, uint64_t last) const {
    int64_t n = 0;
    for (uint64_t sequence : good_sequences_) n += sequence >= first && sequence <= last;
    return n;
  }

  absl::StatusOr<ConsumerState> Consumer() {
    jsConsumerInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetConsumerInfo(&info, inspector_->jetstream(), kStream,
                                                 "contrail-trainer", nullptr, &code);
    if (status != NATS_OK) return NatsStatusToStatus(status, code, "consumer info");
    const ConsumerState state{info->AckFloor.Stream, info->NumAckPending, info->NumPending};
    jsConsumerInfo_Destroy(info);
    return state;
  }

  Flags TrainerFlags() const {
    return {
        {"listen", "127.0.0.1:0"},
        {"source", url_},
        {"model", "lenet5"},
        {"initial_examples", absl::StrCat(kInitialExamples)},
        {"initial_epochs", "1"},
        {"trigger_size", absl::StrCat(kTrigger)},
        {"batch_size", "32"},
        {"sparsity", "topk"},
        {"ratio", "0.01"},
        {"lr", "0.003"},
        {"threads", "1"},
    };
  }

  // Starts `binary` (a runfile path) with `flags`, not waiting for anything.
  ChildProcess* StartProcess(const std::string& name, const std::string& binary,
                             const Flags& flags,
                             const std::vector<std::string>& positional = {}) {
    return cluster_.StartProcess(name, binary, flags, positional);
  }

  // Starts a daemon with --port_file and waits until it listens.
  absl::StatusOr<Daemon> StartDaemon(const std::string& name, const std::string& binary,
                                     const Flags& flags) {
    return cluster_.Start(name, binary, flags, kStartDeadline);
  }

  // Polls `client` until `done` holds; the last status, or an error.
  template <typename Predicate>
  static absl::StatusOr<StatusResponse> WaitForStatus(Client& client, const std::string& what,
                                                      Predicate done) {
    const absl::Time deadline = absl::Now() + kRunDeadline;
    while (true) {
      absl::StatusOr<StatusResponse> status = client.GetStatus();
      if (status.ok() && done(*status)) return status;
      if (status.ok() && status->phase() == FAILED) {
        return absl::InternalError(absl::StrCat("failed while waiting for ", what, ": ",
                                                status->error_message()));
      }
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no ", what, " in ", absl::FormatDuration(kRunDeadline), "; last status: ",
            status.ok() ? status->ShortDebugString() : status.status().ToString()));
      }
      absl::SleepFor(kPollInterval);
    }
  }

  static std::string* data_dir_;
  static LabelledImages* data_;

  std::unique_ptr<test::NatsServer> nats_;
  std::string url_;
  std::unique_ptr<JetStreamPublisher> publisher_;
  std::unique_ptr<JetStreamConnection> inspector_;
  test::DaemonCluster cluster_{TestTmpDir()};

  std::vector<uint64_t> good_sequences_;
  std::vector<std::pair<uint64_t, std::string>> bad_sequences_;
  int bad_published_ = 0;
  uint64_t last_sequence_ = 0;
};

std::string* NatsIntegrationTest::data_dir_ = nullptr;
LabelledImages* NatsIntegrationTest::data_ = nullptr;

TEST_F(NatsIntegrationTest, KilledTrainerResumesAndEveryExampleIsTrainedOrRejected) {
  // The first part of the stream, a bad message after every 6th good one
  // and one among the 5 that will wait for their step.
  PublishRange(0, kFirstPart - 3, /*bad_every=*/6);
  PublishBad();
  PublishRange(kFirstPart - 3, kFirstPart, /*bad_every=*/6);
  const uint64_t first_part_end = last_sequence_;

  // The first trainer never trains on fewer than t examples.
  Flags flags = TrainerFlags();
  flags["max_wait_ms"] = "0";
  absl::StatusOr<Daemon> trainer = StartDaemon("trainer", "trainer/trainer", flags);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<Daemon> server = StartDaemon(
      "server", "server/server",
      {{"listen", "127.0.0.1:0"}, {"trainer", trainer->address()}, {"threads", "1"}});
  ASSERT_TRUE(server.ok()) << server.status();
  Client server_client(server->port);

  // It reads the whole first part and trains all but the last 5.
  const Counts first_part_bad = BadBetween(1, first_part_end);
  absl::StatusOr<StatusResponse> first;
  {
    Client trainer_client(trainer->port);
    first = WaitForStatus(trainer_client, "the first part read", [&](const StatusResponse& s) {
      return s.examples_accepted() == static_cast<uint64_t>(kFirstPart) &&
             s.examples_trained() == static_cast<uint64_t>(kFirstPart - 5) &&
             ByReason(s) == first_part_bad;
    });
    ASSERT_TRUE(first.ok()) << first.status();
  }
  EXPECT_EQ(first->source(), url_);
  EXPECT_EQ(first->phase(), STREAMING);
  EXPECT_EQ(first->examples_queued(), 5u);
  EXPECT_EQ(first->examples_rejected(), Total(first_part_bad));
  ASSERT_TRUE(WaitForStatus(server_client, "a model on the server",
                            [](const StatusResponse& s) { return s.version() > 0; })
                  .ok());

  // Killed mid-stream: the 5 untrained examples were never acked, and
  // neither was the bad message among them.
  trainer->process->Kill();
  const uint64_t resume_at = good_sequences_[kFirstPart - 5];
  absl::StatusOr<ConsumerState> consumer = Consumer();
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  EXPECT_EQ(consumer->ack_floor, resume_at - 1);

  // The stream goes on while no trainer reads it.
  PublishRange(kFirstPart, kGoodExamples, /*bad_every=*/6);
  PublishBad();
  const uint64_t end = last_sequence_;

  flags = TrainerFlags();
  flags["listen"] = trainer->address();
  flags["max_wait_ms"] = "100";
  absl::StatusOr<Daemon> restarted = StartDaemon("trainer", "trainer/trainer", flags);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_THAT(restarted->process->Stdout() + restarted->process->Stderr(),
              ::testing::HasSubstr(absl::StrCat("from stream sequence ", resume_at)));
  Client restarted_client(restarted->port);
  const int64_t second_good = GoodBetween(resume_at, end);
  const Counts second_bad = BadBetween(resume_at, end);
  absl::StatusOr<StatusResponse> second = WaitForStatus(
      restarted_client, "every example trained", [&](const StatusResponse& s) {
        return s.examples_trained() == static_cast<uint64_t>(second_good) &&
               s.checksum() == s.trainer_checksum();
      });
  ASSERT_TRUE(second.ok()) << second.status();

  // Every good example was trained, the 5 the first trainer left twice
  // read (once trained); every bad one counted, the one among those 5 by
  // both trainers.
  EXPECT_EQ(second->examples_accepted(), static_cast<uint64_t>(second_good));
  EXPECT_EQ(second->examples_queued(), 0u);
  EXPECT_EQ(ByReason(*second), second_bad);
  EXPECT_EQ(first->examples_trained() + second->examples_trained(),
            static_cast<uint64_t>(kGoodExamples));
  const Counts all_bad = BadBetween(1, end);
  Counts counted = ByReason(*first);
  for (const auto& [reason, n] : ByReason(*second)) counted[reason] += n;
  for (const auto& [reason, n] : all_bad) {
    EXPECT_GE(counted[reason], n) << reason;
  }
  EXPECT_EQ(Total(counted), Total(all_bad) + Total(BadBetween(resume_at, first_part_end)));
  EXPECT_EQ(Total(BadBetween(resume_at, first_part_end)), 1u);
  EXPECT_EQ(all_bad.size(), 4u) << "every reason appears";

  // The consumer acked everything: the ack floor is the stream's end.
  absl::StatusOr<ConsumerState> done;
  const absl::Time deadline = absl::Now() + kRunDeadline;
  do {
    done = Consumer();
    ASSERT_TRUE(done.ok()) << done.status();
    if (done->ack_floor == end && done->ack_pending == 0) break;
    absl::SleepFor(kPollInterval);
  } while (absl::Now() < deadline);
  EXPECT_EQ(done->ack_floor, end);
  EXPECT_EQ(done->ack_pending, 0);
  EXPECT_EQ(done->stream_pending, 0u);

  // The server followed the restarted trainer to the identical model.
  absl::StatusOr<StatusResponse> served = WaitForStatus(
      server_client, "the server holding the restarted trainer's model",
      [&](const StatusResponse& s) {
        return s.version() == second->version() && s.checksum() == second->checksum();
      });
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->checksum(), second->trainer_checksum());
  EXPECT_EQ(served->spec().fingerprint(), second->spec().fingerprint());
  RecordProperty("first_run_trained", static_cast<int>(first->examples_trained()));
  RecordProperty("second_run_trained", static_cast<int>(second->examples_trained()));
}

TEST_F(NatsIntegrationTest, TrainerKilledWhileTrainingALiveStreamLosesNothing) {
  // A producer publishes at about 400 examples a second while the trainer
  // keeps up with it; the trainer is killed in the middle of that.
  std::thread producer([this] {
    const absl::Time start = absl::Now();
    for (int64_t i = 0; i < kGoodExamples; ++i) {
      absl::SleepFor(start + absl::Milliseconds(i * 5 / 2) - absl::Now());
      PublishRange(i, i + 1, /*bad_every=*/6);
    }
  });
  Flags flags = TrainerFlags();
  flags["max_wait_ms"] = "50";
  absl::StatusOr<Daemon> trainer = StartDaemon("trainer", "trainer/trainer", flags);
  if (!trainer.ok()) producer.join();
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<StatusResponse> first;
  {
    Client trainer_client(trainer->port);
    first = WaitForStatus(trainer_client, "half the stream trained", [](const StatusResponse& s) {
      return s.examples_trained() >= static_cast<uint64_t>(kGoodExamples / 2);
    });
  }
  trainer->process->Kill();
  absl::StatusOr<ConsumerState> killed = Consumer();
  if (!first.ok() || !killed.ok()) producer.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(killed.ok()) << killed.status();

  absl::StatusOr<Daemon> restarted = StartDaemon("trainer", "trainer/trainer", flags);
  producer.join();
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  ASSERT_LT(killed->ack_floor, last_sequence_) << "killed after the stream ended";
  const uint64_t resume_at = killed->ack_floor + 1;
  EXPECT_THAT(restarted->process->Stdout() + restarted->process->Stderr(),
              ::testing::HasSubstr(absl::StrCat("from stream sequence ", resume_at)));

  // The killed trainer acked what it had trained or rejected (the unit
  // tests hold NatsSource to that), so it trained the good examples up to
  // its ack floor; the restarted one trains and rejects the rest, each
  // exactly once.
  ASSERT_GE(killed->ack_floor, good_sequences_[kInitialExamples - 1])
      << "killed before it streamed";
  const int64_t second_good = GoodBetween(resume_at, last_sequence_);
  Client restarted_client(restarted->port);
  absl::StatusOr<StatusResponse> second = WaitForStatus(
      restarted_client, "the rest of the stream trained", [&](const StatusResponse& s) {
        return s.examples_trained() == static_cast<uint64_t>(second_good);
      });
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->examples_accepted(), static_cast<uint64_t>(second_good));
  EXPECT_EQ(ByReason(*second), BadBetween(resume_at, last_sequence_));
  absl::StatusOr<ConsumerState> done;
  const absl::Time deadline = absl::Now() + kRunDeadline;
  do {
    done = Consumer();
    ASSERT_TRUE(done.ok()) << done.status();
    if (done->ack_floor == last_sequence_ && done->ack_pending == 0) break;
    absl::SleepFor(kPollInterval);
  } while (absl::Now() < deadline);
  EXPECT_EQ(done->ack_floor, last_sequence_);
  EXPECT_EQ(done->ack_pending, 0);
  RecordProperty("killed_at_ack_floor", static_cast<int>(killed->ack_floor));
  RecordProperty("last_sequence", static_cast<int>(last_sequence_));
}

TEST_F(NatsIntegrationTest, ContrailctlIngestPublishesTheDataSetToTheStream) {
  ChildProcess* ingest = StartProcess(
      "contrailctl", "server/contrailctl",
      {{"nats", url_}, {"data_dir", *data_dir_}, {"offset", "100"}, {"count", "40"},
       {"bad_every", "10"}},
      {"ingest"});
  ASSERT_NE(ingest, nullptr);
  const std::optional<int> code = ingest->WaitForExitCode(kRunDeadline);
  ASSERT_TRUE(code.has_value()) << "contrailctl ingest did not finish";
  ASSERT_EQ(*code, 0) << ingest->Stdout() << ingest->Stderr();
  EXPECT_THAT(ingest->Stdout(),
              ::testing::HasSubstr(absl::StrCat("published: 40 examples to ", url_)));

  // Stored in order: example 100 first; every 10th spoilt, the fourth
  // kind of spoilt being bytes that are no Example at all.
  std::vector<std::pair<bool, Example>> stored;  // parsed?, what
  for (uint64_t sequence = 1; sequence <= 41; ++sequence) {
    natsMsg* message = nullptr;
    if (js_GetMsg(&message, inspector_->jetstream(), kStream, sequence, nullptr, nullptr) !=
        NATS_OK) {
      break;
    }
    Example example;
    const bool parsed =
        example.ParseFromArray(natsMsg_GetData(message), natsMsg_GetDataLength(message));
    natsMsg_Destroy(message);
    stored.emplace_back(parsed, example);
  }
  ASSERT_EQ(stored.size(), 40u);
  ASSERT_TRUE(stored[0].first);
  Example first = stored[0].second;
  EXPECT_GT(first.event_time_us(), 0);
  first.clear_event_time_us();
  EXPECT_EQ(first.SerializeAsString(), GoodExample(100).SerializeAsString())
      << first.ShortDebugString().substr(0, 200);
  EXPECT_EQ(stored[9].second.inputs().shape_size(), 1) << "the 10th: wrong shape";
  EXPECT_TRUE(std::isnan(stored[19].second.inputs().values(0))) << "the 20th: NaN";
  EXPECT_EQ(stored[29].second.label(), -1) << "the 30th: label out of range";
  EXPECT_FALSE(stored[39].first) << "the 40th: not an Example";
  EXPECT_TRUE(stored[38].first);
}

TEST_F(NatsIntegrationTest, TrainerWithABadNatsSourceExitsWithOneClearLine) {
  const std::string unreachable = url_;
  nats_->Kill();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {unreachable,
       absl::StrCat("cannot reach the NATS server at nats://127.0.0.1:", nats_->port())},
      {"nats://127.0.0.1:4222/EXAMPLES", "nats://HOST[:PORT]/STREAM/SUBJECT"},
  };
  for (const auto& [source, why] : cases) {
    SCOPED_TRACE(source);
    Flags flags = TrainerFlags();
    flags["source"] = source;
    ChildProcess* trainer = StartProcess("trainer-bad-source", "trainer/trainer", flags);
    ASSERT_NE(trainer, nullptr);
    const std::optional<int> code = trainer->WaitForExitCode(kStartDeadline);
    ASSERT_TRUE(code.has_value()) << "still running, or killed by a signal";
    EXPECT_NE(*code, 0);
    const std::string stderr_text = trainer->Stderr();
    EXPECT_EQ(std::count(stderr_text.begin(), stderr_text.end(), '\n'), 1) << stderr_text;
    EXPECT_THAT(stderr_text, ::testing::HasSubstr(why));
  }
}

}  // namespace
}  // namespace contrail
