// NatsSource against a real nats-server (tests/test_util/nats_server.h):
// validation, the ack policy (checked on the server's own view of the
// consumer), restarts, and the errors a user meets first.
#include "trainer/nats_source.h"

#include <nats/nats.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/jetstream_connection.h"
#include "common/jetstream_publisher.h"
#include "common/jetstream_url.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/nats_server.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr char kStream[] = "EXAMPLES";
constexpr char kSubject[] = "examples.new";
const std::vector<int64_t> kShape = {1, 2, 2};
constexpr int64_t kClasses = 3;
constexpr absl::Duration kWait = absl::Seconds(10);

// A good example: label `label` (mod kClasses), inputs that encode `i`.
Example GoodExample(int64_t i) {
  Example example;
  for (int64_t d : kShape) example.mutable_inputs()->add_shape(d);
  for (int v = 0; v < 4; ++v) example.mutable_inputs()->add_values(static_cast<float>(i) + v);
  example.set_label(i % kClasses);
  example.set_id(absl::StrCat("e", i));
  return example;
}

// The server's view of a durable consumer.
struct ConsumerState {
  uint64_t ack_floor = 0;        // stream sequence
  int64_t ack_pending = 0;       // delivered, not acked
  uint64_t delivered = 0;        // stream sequence
  uint64_t stream_pending = 0;   // not yet delivered
};

std::ostream& operator<<(std::ostream& os, const ConsumerState& s) {
  return os << "{ack_floor " << s.ack_floor << ", ack_pending " << s.ack_pending
            << ", delivered " << s.delivered << ", stream_pending " << s.stream_pending << "}";
}

class NatsSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<test::NatsServer>> server = test::NatsServer::Start();
    ASSERT_OK(server);
    server_ = *std::move(server);
    url_ = server_->Url(kStream, kSubject);
    absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
        JetStreamPublisher::Connect(url_);
    ASSERT_OK(publisher);
    publisher_ = *std::move(publisher);
  }

  void TearDown() override {
    publisher_.reset();
    inspector_.reset();
    if (HasFailure() && server_ != nullptr) std::fprintf(stderr, "%s", server_->Logs().c_str());
  }

  NatsSource::Options SourceOptions() const {
    NatsSource::Options options;
    options.url = url_;
    options.durable = "trainer";
    options.input_shape = kShape;
    options.num_classes = kClasses;
    return options;
  }

  std::unique_ptr<NatsSource> CreateSource(const NatsSource::Options& options) {
    absl::StatusOr<std::unique_ptr<NatsSource>> source = NatsSource::Create(options);
    EXPECT_OK(source);
    return source.ok() ? *std::move(source) : nullptr;
  }

  void PublishGood(int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) ASSERT_OK(publisher_->Publish(GoodExample(i)));
  }

  // The consumer `durable` as the server sees it.
  absl::StatusOr<ConsumerState> Consumer(const std::string& durable = "trainer") {
    if (inspector_ == nullptr) {
      absl::StatusOr<JetStreamUrl> url = ParseJetStreamUrl(url_);
      if (!url.ok()) return url.status();
      absl::StatusOr<std::unique_ptr<JetStreamConnection>> connection =
          JetStreamConnection::Connect(*url, "inspector");
      if (!connection.ok()) return connection.status();
      inspector_ = *std::move(connection);
    }
    jsConsumerInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetConsumerInfo(&info, inspector_->jetstream(), kStream,
                                                 durable.c_str(), nullptr, &code);
    if (status != NATS_OK) return NatsStatusToStatus(status, code, "consumer info");
    const ConsumerState state{info->AckFloor.Stream, info->NumAckPending,
                              info->Delivered.Stream, info->NumPending};
    jsConsumerInfo_Destroy(info);
    return state;
  }

  // Waits until the consumer's ack floor is `floor` with `pending` acks
  // outstanding (acks travel asynchronously); the last state seen.
  ConsumerState WaitForAcks(uint64_t floor, int64_t pending) {
    ConsumerState last;
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      absl::StatusOr<ConsumerState> state = Consumer();
      if (state.ok()) {
        last = *state;
        if (last.ack_floor == floor && last.ack_pending == pending) break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return last;
  }

  std::unique_ptr<test::NatsServer> server_;
  std::string url_;
  std::unique_ptr<JetStreamPublisher> publisher_;
  std::unique_ptr<JetStreamConnection> inspector_;  // for Consumer()
};

TEST_F(NatsSourceTest, HandsOutGoodExamplesInStreamOrder) {
  PublishGood(0, 5);
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->name(), url_);
  EXPECT_EQ(source->input_shape(), kShape);
  EXPECT_EQ(source->num_classes(), kClasses);
  EXPECT_EQ(source->start_sequence(), 1u);

  Examples out;
  absl::StatusOr<ExampleSource::ReadResult> read = source->Read(5, absl::Now() + kWait, &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 5);
  EXPECT_FALSE(read->end_of_stream);
  EXPECT_THAT(out.labels, ElementsAre(0, 1, 2, 0, 1));
  ASSERT_EQ(out.inputs.size(), 20u);
  EXPECT_EQ(out.inputs[0], 0.0f);
  EXPECT_EQ(out.inputs[19], 4.0f + 3.0f);
  const SourceCounters counters = source->counters();
  EXPECT_EQ(counters.accepted, 5);
  EXPECT_EQ(counters.rejected, 0);
  EXPECT_EQ(counters.queued, 0);
}

TEST_F(NatsSourceTest, CountsEachBadMessageByReasonAndNeverHandsItOut) {
  Example wrong_shape = GoodExample(1);
  wrong_shape.mutable_inputs()->clear_shape();
  wrong_shape.mutable_inputs()->add_shape(4);
  Example short_values = GoodExample(2);
  short_values.mutable_inputs()->mutable_values()->RemoveLast();
  Example nan = GoodExample(3);
  nan.mutable_inputs()->set_values(2, std::nanf(""));
  Example infinite = GoodExample(4);
  infinite.mutable_inputs()->set_values(0, -INFINITY);
  Example label_high = GoodExample(5);
  label_high.set_label(kClasses);
  Example label_negative = GoodExample(6);
  label_negative.set_label(-1);

  ASSERT_OK(publisher_->Publish(GoodExample(0)));
  for (const Example* bad :
       {&wrong_shape, &short_values, &nan, &infinite, &label_high, &label_negative}) {
    ASSERT_OK(publisher_->Publish(*bad));
  }
  // Field 1 with wire type 7: no protobuf parser accepts it.
  ASSERT_OK(publisher_->PublishBytes("\x0f not a protobuf"));
  ASSERT_OK(publisher_->Publish(GoodExample(7)));

  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  Examples out;
  absl::StatusOr<ExampleSource::ReadResult> read = source->Read(2, absl::Now() + kWait, &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 2);
  EXPECT_THAT(out.labels, ElementsAre(0, 7 % kClasses));
  EXPECT_EQ(out.inputs[4], 7.0f);
  const SourceCounters counters = source->counters();
  EXPECT_EQ(counters.accepted, 2);
  EXPECT_EQ(counters.rejected, 7);
  EXPECT_THAT(counters.rejected_by_reason,
              ElementsAre(Pair("label_out_of_range", 2), Pair("malformed", 1),
                          Pair("non_finite", 2), Pair("wrong_shape", 2)));
  // Nothing more is handed out.
  out.clear();
  read = source->Read(1, absl::Now() + absl::Milliseconds(50), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 0);
}

TEST_F(NatsSourceTest, AcksOnlyWhatCommitSaysWasTrainedAndInStreamOrder) {
  // Sequences 1 2 3 4 5: good, good, bad, good, good.
  PublishGood(0, 2);
  Example bad = GoodExample(9);
  bad.set_label(-3);
  ASSERT_OK(publisher_->Publish(bad));
  PublishGood(2, 4);
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(4, absl::Now() + kWait, &out));
  ASSERT_EQ(out.count(), 4);

  // Read is not trained: nothing acked, everything delivered.
  ConsumerState state = WaitForAcks(0, 5);
  EXPECT_EQ(state.ack_floor, 0u);
  EXPECT_EQ(state.ack_pending, 5);
  EXPECT_EQ(state.delivered, 5u);

  ASSERT_OK(source->Commit(1));
  state = WaitForAcks(1, 4);
  EXPECT_EQ(state.ack_floor, 1u);
  EXPECT_EQ(state.ack_pending, 4);
  // The rejected message goes with the example before it.
  ASSERT_OK(source->Commit(2));
  state = WaitForAcks(3, 2);
  EXPECT_EQ(state.ack_floor, 3u);
  EXPECT_EQ(source->acked_sequence(), 3u);
  ASSERT_OK(source->Commit(2));  // the same count again changes nothing
  ASSERT_OK(source->Commit(4));
  state = WaitForAcks(5, 0);
  EXPECT_EQ(state.ack_floor, 5u);
  EXPECT_EQ(state.ack_pending, 0);
  EXPECT_EQ(state.stream_pending, 0u);
}

TEST_F(NatsSourceTest, RejectedMessagesWithNothingBeforeThemAreAckedAtOnce) {
  Example bad = GoodExample(0);
  bad.set_label(99);
  ASSERT_OK(publisher_->Publish(bad));
  ASSERT_OK(publisher_->PublishBytes("\x0f"));
  PublishGood(1, 2);
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(1, absl::Now() + kWait, &out));
  ASSERT_EQ(out.count(), 1);
  const ConsumerState state = WaitForAcks(2, 1);
  EXPECT_EQ(state.ack_floor, 2u);
  EXPECT_EQ(state.ack_pending, 1);
}

TEST_F(NatsSourceTest, CommitsBeyondWhatWasReadOrGoingBackAreInvalidArguments) {
  PublishGood(0, 3);
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(source->Commit(1), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("commit of 1 examples, but only 0 were read")));
  Examples out;
  ASSERT_OK(source->Read(3, absl::Now() + kWait, &out));
  ASSERT_OK(source->Commit(2));
  EXPECT_THAT(source->Commit(1), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("after one of 2")));
  EXPECT_THAT(source->Commit(4), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("only 3 were read")));
}

TEST_F(NatsSourceTest, ARestartedSourceResumesAtTheFirstUncommittedExample) {
  PublishGood(0, 10);
  {
    std::unique_ptr<NatsSource> first = CreateSource(SourceOptions());
    ASSERT_NE(first, nullptr);
    Examples out;
    ASSERT_OK(first->Read(6, absl::Now() + kWait, &out));
    ASSERT_EQ(out.count(), 6);
    ASSERT_OK(first->Commit(4));
  }  // destroyed with examples 4 and 5 read but not trained

  std::vector<float> firsts;  // the first input of each example: its number
  {
    std::unique_ptr<NatsSource> second = CreateSource(SourceOptions());
    ASSERT_NE(second, nullptr);
    EXPECT_EQ(second->start_sequence(), 5u);
    Examples out;
    ASSERT_OK(second->Read(6, absl::Now() + kWait, &out));
    ASSERT_EQ(out.count(), 6);
    for (int64_t i = 0; i < out.count(); ++i) firsts.push_back(out.inputs[i * 4]);
    EXPECT_THAT(firsts, ElementsAre(4, 5, 6, 7, 8, 9));
  }  // destroyed having committed nothing

  // A restart that acked nothing still starts where the one before it did.
  std::unique_ptr<NatsSource> third = CreateSource(SourceOptions());
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->start_sequence(), 5u);
  Examples out;
  ASSERT_OK(third->Read(6, absl::Now() + kWait, &out));
  ASSERT_EQ(out.count(), 6);
  EXPECT_EQ(out.inputs[0], 4.0f);
  ASSERT_OK(third->Commit(6));
  EXPECT_EQ(WaitForAcks(10, 0).ack_floor, 10u);
  third.reset();

  // Everything was trained: the next one waits for new examples.
  std::unique_ptr<NatsSource> fourth = CreateSource(SourceOptions());
  ASSERT_NE(fourth, nullptr);
  EXPECT_EQ(fourth->start_sequence(), 11u);
  out.clear();
  absl::StatusOr<ExampleSource::ReadResult> read =
      fourth->Read(1, absl::Now() + absl::Milliseconds(50), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 0);
  PublishGood(10, 11);
  const absl::Time start = absl::Now();
  ASSERT_OK(fourth->Read(1, start + kWait, &out));
  ASSERT_EQ(out.count(), 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "the read waited past its example";
  EXPECT_EQ(out.inputs[0], 10.0f);

  // Another durable name is another trainer: it reads the whole stream.
  NatsSource::Options other = SourceOptions();
  other.durable = "another-trainer";
  std::unique_ptr<NatsSource> another = CreateSource(other);
  ASSERT_NE(another, nullptr);
  EXPECT_EQ(another->start_sequence(), 1u);
  out.clear();
  ASSERT_OK(another->Read(11, absl::Now() + kWait, &out));
  EXPECT_EQ(out.count(), 11);
}

TEST_F(NatsSourceTest, ReadReturnsAsSoonAsEnoughArriveAndWaitsNoLongerThanTheDeadline) {
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  Examples out;
  absl::Time start = absl::Now();
  absl::StatusOr<ExampleSource::ReadResult> read =
      source->Read(1, start + absl::Milliseconds(200), &out);
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  // An example published while a read waits ends the wait.
  std::thread producer([this] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_OK(publisher_->Publish(GoodExample(1)));
  });
  start = absl::Now();
  read = source->Read(1, start + absl::Seconds(20), &out);
  producer.join();
  ASSERT_OK(read);
  EXPECT_EQ(read->count, 1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // A read that may not wait takes what has arrived, and returns at once
  // (under load, what the server sends a moment late comes with the next).
  PublishGood(2, 5);
  int64_t taken = 0;
  for (int attempt = 0; attempt < 20 && taken < 3; ++attempt) {
    start = absl::Now();
    read = source->Read(10, absl::InfinitePast(), &out);
    ASSERT_OK(read);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
    taken += read->count;
  }
  EXPECT_EQ(taken, 3);
}

TEST_F(NatsSourceTest, FetchesInBatchesAndCountsWhatWaitsAsQueued) {
  PublishGood(0, 10);
  NatsSource::Options options = SourceOptions();
  options.fetch_batch = 4;
  std::unique_ptr<NatsSource> source = CreateSource(options);
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(3, absl::Now() + kWait, &out));
  EXPECT_EQ(out.count(), 3);
  SourceCounters counters = source->counters();
  EXPECT_EQ(counters.accepted, 4);
  EXPECT_EQ(counters.queued, 1);
  ASSERT_OK(source->Read(7, absl::Now() + kWait, &out));
  EXPECT_EQ(out.count(), 10);
  counters = source->counters();
  EXPECT_EQ(counters.accepted, 10);
  EXPECT_EQ(counters.queued, 0);
}

TEST_F(NatsSourceTest, KeepsReadingAcrossAServerRestart) {
  PublishGood(0, 3);
  std::unique_ptr<NatsSource> source = CreateSource(SourceOptions());
  ASSERT_NE(source, nullptr);
  Examples out;
  ASSERT_OK(source->Read(3, absl::Now() + kWait, &out));
  ASSERT_OK(source->Commit(3));
  EXPECT_EQ(WaitForAcks(3, 0).ack_floor, 3u);

  publisher_.reset();
  ASSERT_OK(server_->Restart());
  // While the client reconnects, reads find nothing rather than failing.
  absl::StatusOr<ExampleSource::ReadResult> read =
      source->Read(1, absl::Now() + absl::Milliseconds(100), &out);
  ASSERT_OK(read);
  absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
      JetStreamPublisher::Connect(url_);
  ASSERT_OK(publisher);
  for (int64_t i = 3; i < 5; ++i) ASSERT_OK((*publisher)->Publish(GoodExample(i)));
  out.clear();
  int64_t got = 0;
  const absl::Time deadline = absl::Now() + kWait;
  while (got < 2 && absl::Now() < deadline) {
    read = source->Read(2 - got, absl::Now() + absl::Milliseconds(100), &out);
    ASSERT_OK(read);
    got += read->count;
  }
  ASSERT_EQ(got, 2);
  EXPECT_EQ(out.inputs[0], 3.0f);
  ASSERT_OK(source->Commit(5));
  const ConsumerState state = WaitForAcks(5, 0);
  EXPECT_EQ(state.ack_floor, 5u) << state;
}

TEST_F(NatsSourceTest, AMissingStreamIsCreated) {
  NatsSource::Options options = SourceOptions();
  options.url = server_->Url("FRESH", "fresh.examples");
  std::unique_ptr<NatsSource> source = CreateSource(options);
  ASSERT_NE(source, nullptr);
  absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
      JetStreamPublisher::Connect(options.url);
  ASSERT_OK(publisher);
  ASSERT_OK((*publisher)->Publish(GoodExample(2)));
  Examples out;
  ASSERT_OK(source->Read(1, absl::Now() + kWait, &out));
  EXPECT_THAT(out.labels, ElementsAre(2));
}

TEST_F(NatsSourceTest, BadOptionsAreInvalidArgumentsSayingWhichAndWhy) {
  NatsSource::Options options = SourceOptions();
  options.url = "nats://127.0.0.1:4222/EXAMPLES";
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("JetStream URL \"nats://127.0.0.1:4222/EXAMPLES\"")));
  options = SourceOptions();
  options.url = "http://127.0.0.1:4222/EXAMPLES/x";
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nats://")));
  options = SourceOptions();
  options.durable = "a.b";
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("durable consumer name \"a.b\" contains '.'")));
  options = SourceOptions();
  options.input_shape = {};
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("input shape")));
  options = SourceOptions();
  options.num_classes = 0;
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_classes")));
  options = SourceOptions();
  options.fetch_batch = 0;
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("fetch_batch")));
}

TEST_F(NatsSourceTest, AStreamThatDoesNotCaptureTheSubjectIsAFailedPrecondition) {
  NatsSource::Options options = SourceOptions();
  options.url = server_->Url(kStream, "not.examples");
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not not.examples")));
  // A wildcard filter outside the stream's subjects: the server says no.
  options.url = server_->Url(kStream, "other.*");
  EXPECT_THAT(NatsSource::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("filter subject is not a valid subset")));
}

TEST_F(NatsSourceTest, AnUnreachableServerIsUnavailable) {
  server_->Kill();
  EXPECT_THAT(NatsSource::Create(SourceOptions()),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("cannot reach the NATS server at nats://127.0.0.1:",
                                              server_->port()))));
}

// Examples of LeNet-5's input size (1x28x28) through JetStream, published
// asynchronously, then read and committed as the trainer does: the rates
// land in the test's XML output.
TEST_F(NatsSourceTest, MeasuresPublishAndReadRatesAtLeNetInputSize) {
  constexpr int64_t kCount = 5000;
  constexpr int64_t kPixels = 28 * 28;
  Example example;
  for (int64_t d : {1, 28, 28}) example.mutable_inputs()->add_shape(d);
  for (int64_t i = 0; i < kPixels; ++i) {
    example.mutable_inputs()->add_values(static_cast<float>(i % 255) / 255.0f);
  }
  absl::Time start = absl::Now();
  for (int64_t i = 0; i < kCount; ++i) {
    example.set_label(i % 10);
    ASSERT_OK(publisher_->PublishAsync(example));
  }
  ASSERT_OK(publisher_->Flush());
  const double publish_seconds = absl::ToDoubleSeconds(absl::Now() - start);

  NatsSource::Options options = SourceOptions();
  options.input_shape = {1, 28, 28};
  options.num_classes = 10;
  std::unique_ptr<NatsSource> source = CreateSource(options);
  ASSERT_NE(source, nullptr);
  start = absl::Now();
  Examples out;
  int64_t read = 0;
  while (read < kCount) {
    out.clear();
    // The trainer's pattern: t = 8 at a time, each committed after its step.
    absl::StatusOr<ExampleSource::ReadResult> batch = source->Read(8, absl::Now() + kWait, &out);
    ASSERT_OK(batch);
    ASSERT_GT(batch->count, 0);
    read += batch->count;
    ASSERT_OK(source->Commit(read));
  }
  const double read_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_EQ(WaitForAcks(kCount, 0).ack_floor, static_cast<uint64_t>(kCount));
  const double publish_rate = kCount / publish_seconds;
  const double read_rate = kCount / read_seconds;
  RecordProperty("publish_examples_per_second", absl::StrCat(static_cast<int64_t>(publish_rate)));
  RecordProperty("read_examples_per_second", absl::StrCat(static_cast<int64_t>(read_rate)));
  std::printf("JetStream at 1x28x28: published %.0f examples/s (async), read and committed "
              "%.0f examples/s (t=8)\n",
              publish_rate, read_rate);
  // Far above what t = 8 training consumes (hundreds per second).
  EXPECT_GT(read_rate, 2000);
}

}  // namespace
}  // namespace contrail
