#include "common/update_retention.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "common/tensor_views.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using Updates = std::vector<std::shared_ptr<const Update>>;

constexpr uint64_t kRun = 7;
constexpr absl::Duration kShortWait = absl::Milliseconds(20);

// One tensor "w" of 4 floats.
ModelSpec OneTensorSpec() {
  ModelSpec spec;
  spec.set_architecture("test");
  spec.add_input_shape(4);
  spec.set_num_classes(2);
  TensorSpec* w = spec.add_tensors();
  w->set_name("w");
  w->add_shape(4);
  w->set_dtype("float32");
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

// A model of OneTensorSpec() behind an UpdateRetention, as a relay keeps
// one: updates are applied to `model_` inside Advance().
class UpdateRetentionTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(UpdateRetention::Options()); }

  void Make(UpdateRetention::Options options) {
    options.owner = "the test feed";
    retention_ = UpdateRetention::Create(options, [this](const UpdateRetention::Head& head) {
                   ++snapshots_built_;
                   return MakeSnapshot(spec_, "", head.run, head.version, head.checksum,
                                       /*publish_time_us=*/5, {absl::MakeConstSpan(model_)});
                 }).value();
  }

  uint64_t Checksum() const { return ChecksumTensors({absl::MakeConstSpan(model_)}); }

  // Makes the model version `version` of `run`.
  void ResetTo(uint64_t run, uint64_t version) {
    UpdateRetention::Head head;
    head.run = run;
    head.fingerprint = spec_.fingerprint();
    head.version = version;
    head.checksum = Checksum();
    ASSERT_OK(retention_->Reset(head, [] { return absl::OkStatus(); }));
  }

  // The update that sets entry `index` to `value` on top of the head.
  std::shared_ptr<Update> MakeUpdate(uint32_t index, float value) {
    const UpdateRetention::Head head = retention_->head();
    auto update = std::make_shared<Update>();
    update->set_version(head.version + 1);
    update->set_base_version(head.version);
    update->set_run(head.run);
    update->set_fingerprint(spec_.fingerprint());
    update->set_encoding(FP32_ASSIGN);
    const uint32_t indices[] = {index};
    const float values[] = {value};
    AppendSparseTensor(0, indices, values, update.get());
    SealUpdate(update.get());
    return update;
  }

  absl::Status Advance(std::shared_ptr<Update> update) {
    return retention_->Advance(std::move(update), [this](Update* u) {
      CONTRAIL_RETURN_IF_ERROR(ApplyUpdate(*u, spec_, {absl::MakeSpan(model_)}));
      u->set_model_checksum(Checksum());
      return absl::OkStatus();
    });
  }

  Updates NextFor(uint64_t run, uint64_t version) {
    Updates out;
    EXPECT_OK(retention_->Next(run, version, run == 0 ? 0 : spec_.fingerprint(), kShortWait,
                               &out));
    return out;
  }

  const ModelSpec spec_ = OneTensorSpec();
  std::vector<float> model_ = {1, 2, 3, 4};
  int snapshots_built_ = 0;
  std::unique_ptr<UpdateRetention> retention_;
};

TEST_F(UpdateRetentionTest, CreateRefusesToRetainNothing) {
  UpdateRetention::Options options;
  options.max_updates = 0;
  EXPECT_THAT(UpdateRetention::Create(options, [](const UpdateRetention::Head&) {
                return std::shared_ptr<const Update>();
              }).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_updates")));
  EXPECT_THAT(UpdateRetention::Create(UpdateRetention::Options(), nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("snapshot")));
}

TEST_F(UpdateRetentionTest, SubscribersWaitUntilThereIsAModel) {
  EXPECT_THAT(NextFor(0, 0), IsEmpty());
  ResetTo(kRun, 3);
  const Updates out = NextFor(0, 0);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_TRUE(out[0]->snapshot());
  EXPECT_EQ(out[0]->version(), 3u);
}

TEST_F(UpdateRetentionTest, SubscriberInsideTheWindowGetsTheMissedUpdatesUnchanged) {
  ResetTo(kRun, 1);
  std::vector<std::shared_ptr<Update>> sent;
  for (uint32_t i = 0; i < 3; ++i) {
    sent.push_back(MakeUpdate(i, 10.0f + i));
    sent.back()->set_publish_time_us(100 + i);
    ASSERT_OK(Advance(sent.back()));
  }
  const Updates out = NextFor(kRun, 2);
  ASSERT_THAT(out, SizeIs(2));
  // The very messages applied: same bytes, publish time included.
  EXPECT_EQ(out[0]->SerializeAsString(), sent[1]->SerializeAsString());
  EXPECT_EQ(out[1]->SerializeAsString(), sent[2]->SerializeAsString());
  EXPECT_EQ(out[1]->publish_time_us(), 102u);
  EXPECT_EQ(retention_->head().version, 4u);
  EXPECT_EQ(retention_->head().checksum, Checksum());
  EXPECT_THAT(NextFor(kRun, 4), IsEmpty());
}

TEST_F(UpdateRetentionTest, SubscriberOlderThanTheWindowGetsASnapshotOfTheHead) {
  UpdateRetention::Options options;
  options.max_updates = 2;
  Make(options);
  ResetTo(kRun, 1);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_OK(Advance(MakeUpdate(i, -1.0f - i)));
  EXPECT_EQ(retention_->retained(), 2u);
  EXPECT_THAT(NextFor(kRun, 3), SizeIs(2));
  const Updates out = NextFor(kRun, 2);
  ASSERT_THAT(out, SizeIs(1));
  ASSERT_TRUE(out[0]->snapshot());
  EXPECT_EQ(out[0]->version(), 5u);
  EXPECT_EQ(out[0]->run(), kRun);
  // A replica loading it is bit-identical to the model at the head.
  std::vector<float> replica(4, 0.0f);
  ASSERT_OK(ApplyUpdate(*out[0], spec_, {absl::MakeSpan(replica)}));
  EXPECT_EQ(replica, model_);
  EXPECT_EQ(out[0]->model_checksum(), Checksum());
}

TEST_F(UpdateRetentionTest, SnapshotIsBuiltOncePerVersion) {
  ResetTo(kRun, 1);
  NextFor(0, 0);
  NextFor(kRun + 1, 1);
  EXPECT_EQ(snapshots_built_, 1);
  ASSERT_OK(Advance(MakeUpdate(0, 9.0f)));
  const Updates out = NextFor(0, 0);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->version(), 2u);
  EXPECT_EQ(snapshots_built_, 2);
}

TEST_F(UpdateRetentionTest, ResetSendsEverySubscriberASnapshot) {
  ResetTo(kRun, 1);
  ASSERT_OK(Advance(MakeUpdate(0, 9.0f)));
  // A new run upstream: version numbers start over.
  model_ = {5, 6, 7, 8};
  ResetTo(kRun + 1, 1);
  EXPECT_EQ(retention_->retained(), 0u);
  for (const auto& [run, version] : {std::pair<uint64_t, uint64_t>{kRun, 2}, {kRun, 1}}) {
    const Updates out = NextFor(run, version);
    ASSERT_THAT(out, SizeIs(1));
    EXPECT_TRUE(out[0]->snapshot());
    EXPECT_EQ(out[0]->run(), kRun + 1);
  }
  // A subscriber behind the head of the same run after a reset has lost
  // the updates between: snapshot too.
  ResetTo(kRun + 1, 5);
  const Updates out = NextFor(kRun + 1, 4);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_TRUE(out[0]->snapshot());
}

TEST_F(UpdateRetentionTest, SubscriberAheadOfTheHeadWaitsInsteadOfGoingBack) {
  ResetTo(kRun, 4);
  EXPECT_THAT(NextFor(kRun, 6), IsEmpty());
  ASSERT_OK(Advance(MakeUpdate(0, 1.5f)));
  ASSERT_OK(Advance(MakeUpdate(1, 2.5f)));
  EXPECT_THAT(NextFor(kRun, 6), IsEmpty());
  ASSERT_OK(Advance(MakeUpdate(2, 3.5f)));
  const Updates out = NextFor(kRun, 6);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->version(), 7u);
}

TEST_F(UpdateRetentionTest, AdvanceRefusesWhatDoesNotFollowTheHead) {
  ResetTo(kRun, 3);
  std::shared_ptr<Update> gap = MakeUpdate(0, 1.0f);
  gap->set_base_version(2);
  gap->set_version(3);
  bool applied = false;
  auto apply = [&applied](Update*) {
    applied = true;
    return absl::OkStatus();
  };
  EXPECT_THAT(retention_->Advance(gap, apply),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version 3")));
  std::shared_ptr<Update> other_run = MakeUpdate(0, 1.0f);
  other_run->set_run(kRun + 1);
  EXPECT_THAT(retention_->Advance(other_run, apply),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another run")));
  EXPECT_FALSE(applied);
  EXPECT_EQ(retention_->head().version, 3u);
}

TEST_F(UpdateRetentionTest, FailedApplyRetainsNothing) {
  ResetTo(kRun, 1);
  EXPECT_THAT(retention_->Advance(MakeUpdate(0, 1.0f),
                                  [](Update*) { return absl::DataLossError("bad checksum"); }),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad checksum")));
  EXPECT_EQ(retention_->head().version, 1u);
  EXPECT_EQ(retention_->retained(), 0u);
}

TEST_F(UpdateRetentionTest, ByteCapKeepsAtLeastTheNewestUpdate) {
  UpdateRetention::Options options;
  options.max_bytes = 1;
  Make(options);
  ResetTo(kRun, 1);
  ASSERT_OK(Advance(MakeUpdate(0, 1.0f)));
  ASSERT_OK(Advance(MakeUpdate(1, 1.0f)));
  EXPECT_EQ(retention_->retained(), 1u);
  EXPECT_THAT(NextFor(kRun, 2), SizeIs(1));
  const Updates old = NextFor(kRun, 1);
  ASSERT_THAT(old, SizeIs(1));
  EXPECT_TRUE(old[0]->snapshot());
}

TEST_F(UpdateRetentionTest, CloseEndsWaitingAndLaterSubscribers) {
  ResetTo(kRun, 1);
  retention_->Close();
  Updates out;
  EXPECT_THAT(retention_->Next(kRun, 1, spec_.fingerprint(), absl::Seconds(10), &out),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("the test feed")));
}

TEST_F(UpdateRetentionTest, ListenersHearEveryChangeUntilRemoved) {
  int heard = 0;
  const uint64_t handle = retention_->AddListener([&] { ++heard; });
  ResetTo(kRun, 1);
  EXPECT_EQ(heard, 1);
  ASSERT_OK(Advance(MakeUpdate(0, 5.0f)));
  ASSERT_OK(Advance(MakeUpdate(0, 6.0f)));
  EXPECT_EQ(heard, 3);
  // A change that is refused is not announced.
  auto stale = MakeUpdate(1, 7.0f);
  stale->set_base_version(1);
  EXPECT_THAT(Advance(stale), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("follow")));
  EXPECT_EQ(heard, 3);
  retention_->Close();
  EXPECT_EQ(heard, 4);
  retention_->RemoveListener(handle);
  ResetTo(kRun, 9);
  EXPECT_EQ(heard, 4);
}

}  // namespace
}  // namespace contrail
