#include "server/update_relay.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using Updates = std::vector<std::shared_ptr<const Update>>;

constexpr absl::Duration kShortWait = absl::Milliseconds(20);

std::unique_ptr<LiveModel> MakeLiveModel() { return LiveModel::Create({}).value(); }

class UpdateRelayTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeRelay(UpdateRelay::Options()); }

  void MakeRelay(const UpdateRelay::Options& options) {
    relay_.reset();
    live_ = MakeLiveModel();
    relay_ = UpdateRelay::Create(options, live_.get()).value();
  }

  // What a subscriber holding (`run`, `version`) of the trainer's model gets.
  Updates NextFor(uint64_t run, uint64_t version) {
    Updates out;
    EXPECT_OK(relay_->Next(run, version,
                           run == 0 ? 0 : trainer_.model().spec().fingerprint(), kShortWait,
                           &out));
    return out;
  }

  // Applies each of `updates` to a replica below the relay; its checksum.
  static uint64_t ReplicaChecksum(const Updates& updates) {
    std::unique_ptr<LiveModel> replica = MakeLiveModel();
    for (const auto& update : updates) {
      const absl::Status applied = replica->Apply(*update);
      EXPECT_TRUE(applied.ok()) << applied;
    }
    return replica->Current() ? replica->Current()->checksum : 0;
  }

  test::FakeTrainer trainer_{/*seed=*/3};
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<UpdateRelay> relay_;
};

TEST_F(UpdateRelayTest, CreateRefusesToRetainNothing) {
  UpdateRelay::Options options;
  options.max_retained_updates = 0;
  EXPECT_THAT(UpdateRelay::Create(options, live_.get()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("relay_retain")));
}

TEST_F(UpdateRelayTest, NothingToSendBeforeTheFirstSnapshot) {
  EXPECT_THAT(NextFor(0, 0), IsEmpty());
}

TEST_F(UpdateRelayTest, PassesOnExactlyTheUpdatesItApplied) {
  ASSERT_OK(relay_->Apply(trainer_.Snapshot()));
  std::vector<Update> steps;
  for (int i = 0; i < 3; ++i) {
    steps.push_back(trainer_.Step());
    steps.back().set_publish_time_us(1000 + i);
    ASSERT_OK(relay_->Apply(steps.back()));
  }
  EXPECT_EQ(live_->Current()->version, 4u);
  const Updates out = NextFor(trainer_.run(), 1);
  ASSERT_THAT(out, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i]->SerializeAsString(), steps[i].SerializeAsString()) << "update " << i;
  }
  EXPECT_THAT(NextFor(trainer_.run(), 4), IsEmpty());
}

TEST_F(UpdateRelayTest, UpstreamSnapshotPassesThroughUnchanged) {
  Update snapshot = trainer_.Snapshot();
  snapshot.set_publish_time_us(77);
  ASSERT_OK(relay_->Apply(snapshot));
  const Updates out = NextFor(0, 0);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->SerializeAsString(), snapshot.SerializeAsString());
}

TEST_F(UpdateRelayTest, SubscriberBehindTheWindowGetsASnapshotOfTheLiveModel) {
  UpdateRelay::Options options;
  options.max_retained_updates = 1;
  MakeRelay(options);
  ASSERT_OK(relay_->Apply(trainer_.Snapshot()));
  Update last;
  for (int i = 0; i < 3; ++i) {
    last = trainer_.Step();
    last.set_publish_time_us(2000 + i);
    ASSERT_OK(relay_->Apply(last));
  }
  EXPECT_EQ(relay_->retained(), 1u);
  const Updates out = NextFor(trainer_.run(), 2);
  ASSERT_THAT(out, SizeIs(1));
  ASSERT_TRUE(out[0]->snapshot());
  EXPECT_EQ(out[0]->version(), 4u);
  EXPECT_EQ(out[0]->run(), trainer_.run());
  EXPECT_EQ(out[0]->model_checksum(), trainer_.model().Checksum());
  // It carries the age of its content, not the time it was built.
  EXPECT_EQ(out[0]->publish_time_us(), 2002u);
  EXPECT_EQ(ReplicaChecksum(out), trainer_.model().Checksum());
}

TEST_F(UpdateRelayTest, SnapshotOfATorchScriptModelCarriesItsModule) {
  std::unique_ptr<Model> model =
      Model::Load(test::Runfile("tests/tiny_cnn.pt"), /*seed=*/0).value();
  const std::string module = model->torchscript_module();
  ASSERT_FALSE(module.empty());
  test::FakeTrainer trainer(std::move(model), /*seed=*/4);
  ASSERT_OK(relay_->Apply(trainer.Snapshot()));
  ASSERT_OK(relay_->Apply(trainer.Step()));
  Updates out;
  ASSERT_OK(relay_->Next(0, 0, 0, kShortWait, &out));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->version(), 2u);
  EXPECT_EQ(out[0]->torchscript_module(), module);
  EXPECT_EQ(ReplicaChecksum(out), trainer.model().Checksum());
}

TEST_F(UpdateRelayTest, NewRunUpstreamSendsEverySubscriberBelowASnapshot) {
  ASSERT_OK(relay_->Apply(trainer_.Snapshot()));
  ASSERT_OK(relay_->Apply(trainer_.Step()));
  test::FakeTrainer restarted(/*seed=*/9, "lenet5", /*run=*/42);
  ASSERT_OK(relay_->Apply(restarted.Snapshot()));
  for (uint64_t version : {1, 2}) {
    const Updates out = NextFor(trainer_.run(), version);
    ASSERT_THAT(out, SizeIs(1));
    EXPECT_TRUE(out[0]->snapshot());
    EXPECT_EQ(out[0]->run(), 42u);
    EXPECT_EQ(out[0]->model_checksum(), restarted.model().Checksum());
  }
}

TEST_F(UpdateRelayTest, UpdateThatDoesNotApplyIsNotPassedOn) {
  ASSERT_OK(relay_->Apply(trainer_.Snapshot()));
  trainer_.Step();
  const Update skipped_one = trainer_.Step();  // based on version 2, relay holds 1
  EXPECT_THAT(relay_->Apply(skipped_one),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version")));
  Update corrupt = test::FakeTrainer(/*seed=*/3).Step();
  corrupt.set_model_checksum(corrupt.model_checksum() + 1);
  EXPECT_THAT(relay_->Apply(corrupt), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("checksum")));
  EXPECT_EQ(relay_->retained(), 0u);
  EXPECT_EQ(live_->Current()->version, 1u);
  EXPECT_THAT(NextFor(trainer_.run(), 1), IsEmpty());
}

TEST_F(UpdateRelayTest, RestoredModelIsTheFirstVersionServed) {
  trainer_.Step();
  ASSERT_OK(live_->Restore(trainer_.Snapshot(), absl::Now()));
  relay_ = UpdateRelay::Create(UpdateRelay::Options(), live_.get()).value();
  const Updates out = NextFor(0, 0);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->version(), 2u);
  EXPECT_EQ(ReplicaChecksum(out), trainer_.model().Checksum());
  // A subscriber below that is ahead of it waits rather than go back.
  EXPECT_THAT(NextFor(trainer_.run(), 5), IsEmpty());
}

TEST_F(UpdateRelayTest, CloseEndsSubscriptions) {
  ASSERT_OK(relay_->Apply(trainer_.Snapshot()));
  relay_->Close();
  Updates out;
  EXPECT_THAT(relay_->Next(0, 0, 0, absl::Seconds(5), &out),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("relay")));
}

}  // namespace
}  // namespace contrail
