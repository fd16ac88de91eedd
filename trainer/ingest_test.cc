// The ingest path end to end, in-process: producers stream examples over
// IngestService into a TrainerDaemon with --source=ingest, which validates,
// queues and trains on them. Bad examples of each kind, backpressure from a
// producer far faster than training, a producer that goes away mid-stream,
// and a stream slower than the trigger (max_wait).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"
#include "trainer/trainer_daemon.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kPixels = 28 * 28;

// A random Fashion-MNIST-shaped example; bad = 1 wrong shape, 2 a NaN
// input, 3 a label out of range.
Example MakeExample(std::mt19937* rng, int64_t index, int bad = 0) {
  std::uniform_real_distribution<float> pixel(0, 1);
  Example example;
  Tensor* inputs = example.mutable_inputs();
  for (int64_t d : {1, 28, 28}) inputs->add_shape(d);
  for (int64_t i = 0; i < kPixels; ++i) inputs->add_values(pixel(*rng));
  example.set_label(static_cast<int64_t>((*rng)() % 10));
  example.set_id(absl::StrCat("e", index));
  if (bad == 1) {
    inputs->clear_shape();
    inputs->add_shape(kPixels);
  } else if (bad == 2) {
    inputs->set_values(7, std::nanf(""));
  } else if (bad == 3) {
    example.set_label(10);
  }
  return example;
}

class IngestTest : public ::testing::Test {
 protected:
  // A trainer taking examples over RPC: the MLP, 64 initial examples.
  TrainerDaemon::Options IngestOptions() const {
    TrainerDaemon::Options options;
    options.listen = "127.0.0.1:0";
    options.source = "ingest";
    options.ingest_queue = 64;
    TrainingConfig& training = options.training;
    training.set_model("mlp");
    training.set_initial_examples(64);
    training.set_initial_epochs(1);
    training.set_batch_size(32);
    training.set_ratio(0.01);
    return options;
  }

  void StartDaemon(const TrainerDaemon::Options& options) {
    absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(options);
    ASSERT_OK(daemon);
    daemon_ = *std::move(daemon);
    ASSERT_OK(daemon_->Start());
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", daemon_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  StatusResponse Status() {
    StatusResponse status;
    grpc::ClientContext context;
    EXPECT_TRUE(StatusService::NewStub(channel_)
                    ->GetStatus(&context, StatusRequest(), &status)
                    .ok());
    return status;
  }

  // Streams examples [begin, end), every `bad_every`-th one bad (kinds in
  // turn), and returns the call's status and summary.
  grpc::Status Ingest(int64_t begin, int64_t end, int64_t bad_every,
                      IngestSummary* summary) {
    grpc::ClientContext context;
    auto writer = IngestService::NewStub(channel_)->Ingest(&context, summary);
    for (int64_t i = begin; i < end; ++i) {
      const int bad = bad_every > 0 && (i + 1) % bad_every == 0
                          ? static_cast<int>(((i + 1) / bad_every - 1) % 3) + 1
                          : 0;
      if (!writer->Write(MakeExample(&rng_, i, bad))) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Waits until every accepted example has been trained on.
  bool AllTrained(absl::Duration timeout) {
    return test::WaitUntil(
        [&] {
          const StatusResponse status = Status();
          return status.examples_queued() == 0 &&
                 status.examples_trained() == status.examples_accepted();
        },
        timeout);
  }

  std::mt19937 rng_{5};
  std::unique_ptr<TrainerDaemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(IngestTest, BadExamplesAreRejectedByReasonAndTheRestTrained) {
  StartDaemon(IngestOptions());
  IngestSummary summary;
  // 300 examples, every 10th bad: 10 of each kind.
  ASSERT_TRUE(Ingest(0, 300, 10, &summary).ok());
  EXPECT_EQ(summary.accepted(), 270u);
  EXPECT_EQ(summary.rejected(), 30u);
  EXPECT_THAT(summary.rejected_by_reason(),
              UnorderedElementsAre(Pair("wrong_shape", 10), Pair("non_finite", 10),
                                   Pair("label_out_of_range", 10)));
  ASSERT_EQ(summary.first_rejections_size(), 5);
  EXPECT_THAT(summary.first_rejections(0), HasSubstr("example 9 (id e9): shape [784]"));

  ASSERT_TRUE(AllTrained(absl::Seconds(60)));
  const StatusResponse status = Status();
  EXPECT_EQ(status.source(), "ingest");
  EXPECT_EQ(status.phase(), STREAMING);
  EXPECT_EQ(status.examples_accepted(), 270u);
  EXPECT_EQ(status.examples_trained(), 270u);
  EXPECT_EQ(status.examples_seen(), 270u - 64u);  // after the initial 64
  EXPECT_EQ(status.examples_rejected(), 30u);
  EXPECT_EQ(status.rejected_by_reason().at("non_finite"), 10u);
  // Training went on: the servers' model moved past the initial version.
  EXPECT_GT(status.version(), 1u);
  EXPECT_EQ(status.checksum(), status.trainer_checksum());
}

TEST_F(IngestTest, AFastProducerIsHeldBackAndNothingIsDropped) {
  TrainerDaemon::Options options = IngestOptions();
  options.ingest_queue = 16;
  StartDaemon(options);
  constexpr int64_t kExamples = 1500;
  std::atomic<bool> done{false};
  IngestSummary summary;
  grpc::Status call;
  std::thread producer([&] {
    call = Ingest(0, kExamples, 0, &summary);
    done = true;
  });
  // While the producer pushes as fast as it can, the trainer holds at most
  // the queue's 16 plus the examples it has read for the work at hand: the
  // 64 initial ones during initial training, later the t = 8 of a step.
  uint64_t most_queued = 0;
  int samples = 0;
  while (!done) {
    const StatusResponse status = Status();
    most_queued = std::max(most_queued, status.examples_queued());
    ++samples;
    absl::SleepFor(absl::Milliseconds(5));
  }
  producer.join();
  ASSERT_TRUE(call.ok()) << call.error_message();
  EXPECT_GT(samples, 10) << "the producer was never held back";
  EXPECT_LE(most_queued, 16u + 64u);
  EXPECT_EQ(summary.accepted(), static_cast<uint64_t>(kExamples));
  ASSERT_TRUE(AllTrained(absl::Seconds(60)));
  EXPECT_EQ(Status().examples_trained(), static_cast<uint64_t>(kExamples));
}

TEST_F(IngestTest, AProducerThatGoesAwayLosesNothingItGotAccepted) {
  StartDaemon(IngestOptions());
  {
    grpc::ClientContext context;
    IngestSummary summary;
    auto writer = IngestService::NewStub(channel_)->Ingest(&context, &summary);
    for (int64_t i = 0; i < 100; ++i) ASSERT_TRUE(writer->Write(MakeExample(&rng_, i)));
    ASSERT_TRUE(test::WaitUntil([&] { return Status().examples_accepted() == 100; },
                                absl::Seconds(60)));
    // Gone without WritesDone: the call is cancelled mid-stream.
    context.TryCancel();
    EXPECT_FALSE(writer->Finish().ok());
  }
  // The trainer takes what arrived before the cut and keeps serving others.
  IngestSummary summary;
  ASSERT_TRUE(Ingest(100, 150, 0, &summary).ok());
  EXPECT_EQ(summary.accepted(), 50u);
  ASSERT_TRUE(AllTrained(absl::Seconds(60)));
  const StatusResponse status = Status();
  EXPECT_EQ(status.examples_accepted(), 150u);
  EXPECT_EQ(status.examples_trained(), 150u);
  EXPECT_EQ(status.phase(), STREAMING);
}

TEST_F(IngestTest, FewerThanTArrivingAreTrainedAfterMaxWait) {
  TrainerDaemon::Options options = IngestOptions();
  options.training.set_max_wait_ms(200);
  StartDaemon(options);
  IngestSummary summary;
  ASSERT_TRUE(Ingest(0, 64 + 3, 0, &summary).ok());
  // Three of the t = 8 arrive after the initial 64: they are tested and
  // trained on as a step of three once 200 ms have passed.
  ASSERT_TRUE(test::WaitUntil([&] { return Status().examples_seen() == 3; },
                              absl::Seconds(60)));
  EXPECT_EQ(daemon_->trainer().stats().partial_steps, 1);
  EXPECT_EQ(Status().examples_queued(), 0u);
}

TEST_F(IngestTest, WithoutMaxWaitFewerThanTWaitForMore) {
  TrainerDaemon::Options options = IngestOptions();
  options.training.set_max_wait_ms(0);
  StartDaemon(options);
  IngestSummary summary;
  ASSERT_TRUE(Ingest(0, 64 + 3, 0, &summary).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return Status().examples_trained() == 64; },
                              absl::Seconds(60)));
  absl::SleepFor(absl::Seconds(1));
  StatusResponse status = Status();
  EXPECT_EQ(status.examples_seen(), 0u);
  EXPECT_EQ(status.examples_queued(), 3u);
  // Five more complete the trigger.
  ASSERT_TRUE(Ingest(67, 72, 0, &summary).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return Status().examples_seen() == 8; },
                              absl::Seconds(60)));
  EXPECT_EQ(daemon_->trainer().stats().partial_steps, 0);
}

TEST_F(IngestTest, AFinishedTrainerRefusesMoreExamples) {
  TrainerDaemon::Options options = IngestOptions();
  options.training.set_stream_examples(16);
  StartDaemon(options);
  IngestSummary summary;
  ASSERT_TRUE(Ingest(0, 80, 0, &summary).ok());
  ASSERT_OK(daemon_->trainer().WaitUntilFinished(absl::Seconds(60)));
  const grpc::Status refused = Ingest(80, 90, 0, &summary);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("finished its stream"));
  EXPECT_EQ(Status().examples_trained(), 80u);
}

TEST_F(IngestTest, AReplayTrainerRefusesIngestClearly) {
  const std::string data_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/ingest_data");
  ASSERT_OK(test::WriteSyntheticFashionMnist(data_dir, /*train_count=*/200,
                                             /*test_count=*/0, /*seed=*/3));
  TrainerDaemon::Options options = IngestOptions();
  options.source = "replay";
  options.data_dir = data_dir;
  options.training.set_stream_examples(100);
  StartDaemon(options);
  IngestSummary summary;
  const grpc::Status refused = Ingest(0, 5, 0, &summary);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("--source=ingest"));
}

TEST_F(IngestTest, CreateRejectsAnUnknownSourceAndABadQueue) {
  TrainerDaemon::Options options = IngestOptions();
  options.source = "kafka://x";
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--source")));
  options = IngestOptions();
  options.ingest_queue = 0;
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--ingest_queue")));
}

}  // namespace
}  // namespace contrail
