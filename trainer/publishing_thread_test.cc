#include "trainer/publishing_thread.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "common/tensor_views.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/update_publisher.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

// Two tensors: "w" [64] and "b" [8].
ModelSpec TwoTensorSpec() {
  ModelSpec spec;
  spec.set_architecture("test");
  spec.add_input_shape(8);
  spec.set_num_classes(8);
  TensorSpec* w = spec.add_tensors();
  w->set_name("w");
  w->add_shape(64);
  w->set_dtype("float32");
  TensorSpec* b = spec.add_tensors();
  b->set_name("b");
  b->add_shape(8);
  b->set_dtype("float32");
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

using Tensors = std::vector<std::vector<float>>;

ConstTensorViews ConstViews(const Tensors& tensors) {
  ConstTensorViews views;
  for (const std::vector<float>& t : tensors) views.push_back(absl::MakeConstSpan(t));
  return views;
}

// Records every appended update, or refuses them from the `fail_from`th on.
class RecordingSink : public UpdateSink {
 public:
  explicit RecordingSink(int fail_from = -1) : fail_from_(fail_from) {}

  absl::Status Append(const Update& update) override {
    absl::MutexLock lock(&mu_);
    if (fail_from_ >= 0 && static_cast<int>(updates_.size()) >= fail_from_) {
      return absl::ResourceExhaustedError("the log's disk is full");
    }
    updates_.push_back(update);
    return absl::OkStatus();
  }

  // The logged updates, serialized: what a second publisher of the same
  // changes must reproduce, but for its run id, the publish time and the
  // seal over them (Update.checksum).
  std::vector<std::string> Logged() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> logged;
    for (Update update : updates_) {
      update.clear_run();
      update.clear_publish_time_us();
      update.clear_checksum();
      logged.push_back(update.SerializeAsString());
    }
    return logged;
  }

 private:
  const int fail_from_;
  absl::Mutex mu_;
  std::vector<Update> updates_ ABSL_GUARDED_BY(mu_);
};

// A publisher over its own mirror, with its sink.
struct Publishing {
  Publishing(const ModelSpec& spec, double deploy_ratio, ValueEncoding encoding,
             int fail_from = -1)
      : sink(fail_from), mirror{std::vector<float>(64), std::vector<float>(8)} {
    UpdatePublisher::Options options;
    options.deploy_ratio = deploy_ratio;
    options.encoding = encoding;
    options.sink = &sink;
    TensorViews views;
    for (std::vector<float>& t : mirror) views.push_back(absl::MakeSpan(t));
    publisher = UpdatePublisher::Create(spec, views, options).value();
  }

  RecordingSink sink;
  Tensors mirror;
  std::unique_ptr<UpdatePublisher> publisher;
};

class PublishingThreadTest : public ::testing::Test {
 protected:
  // A sparse step: a few entries of each tensor move.
  void Step(Tensors* trainer) {
    std::uniform_int_distribution<size_t> pick(0, 7);
    std::normal_distribution<float> change(0.0f, 0.1f);
    for (std::vector<float>& t : *trainer) {
      for (int i = 0; i < 3; ++i) t[pick(rng_) * (t.size() / 8)] += change(rng_);
    }
  }

  const ModelSpec spec_ = TwoTensorSpec();
  std::mt19937 rng_{20210501};
};

TEST_F(PublishingThreadTest, PublishesExactlyWhatPublishingInLineDoes) {
  // A budget that holds entries back and a lossy encoding: each update
  // depends on the mirror the one before it left.
  for (const ValueEncoding encoding : {FP32_ASSIGN, FP16_DELTA}) {
    SCOPED_TRACE(ValueEncoding_Name(encoding));
    Publishing in_line(spec_, /*deploy_ratio=*/0.05, encoding);
    Publishing overlapped(spec_, /*deploy_ratio=*/0.05, encoding);
    Tensors trainer{std::vector<float>(64, 0.5f), std::vector<float>(8, -0.25f)};
    in_line.publisher->Start(ConstViews(trainer));
    overlapped.publisher->Start(ConstViews(trainer));
    PublishingThread thread(overlapped.publisher.get());

    constexpr int kSteps = 40;
    for (int step = 0; step < kSteps; ++step) {
      Step(&trainer);
      absl::StatusOr<UpdatePublisher::PublishResult> expected =
          in_line.publisher->Publish(ConstViews(trainer));
      ASSERT_TRUE(expected.ok()) << expected.status();
      ASSERT_OK(thread.Submit(ConstViews(trainer)));
      // The next step changes the trainer while its update is being made:
      // the update is of the tensors as submitted.
      Tensors before = trainer;
      Step(&trainer);
      std::optional<PublishingThread::Result> result = thread.Wait();
      ASSERT_TRUE(result.has_value());
      ASSERT_TRUE(result->published.ok()) << result->published.status();
      EXPECT_EQ(result->published->published, expected->published);
      EXPECT_EQ(result->published->version, expected->version);
      EXPECT_EQ(result->published->entries, expected->entries);
      EXPECT_EQ(result->published->remaining_entries, expected->remaining_entries);
      EXPECT_EQ(overlapped.publisher->version(), in_line.publisher->version());
      EXPECT_EQ(overlapped.publisher->mirror_checksum(), in_line.publisher->mirror_checksum());
      trainer = std::move(before);
    }
    // Versions 2, 3, ... without a gap, the same updates in the same order,
    // and bit-identical mirrors.
    EXPECT_EQ(overlapped.publisher->version(), static_cast<uint64_t>(kSteps + 1));
    EXPECT_EQ(overlapped.sink.Logged(), in_line.sink.Logged());
    EXPECT_EQ(overlapped.mirror, in_line.mirror);
    EXPECT_EQ(ChecksumTensors(ConstViews(overlapped.mirror)),
              in_line.publisher->mirror_checksum());
  }
}

TEST_F(PublishingThreadTest, SecondSubmitBeforeWaitFailsPrecondition) {
  Publishing publishing(spec_, /*deploy_ratio=*/1, FP32_ASSIGN);
  Tensors trainer{std::vector<float>(64, 1.0f), std::vector<float>(8, 1.0f)};
  publishing.publisher->Start(ConstViews(trainer));
  PublishingThread thread(publishing.publisher.get());
  Step(&trainer);
  ASSERT_OK(thread.Submit(ConstViews(trainer)));
  EXPECT_TRUE(thread.busy());
  Step(&trainer);
  EXPECT_THAT(thread.Submit(ConstViews(trainer)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in flight")));
  std::optional<PublishingThread::Result> result = thread.Wait();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->published.ok());
  EXPECT_EQ(result->published->version, 2u);
  EXPECT_FALSE(thread.busy());
  // Nothing more is in flight.
  EXPECT_FALSE(thread.Wait().has_value());
  EXPECT_EQ(publishing.publisher->version(), 2u);
}

TEST_F(PublishingThreadTest, SubmitRejectsTensorsOfAnotherShape) {
  Publishing publishing(spec_, /*deploy_ratio=*/1, FP32_ASSIGN);
  Tensors trainer{std::vector<float>(64, 1.0f), std::vector<float>(8, 1.0f)};
  publishing.publisher->Start(ConstViews(trainer));
  PublishingThread thread(publishing.publisher.get());
  const Tensors short_bias{std::vector<float>(64, 2.0f), std::vector<float>(7, 2.0f)};
  EXPECT_THAT(thread.Submit(ConstViews(short_bias)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor 1 has 7")));
  EXPECT_FALSE(thread.busy());
}

TEST_F(PublishingThreadTest, LogFailureSurfacesInWaitAndClosesThePublisher) {
  // The log takes version 2 and refuses version 3.
  Publishing publishing(spec_, /*deploy_ratio=*/1, FP32_ASSIGN, /*fail_from=*/1);
  Tensors trainer{std::vector<float>(64, 1.0f), std::vector<float>(8, 1.0f)};
  publishing.publisher->Start(ConstViews(trainer));
  PublishingThread thread(publishing.publisher.get());
  Step(&trainer);
  ASSERT_OK(thread.Submit(ConstViews(trainer)));
  std::optional<PublishingThread::Result> result = thread.Wait();
  ASSERT_TRUE(result.has_value());
  ASSERT_OK(result->published.status());
  Step(&trainer);
  ASSERT_OK(thread.Submit(ConstViews(trainer)));
  result = thread.Wait();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->published.status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("update 3 could not be logged")));
  // The version never went past what was logged, and subscribers are cut
  // off, as when publishing in line fails.
  EXPECT_EQ(publishing.publisher->version(), 2u);
  std::vector<std::shared_ptr<const Update>> updates;
  EXPECT_THAT(publishing.publisher->Next(publishing.publisher->run(), 2, spec_.fingerprint(),
                                         absl::ZeroDuration(), &updates),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("")));
}

TEST_F(PublishingThreadTest, DestructorFinishesTheUpdateInFlight) {
  Publishing publishing(spec_, /*deploy_ratio=*/1, FP32_ASSIGN);
  Tensors trainer{std::vector<float>(64, 1.0f), std::vector<float>(8, 1.0f)};
  publishing.publisher->Start(ConstViews(trainer));
  Step(&trainer);
  {
    PublishingThread thread(publishing.publisher.get());
    ASSERT_OK(thread.Submit(ConstViews(trainer)));
  }
  EXPECT_EQ(publishing.publisher->version(), 2u);
  EXPECT_EQ(publishing.publisher->mirror_checksum(), ChecksumTensors(ConstViews(trainer)));
}

}  // namespace
}  // namespace contrail
