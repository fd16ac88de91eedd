#include "trainer/update_publisher.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "common/tensor_views.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using Updates = std::vector<std::shared_ptr<const Update>>;

// Two tensors: "w" [3, 4] (12 floats) and "b" [4].
ModelSpec TwoTensorSpec() {
  ModelSpec spec;
  spec.set_architecture("test");
  spec.add_input_shape(3);
  spec.set_num_classes(4);
  TensorSpec* w = spec.add_tensors();
  w->set_name("w");
  w->add_shape(3);
  w->add_shape(4);
  w->set_dtype("float32");
  TensorSpec* b = spec.add_tensors();
  b->set_name("b");
  b->add_shape(4);
  b->set_dtype("float32");
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

// A model's storage, one vector per tensor of `spec`, zeroed.
std::vector<std::vector<float>> ZeroModel(const ModelSpec& spec) {
  std::vector<std::vector<float>> model;
  for (const TensorSpec& t : spec.tensors()) model.emplace_back(TensorSize(t));
  return model;
}

TensorViews Views(std::vector<std::vector<float>>& model) {
  TensorViews views;
  for (std::vector<float>& t : model) views.push_back(absl::MakeSpan(t));
  return views;
}

ConstTensorViews ConstViews(const std::vector<std::vector<float>>& model) {
  ConstTensorViews views;
  for (const std::vector<float>& t : model) views.push_back(absl::MakeSpan(t));
  return views;
}

// Bit-wise equality, so that -0.0 differs from 0.0.
bool SameBits(const std::vector<std::vector<float>>& a,
              const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t t = 0; t < a.size(); ++t) {
    if (a[t].size() != b[t].size()) return false;
    if (std::memcmp(a[t].data(), b[t].data(), a[t].size() * sizeof(float)) !=
        0) {
      return false;
    }
  }
  return true;
}

class UpdatePublisherTest : public ::testing::Test {
 protected:
  void SetUp() override { MakePublisher(UpdatePublisher::Options()); }

  void MakePublisher(const UpdatePublisher::Options& options) {
    publisher_.reset();
    mirror_ = ZeroModel(spec_);
    publisher_ = UpdatePublisher::Create(spec_, Views(mirror_),
                                                   options).value();
  }

  // Starts the publisher on a trainer whose entries are all distinct and
  // non-zero, except w[5], which is +0.0.
  void Start() {
    float value = 1.0f;
    for (std::vector<float>& t : trainer_) {
      for (float& x : t) x = (value += 0.5f);
    }
    trainer_[0][5] = 0.0f;
    publisher_->Start(ConstViews(trainer_));
  }

  UpdatePublisher::PublishResult PublishOk() {
    absl::StatusOr<UpdatePublisher::PublishResult> result =
        publisher_->Publish(ConstViews(trainer_));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : UpdatePublisher::PublishResult();
  }

  // Changes one trainer entry, different for each call, and publishes it.
  UpdatePublisher::PublishResult ChangeAndPublish() {
    trainer_[changes_ % 2][changes_ % 4] += 10.0f;
    ++changes_;
    return PublishOk();
  }

  // What an up-to-date subscriber of this run and model, holding `version`,
  // gets with a short wait.
  Updates NextFor(uint64_t version) {
    return NextFor(publisher_->run(), version, spec_.fingerprint());
  }
  Updates NextFor(uint64_t run, uint64_t version, uint64_t fingerprint) {
    Updates out;
    const absl::Status status = publisher_->Next(
        run, version, fingerprint, absl::Milliseconds(20), &out);
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }

  uint64_t TrainerChecksum() const {
    return ChecksumTensors(ConstViews(trainer_));
  }

  // Expects `updates` to be one snapshot of the latest version that, applied
  // to an empty model, reproduces the mirror bit for bit.
  void ExpectSnapshotOfMirror(const Updates& updates) {
    ASSERT_THAT(updates, SizeIs(1));
    const Update& snapshot = *updates[0];
    EXPECT_TRUE(snapshot.snapshot());
    EXPECT_EQ(snapshot.version(), publisher_->version());
    EXPECT_EQ(snapshot.base_version(), 0u);
    EXPECT_EQ(snapshot.run(), publisher_->run());
    EXPECT_EQ(snapshot.fingerprint(), spec_.fingerprint());
    EXPECT_EQ(snapshot.spec().SerializeAsString(), spec_.SerializeAsString());
    EXPECT_EQ(snapshot.model_checksum(), publisher_->mirror_checksum());
    std::vector<std::vector<float>> replica = ZeroModel(spec_);
    const absl::Status applied =
        ApplyUpdate(snapshot, snapshot.spec(), Views(replica));
    ASSERT_TRUE(applied.ok()) << applied;
    EXPECT_TRUE(SameBits(replica, mirror_));
    EXPECT_EQ(ChecksumTensors(ConstViews(replica)),
              publisher_->mirror_checksum());
  }

  ModelSpec spec_ = TwoTensorSpec();
  std::vector<std::vector<float>> trainer_ = ZeroModel(spec_);
  // Declared before the publisher, which holds views onto it.
  std::vector<std::vector<float>> mirror_;
  std::unique_ptr<UpdatePublisher> publisher_;
  int changes_ = 0;
};

// ------------------------------------------------------------- publishing ----

TEST_F(UpdatePublisherTest, PublishBeforeStartFailsPrecondition) {
  const absl::StatusOr<UpdatePublisher::PublishResult> result =
      publisher_->Publish(ConstViews(trainer_));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(publisher_->version(), 0u);
}

TEST_F(UpdatePublisherTest, StartMakesVersionOneEqualToTrainer) {
  Start();
  EXPECT_EQ(publisher_->version(), 1u);
  EXPECT_TRUE(SameBits(mirror_, trainer_));
  EXPECT_EQ(publisher_->mirror_checksum(), TrainerChecksum());
}

TEST_F(UpdatePublisherTest, PublishCarriesExactlyTheChangedEntries) {
  Start();
  trainer_[0][1] = -7.0f;
  trainer_[0][11] = 0.125f;
  trainer_[1][2] = 3e-9f;

  const UpdatePublisher::PublishResult result = PublishOk();
  EXPECT_TRUE(result.published);
  EXPECT_EQ(result.version, 2u);
  EXPECT_EQ(result.entries, 3);
  EXPECT_GT(result.payload_bytes, 0);
  EXPECT_EQ(publisher_->version(), 2u);
  EXPECT_TRUE(SameBits(mirror_, trainer_));
  EXPECT_EQ(publisher_->mirror_checksum(), TrainerChecksum());

  const Updates updates = NextFor(1);
  ASSERT_THAT(updates, SizeIs(1));
  const Update& update = *updates[0];
  EXPECT_FALSE(update.snapshot());
  EXPECT_EQ(update.version(), 2u);
  EXPECT_EQ(update.base_version(), 1u);
  EXPECT_EQ(update.run(), publisher_->run());
  EXPECT_EQ(update.model_checksum(), TrainerChecksum());
  EXPECT_EQ(static_cast<int64_t>(update.ByteSizeLong()), result.payload_bytes);

  const absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_THAT(*decoded, SizeIs(2));
  EXPECT_EQ((*decoded)[0].tensor, 0u);
  EXPECT_FALSE((*decoded)[0].dense);
  EXPECT_THAT((*decoded)[0].indices, ElementsAre(1u, 11u));
  EXPECT_THAT((*decoded)[0].values, ElementsAre(-7.0f, 0.125f));
  EXPECT_EQ((*decoded)[1].tensor, 1u);
  EXPECT_FALSE((*decoded)[1].dense);
  EXPECT_THAT((*decoded)[1].indices, ElementsAre(2u));
  EXPECT_THAT((*decoded)[1].values, ElementsAre(3e-9f));
}

TEST_F(UpdatePublisherTest, DeployBudgetSendsLargestDifferencesFirstAndTheRestLater) {
  UpdatePublisher::Options options;
  options.deploy_ratio = 0.2;  // 2 of w's 12 entries, 1 of b's 4
  MakePublisher(options);
  Start();
  for (int i = 0; i < 12; ++i) trainer_[0][i] += 0.1f * (i + 1);
  trainer_[1][0] += 1.0f;
  trainer_[1][3] += 2.0f;

  UpdatePublisher::PublishResult result = PublishOk();
  EXPECT_EQ(result.entries, 3);
  EXPECT_EQ(result.remaining_entries, 11);
  const absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(*NextFor(1).at(0), spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT((*decoded)[0].indices, ElementsAre(10u, 11u));
  EXPECT_THAT((*decoded)[1].indices, ElementsAre(3u));
  // Later updates carry the rest until the mirror equals the trainer.
  while (result.remaining_entries > 0) result = PublishOk();
  EXPECT_TRUE(SameBits(mirror_, trainer_));
  EXPECT_EQ(publisher_->version(), 7u);  // 1 + ceil(12 / 2) updates
}

TEST_F(UpdatePublisherTest, BuffersGoOutWholeWhateverTheBudget) {
  spec_.mutable_tensors(1)->set_is_buffer(true);
  spec_.set_fingerprint(ComputeFingerprint(spec_));
  UpdatePublisher::Options options;
  options.deploy_ratio = 0.1;
  MakePublisher(options);
  Start();
  for (float& x : trainer_[1]) x += 1.0f;
  trainer_[0][0] += 1.0f;
  trainer_[0][1] += 2.0f;
  const UpdatePublisher::PublishResult result = PublishOk();
  EXPECT_EQ(result.entries, 1 + 4);
  EXPECT_EQ(result.remaining_entries, 1);
}

TEST_F(UpdatePublisherTest, ChangeInOneTensorOnlyCarriesThatTensor) {
  Start();
  trainer_[1][0] = 99.0f;
  ASSERT_TRUE(PublishOk().published);
  const Updates updates = NextFor(1);
  ASSERT_THAT(updates, SizeIs(1));
  const absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(*updates[0], spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_THAT(*decoded, SizeIs(1));
  EXPECT_EQ((*decoded)[0].tensor, 1u);
  EXPECT_THAT((*decoded)[0].indices, ElementsAre(0u));
  EXPECT_THAT((*decoded)[0].values, ElementsAre(99.0f));
}

TEST_F(UpdatePublisherTest, NegativeZeroCountsAsAChange) {
  Start();
  ASSERT_EQ(trainer_[0][5], 0.0f);
  trainer_[0][5] = -0.0f;

  const UpdatePublisher::PublishResult result = PublishOk();
  EXPECT_TRUE(result.published);
  EXPECT_EQ(result.version, 2u);
  EXPECT_EQ(result.entries, 1);
  EXPECT_TRUE(std::signbit(mirror_[0][5]));
  EXPECT_TRUE(SameBits(mirror_, trainer_));
  EXPECT_EQ(publisher_->mirror_checksum(), TrainerChecksum());
}

TEST_F(UpdatePublisherTest, NoChangePublishesNothing) {
  Start();
  const uint64_t checksum = publisher_->mirror_checksum();

  const UpdatePublisher::PublishResult result = PublishOk();
  EXPECT_FALSE(result.published);
  EXPECT_EQ(result.entries, 0);
  EXPECT_EQ(publisher_->version(), 1u);
  EXPECT_EQ(publisher_->mirror_checksum(), checksum);
  EXPECT_THAT(NextFor(1), IsEmpty());
}

// ------------------------------------------------------------ subscribing ----

TEST_F(UpdatePublisherTest, SubscriberBehindGetsTheMissedUpdatesInOrder) {
  Start();
  for (uint64_t v = 2; v <= 5; ++v) ASSERT_EQ(ChangeAndPublish().version, v);

  const Updates updates = NextFor(2);
  ASSERT_THAT(updates, SizeIs(3));
  uint64_t have = 2;
  for (const std::shared_ptr<const Update>& update : updates) {
    EXPECT_FALSE(update->snapshot());
    EXPECT_EQ(update->base_version(), have);
    EXPECT_EQ(update->version(), have + 1);
    have = update->version();
  }
  EXPECT_EQ(have, 5u);
}

TEST_F(UpdatePublisherTest, AppliedUpdatesKeepAReplicaEqualToTheMirror) {
  Start();
  std::vector<std::vector<float>> replica = ZeroModel(spec_);
  Updates updates = NextFor(0, 0, 0);
  for (int round = 0; round < 4; ++round) {
    ASSERT_FALSE(updates.empty());
    for (const std::shared_ptr<const Update>& update : updates) {
      const absl::Status applied =
          ApplyUpdate(*update, spec_, Views(replica));
      ASSERT_TRUE(applied.ok()) << applied;
    }
    EXPECT_TRUE(SameBits(replica, mirror_)) << "round " << round;
    const uint64_t have = updates.back()->version();
    ChangeAndPublish();
    updates = NextFor(have);
  }
}

TEST_F(UpdatePublisherTest, UpdatesAndSnapshotsCarryTheirPublishTime) {
  Start();
  const int64_t before = absl::ToUnixMicros(absl::Now());
  ChangeAndPublish();
  const Updates updates = NextFor(1);
  const Updates snapshot = NextFor(/*run=*/0, /*version=*/0, /*fingerprint=*/0);
  const int64_t after = absl::ToUnixMicros(absl::Now());

  ASSERT_THAT(updates, SizeIs(1));
  ASSERT_THAT(snapshot, SizeIs(1));
  for (const Update* update : {updates[0].get(), snapshot[0].get()}) {
    EXPECT_GE(update->publish_time_us(), static_cast<uint64_t>(before));
    EXPECT_LE(update->publish_time_us(), static_cast<uint64_t>(after));
  }
}

TEST_F(UpdatePublisherTest, EmptySubscriberGetsASnapshot) {
  Start();
  for (int i = 0; i < 4; ++i) ChangeAndPublish();
  ASSERT_EQ(publisher_->version(), 5u);
  ExpectSnapshotOfMirror(NextFor(/*run=*/0, /*version=*/0,
                                 /*fingerprint=*/0));
}

TEST_F(UpdatePublisherTest, SubscriberFromAnotherRunGetsASnapshot) {
  Start();
  for (int i = 0; i < 4; ++i) ChangeAndPublish();
  // Same version number and model, but another trainer process.
  ExpectSnapshotOfMirror(
      NextFor(publisher_->run() + 1, /*version=*/2, spec_.fingerprint()));
  // Even when its version equals the latest.
  ExpectSnapshotOfMirror(
      NextFor(publisher_->run() + 1, /*version=*/5, spec_.fingerprint()));
}

TEST_F(UpdatePublisherTest, SubscriberWithAnotherModelGetsASnapshot) {
  Start();
  for (int i = 0; i < 4; ++i) ChangeAndPublish();
  ExpectSnapshotOfMirror(
      NextFor(publisher_->run(), /*version=*/2, spec_.fingerprint() + 1));
}

TEST_F(UpdatePublisherTest, SnapshotRightAfterStartIsVersionOne) {
  Start();
  const Updates updates = NextFor(0, 0, 0);
  ExpectSnapshotOfMirror(updates);
  ASSERT_THAT(updates, SizeIs(1));
  EXPECT_EQ(updates[0]->version(), 1u);
}

TEST_F(UpdatePublisherTest, SubscriberOlderThanTheRetainedWindowGetsASnapshot) {
  UpdatePublisher::Options options;
  options.max_retained_updates = 2;
  MakePublisher(options);
  Start();
  for (int i = 0; i < 4; ++i) ChangeAndPublish();  // versions 2..5
  // Updates 4 and 5 are retained: a subscriber at 3 can still follow them...
  const Updates from_three = NextFor(3);
  ASSERT_THAT(from_three, SizeIs(2));
  EXPECT_FALSE(from_three[0]->snapshot());
  EXPECT_EQ(from_three[0]->base_version(), 3u);
  EXPECT_EQ(from_three[0]->version(), 4u);
  EXPECT_EQ(from_three[1]->version(), 5u);
  // ...but one at 2 has missed update 3.
  ExpectSnapshotOfMirror(NextFor(2));
}

TEST_F(UpdatePublisherTest, UpToDateSubscriberTimesOutWithNothing) {
  Start();
  ChangeAndPublish();
  Updates out = {nullptr};  // Next() must clear what was there
  const absl::Status status = publisher_->Next(
      publisher_->run(), 2, spec_.fingerprint(), absl::Milliseconds(20), &out);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(out, IsEmpty());
}

TEST_F(UpdatePublisherTest, SubscriberWaitsForStart) {
  Updates out;
  const absl::Status status =
      publisher_->Next(0, 0, 0, absl::Milliseconds(20), &out);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(out, IsEmpty()) << "no model to send before Start()";
}

// ------------------------------------------------------ waiting subscribers ----

// Long enough never to expire in a passing test; the waits below end on an
// event long before it.
constexpr absl::Duration kLongTimeout = absl::Seconds(60);
// How long a woken subscriber may take to return, on a loaded machine.
constexpr absl::Duration kPrompt = absl::Seconds(10);

TEST_F(UpdatePublisherTest, CloseEndsABlockedNext) {
  Start();
  absl::Status status;
  absl::Duration waited;
  absl::Notification waiting;
  absl::Notification returned;
  std::thread subscriber([&] {
    Updates out;
    waiting.Notify();
    const absl::Time start = absl::Now();
    status = publisher_->Next(publisher_->run(), 1, spec_.fingerprint(),
                              kLongTimeout, &out);
    waited = absl::Now() - start;
    returned.Notify();
  });
  waiting.WaitForNotification();
  // The subscriber is up to date, so nothing but Close() can end its wait.
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  publisher_->Close();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kPrompt));
  subscriber.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_LT(waited, kPrompt);
}

TEST_F(UpdatePublisherTest, NextAfterCloseIsUnavailable) {
  Start();
  ChangeAndPublish();
  publisher_->Close();
  Updates out;
  // Even a subscriber with something to get.
  const absl::Status status =
      publisher_->Next(0, 0, 0, kLongTimeout, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(out, IsEmpty());
}

TEST_F(UpdatePublisherTest, PublishWakesAWaitingNext) {
  Start();
  absl::Status status;
  Updates out;
  absl::Notification waiting;
  absl::Notification returned;
  std::thread subscriber([&] {
    waiting.Notify();
    status = publisher_->Next(publisher_->run(), 1, spec_.fingerprint(),
                              kLongTimeout, &out);
    returned.Notify();
  });
  waiting.WaitForNotification();
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  ChangeAndPublish();
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(kPrompt));
  subscriber.join();
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0]->version(), 2u);
  EXPECT_EQ(out[0]->base_version(), 1u);
}

}  // namespace
}  // namespace contrail
