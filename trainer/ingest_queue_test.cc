#include "trainer/ingest_queue.h"

#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

Example MakeExample(float value, int64_t label) {
  Example example;
  example.mutable_inputs()->add_shape(2);
  example.mutable_inputs()->add_values(value);
  example.mutable_inputs()->add_values(-value);
  example.set_label(label);
  return example;
}

const auto kNeverCancelled = [] { return false; };

TEST(IngestQueueTest, HandsOutAcceptedExamplesInOrder) {
  IngestQueue queue({2}, 3, 10);
  for (int i = 0; i < 4; ++i) {
    auto added = queue.Add(MakeExample(i, i % 3), i, kNeverCancelled);
    ASSERT_OK(added.status());
    EXPECT_FALSE(added->has_value());
  }
  Examples out;
  auto read = queue.Read(3, absl::Now(), &out);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->count, 3);
  EXPECT_FALSE(read->end_of_stream);
  EXPECT_THAT(out.labels, ElementsAre(0, 1, 2));
  EXPECT_THAT(out.inputs, ElementsAre(0, -0.0f, 1, -1, 2, -2));
  const SourceCounters counters = queue.counters();
  EXPECT_EQ(counters.accepted, 4);
  EXPECT_EQ(counters.queued, 1);
  EXPECT_EQ(counters.rejected, 0);
}

TEST(IngestQueueTest, RejectsAndCountsBadExamplesWithoutQueueingThem) {
  IngestQueue queue({2}, 3, 10);
  Example wrong_shape = MakeExample(1, 0);
  wrong_shape.mutable_inputs()->set_shape(0, 1);
  auto added = queue.Add(wrong_shape, 0, kNeverCancelled);
  ASSERT_OK(added.status());
  ASSERT_TRUE(added->has_value());
  EXPECT_EQ((*added)->reason, RejectReason::kWrongShape);
  ASSERT_OK(queue.Add(MakeExample(1, 3), 1, kNeverCancelled).status());
  ASSERT_OK(queue.Add(MakeExample(1, 2), 2, kNeverCancelled).status());
  const SourceCounters counters = queue.counters();
  EXPECT_EQ(counters.accepted, 1);
  EXPECT_EQ(counters.rejected, 2);
  EXPECT_EQ(counters.queued, 1);
  EXPECT_THAT(counters.rejected_by_reason,
              ElementsAre(Pair("label_out_of_range", 1), Pair("wrong_shape", 1)));
}

TEST(IngestQueueTest, ReadWaitsUntilTheDeadlineForExamples) {
  IngestQueue queue({2}, 3, 10);
  Examples out;
  const absl::Time start = absl::Now();
  auto read = queue.Read(8, start + absl::Milliseconds(100), &out);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->count, 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  std::thread producer([&queue] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_OK(queue.Add(MakeExample(1, 1), 0, kNeverCancelled).status());
  });
  read = queue.Read(8, absl::Now() + absl::Seconds(30), &out);
  producer.join();
  ASSERT_OK(read.status());
  EXPECT_EQ(read->count, 1);
}

TEST(IngestQueueTest, AFullQueueHoldsTheProducerBackUntilThereIsRoom) {
  IngestQueue queue({2}, 3, 2);
  ASSERT_OK(queue.Add(MakeExample(0, 0), 0, kNeverCancelled).status());
  ASSERT_OK(queue.Add(MakeExample(1, 1), 1, kNeverCancelled).status());
  std::atomic<bool> added{false};
  std::thread producer([&] {
    ASSERT_OK(queue.Add(MakeExample(2, 2), 2, kNeverCancelled).status());
    added = true;
  });
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(added);
  EXPECT_EQ(queue.counters().queued, 2);
  Examples out;
  ASSERT_OK(queue.Read(1, absl::Now(), &out).status());
  producer.join();
  EXPECT_TRUE(added);
  ASSERT_OK(queue.Read(5, absl::Now(), &out).status());
  EXPECT_THAT(out.labels, ElementsAre(0, 1, 2));
  EXPECT_EQ(queue.counters().accepted, 3);
}

TEST(IngestQueueTest, AWaitingProducerThatGoesAwayQueuesNothing) {
  IngestQueue queue({2}, 3, 1);
  ASSERT_OK(queue.Add(MakeExample(0, 0), 0, kNeverCancelled).status());
  std::atomic<bool> cancelled{false};
  std::thread producer([&] {
    EXPECT_THAT(queue.Add(MakeExample(1, 1), 1, [&] { return cancelled.load(); }).status(),
                StatusIs(absl::StatusCode::kCancelled, HasSubstr("went away")));
  });
  absl::SleepFor(absl::Milliseconds(100));
  cancelled = true;
  producer.join();
  EXPECT_EQ(queue.counters().accepted, 1);
  EXPECT_EQ(queue.counters().queued, 1);
}

TEST(IngestQueueTest, CloseFailsProducersAndEndsTheStreamAfterTheQueued) {
  IngestQueue queue({2}, 3, 1);
  ASSERT_OK(queue.Add(MakeExample(0, 0), 0, kNeverCancelled).status());
  std::thread producer([&] {
    EXPECT_THAT(queue.Add(MakeExample(1, 1), 1, kNeverCancelled).status(),
                StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  });
  absl::SleepFor(absl::Milliseconds(100));
  queue.Close(absl::UnavailableError("the trainer is shutting down"));
  producer.join();
  EXPECT_THAT(queue.Add(MakeExample(2, 2), 2, kNeverCancelled).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  Examples out;
  auto read = queue.Read(5, absl::Now() + absl::Seconds(30), &out);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->count, 1);
  EXPECT_TRUE(read->end_of_stream);
}

}  // namespace
}  // namespace contrail
