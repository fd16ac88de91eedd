#include "server/update_subscriber.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/live_model.h"
#include "tests/test_util/fake_clock.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/fake_update_service.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using test::FakeTrainer;
using test::FakeUpdateService;
using test::WaitUntil;

constexpr uint64_t kTrainerSeed = 7;
constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr absl::Duration kInitialBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(800);
constexpr double kJitter = 0.2;

FakeUpdateService::Stream HeldOpen(std::vector<Update> updates) {
  FakeUpdateService::Stream stream;
  stream.updates = std::move(updates);
  return stream;
}

FakeUpdateService::Stream EndedAfter(std::vector<Update> updates) {
  FakeUpdateService::Stream stream = HeldOpen(std::move(updates));
  stream.hold_open = false;
  return stream;
}

// `update` with a flipped value byte: its payload checksum fails.
Update WithBadChecksum(Update update) {
  update.mutable_tensors(0)->mutable_values()->at(0) ^= 0x04;
  return update;
}

// `update`, sealed again, one version further on: it no longer applies on
// top of the version before it.
Update WithWrongBaseVersion(Update update) {
  update.set_version(update.version() + 1);
  update.set_base_version(update.base_version() + 1);
  SealUpdate(&update);
  return update;
}

// Expects each of `waits` to be the jittered form of the nominal wait
// (in units of kInitialBackoff) at the same position.
void ExpectBackoffs(const std::vector<absl::Duration>& waits,
                    const std::vector<int>& nominal_multiples) {
  ASSERT_EQ(waits.size(), nominal_multiples.size());
  for (size_t i = 0; i < waits.size(); ++i) {
    const absl::Duration nominal = kInitialBackoff * nominal_multiples[i];
    EXPECT_LE(waits[i], nominal) << "wait " << i;
    EXPECT_GE(waits[i], nominal * (1 - kJitter)) << "wait " << i;
    EXPECT_LE(waits[i], kMaxBackoff) << "wait " << i;
  }
}

class UpdateSubscriberTest : public ::testing::Test {
 protected:
  UpdateSubscriberTest()
      : trainer_(kTrainerSeed), live_(LiveModel::Create(LiveModel::Options()).value()) {}

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeUpdateService>> fake = FakeUpdateService::Start();
    ASSERT_OK(fake);
    fake_ = *std::move(fake);
  }

  UpdateSubscriber::Options SubscriberOptions(Clock* clock) const {
    UpdateSubscriber::Options options;
    options.trainer = fake_->address();
    options.name = "test-server";
    options.backoff.initial = kInitialBackoff;
    options.backoff.max = kMaxBackoff;
    options.backoff.jitter = kJitter;
    options.backoff.seed = 11;
    options.clock = clock;
    return options;
  }

  // A started subscriber following fake_ into live_, waiting on `clock`.
  std::unique_ptr<UpdateSubscriber> StartSubscriber(Clock* clock) {
    std::unique_ptr<UpdateSubscriber> subscriber =
        UpdateSubscriber::Create(SubscriberOptions(clock),
                                 UpdateSubscriber::MakeChannel(fake_->address()),
                                 live_.get())
            .value();
    subscriber->Start();
    return subscriber;
  }

  uint64_t HeldVersion() const {
    const std::shared_ptr<const LiveModel::Version> held = live_->Current();
    return held ? held->version : 0;
  }

  bool WaitForVersion(uint64_t version) {
    return WaitUntil([&] { return HeldVersion() == version; }, kDeadline);
  }

  FakeTrainer trainer_;
  test::FakeClock clock_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<FakeUpdateService> fake_;
};

TEST_F(UpdateSubscriberTest, CreateRejectsInvalidOptions) {
  const auto create = [this](const UpdateSubscriber::Options& options) {
    return UpdateSubscriber::Create(
        options, UpdateSubscriber::MakeChannel(fake_->address()), live_.get());
  };
  UpdateSubscriber::Options no_name = SubscriberOptions(&clock_);
  no_name.name.clear();
  EXPECT_THAT(create(no_name), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  UpdateSubscriber::Options no_clock = SubscriberOptions(&clock_);
  no_clock.clock = nullptr;
  EXPECT_THAT(create(no_clock), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clock")));
  UpdateSubscriber::Options bad_backoff = SubscriberOptions(&clock_);
  bad_backoff.backoff.max = kInitialBackoff / 2;
  EXPECT_THAT(create(bad_backoff),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backoff max")));
  EXPECT_THAT(UpdateSubscriber::Create(SubscriberOptions(&clock_), nullptr, live_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("channel")));
}

TEST_F(UpdateSubscriberTest, AppliesASnapshotThenDeltasInOrderAndCountsThem) {
  std::vector<Update> updates = {trainer_.Snapshot()};
  for (int i = 0; i < 4; ++i) updates.push_back(trainer_.Step());
  uint64_t bytes = 0;
  for (const Update& update : updates) bytes += update.ByteSizeLong();
  fake_->AddStream(HeldOpen(updates));

  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(WaitForVersion(5)) << "holds version " << HeldVersion();

  EXPECT_EQ(live_->Current()->checksum, trainer_.model().Checksum());
  EXPECT_EQ(subscriber->updates_applied(), 5u);
  EXPECT_EQ(subscriber->bytes_received(), bytes);
  EXPECT_EQ(subscriber->resyncs(), 0u);
  EXPECT_TRUE(subscriber->connected());
  const std::vector<SubscribeRequest> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].subscriber(), "test-server");
  EXPECT_EQ(requests[0].have_version(), 0u);
  EXPECT_EQ(requests[0].have_run(), 0u);
  EXPECT_EQ(requests[0].have_fingerprint(), 0u);
  EXPECT_TRUE(clock_.sleeps().empty());
}

// One way to spoil an update so that a server must reject it.
struct Spoiler {
  const char* name;
  Update (*spoil)(Update);
};

class UpdateSubscriberRejectionTest : public UpdateSubscriberTest,
                                      public ::testing::WithParamInterface<Spoiler> {};

TEST_P(UpdateSubscriberRejectionTest, ResubscribesFromTheVersionItHoldsAfterABackoff) {
  const Update snapshot = trainer_.Snapshot();
  const Update second = trainer_.Step();
  const Update third = trainer_.Step();
  const Update fourth = trainer_.Step();
  fake_->AddStream(HeldOpen({snapshot, second, GetParam().spoil(third)}));
  fake_->AddStream(HeldOpen({third, fourth}));

  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(WaitForVersion(4)) << "holds version " << HeldVersion();

  EXPECT_EQ(live_->Current()->checksum, trainer_.model().Checksum());
  EXPECT_EQ(subscriber->resyncs(), 1u);
  EXPECT_EQ(subscriber->updates_applied(), 4u);
  const std::vector<SubscribeRequest> requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].have_version(), 2u);
  EXPECT_EQ(requests[1].have_run(), FakeTrainer::kRun);
  EXPECT_EQ(requests[1].have_fingerprint(), trainer_.model().spec().fingerprint());
  ExpectBackoffs(clock_.sleeps(), {1});
}

INSTANTIATE_TEST_SUITE_P(
    Spoilers, UpdateSubscriberRejectionTest,
    ::testing::Values(Spoiler{"BadChecksum", &WithBadChecksum},
                      Spoiler{"WrongBaseVersion", &WithWrongBaseVersion}),
    [](const ::testing::TestParamInfo<Spoiler>& info) {
      return std::string(info.param.name);
    });

TEST_F(UpdateSubscriberTest, BackoffAfterRejectsGrowsIsBoundedAndResetsOnceAnUpdateApplies) {
  const Update snapshot = trainer_.Snapshot();
  const Update second = trainer_.Step();
  const Update third = trainer_.Step();
  fake_->AddStream(HeldOpen({snapshot, WithBadChecksum(second)}));
  for (int i = 0; i < 4; ++i) fake_->AddStream(HeldOpen({WithBadChecksum(second)}));
  fake_->AddStream(HeldOpen({second, WithBadChecksum(third)}));
  fake_->AddStream(HeldOpen({WithBadChecksum(third)}));

  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  // The eighth subscription finds no script and is held open.
  ASSERT_TRUE(fake_->WaitForRequests(8, kDeadline));

  EXPECT_EQ(HeldVersion(), 2u);
  EXPECT_EQ(subscriber->resyncs(), 7u);
  // 100, 200, 400, 800 ms, bounded at 800; 100 and 200 again once the
  // second version applied.
  ExpectBackoffs(clock_.sleeps(), {1, 2, 4, 8, 8, 1, 2});
}

TEST_F(UpdateSubscriberTest, BackoffAfterStreamsThatEndGrowsAndResetsOnceAnUpdateApplies) {
  for (int i = 0; i < 4; ++i) fake_->AddStream(EndedAfter({}));
  fake_->AddStream(EndedAfter({trainer_.Snapshot()}));

  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(fake_->WaitForRequests(6, kDeadline));

  EXPECT_EQ(HeldVersion(), 1u);
  EXPECT_EQ(subscriber->resyncs(), 0u);
  ExpectBackoffs(clock_.sleeps(), {1, 2, 4, 8, 1});
}

TEST_F(UpdateSubscriberTest, BackoffStartsOverAfterASubscriptionThatStayedOpenLong) {
  for (int i = 0; i < 3; ++i) fake_->AddStream(EndedAfter({}));
  // The fourth subscription is held open, with nothing to send.
  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(fake_->WaitForRequests(4, kDeadline));
  clock_.Advance(kMaxBackoff);
  fake_->Stop();  // ends it after a healthy while, then refuses connections
  ASSERT_TRUE(WaitUntil([this] { return clock_.sleeps().size() >= 5; }, kDeadline));
  subscriber->Stop();

  std::vector<absl::Duration> sleeps = clock_.sleeps();
  sleeps.resize(5);
  // 100, 200, 400 ms after streams that ended at once; 100 again after the
  // long one, then growing while the trainer is away.
  ExpectBackoffs(sleeps, {1, 2, 4, 1, 2});
}

TEST_F(UpdateSubscriberTest, IsConnectedWhileUpToDateThoughTheTrainerSendsNothing) {
  // A restarted server that already holds the trainer's version: the
  // trainer has nothing to send it.
  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  fake_->AddStream(HeldOpen({}));
  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(fake_->WaitForRequests(1, kDeadline));
  EXPECT_TRUE(WaitUntil([&] { return subscriber->connected(); }, kDeadline));
  EXPECT_EQ(fake_->requests()[0].have_version(), 1u);

  fake_->Stop();
  EXPECT_TRUE(WaitUntil([&] { return !subscriber->connected(); }, kDeadline));
  EXPECT_EQ(subscriber->updates_applied(), 0u);
}

TEST(UpdateSubscriberKeepaliveTest, RefusesPingsTrainersWouldRefuse) {
  UpdateSubscriber::Keepalive keepalive;
  EXPECT_OK(UpdateSubscriber::CheckKeepalive(keepalive));
  keepalive.interval = absl::Milliseconds(999);
  EXPECT_THAT(UpdateSubscriber::CheckKeepalive(keepalive),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keepalive interval")));
  keepalive = UpdateSubscriber::Keepalive();
  keepalive.timeout = absl::ZeroDuration();
  EXPECT_THAT(UpdateSubscriber::CheckKeepalive(keepalive),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keepalive timeout")));
}

TEST_F(UpdateSubscriberTest, BacksOffWhileTheTrainerCannotBeReached) {
  fake_->Stop();  // nothing listens on its address any more

  std::unique_ptr<UpdateSubscriber> subscriber = StartSubscriber(&clock_);
  ASSERT_TRUE(WaitUntil([this] { return clock_.sleeps().size() >= 6; }, kDeadline));
  subscriber->Stop();

  std::vector<absl::Duration> sleeps = clock_.sleeps();
  sleeps.resize(6);
  ExpectBackoffs(sleeps, {1, 2, 4, 8, 8, 8});
  EXPECT_EQ(HeldVersion(), 0u);
  EXPECT_FALSE(subscriber->connected());
}

TEST_F(UpdateSubscriberTest, KeepsItsVersionWhileTheTrainerIsAwayAndCatchesUpWhenItReturns) {
  const Update snapshot = trainer_.Snapshot();
  const Update second = trainer_.Step();
  fake_->AddStream(HeldOpen({snapshot, second}));
  // The real clock: the subscriber retries every few milliseconds while
  // the trainer is away, as a deployed one would (with longer waits).
  UpdateSubscriber::Options options = SubscriberOptions(Clock::Real());
  options.backoff.initial = absl::Milliseconds(5);
  options.backoff.max = absl::Milliseconds(20);
  std::unique_ptr<UpdateSubscriber> subscriber =
      UpdateSubscriber::Create(options, UpdateSubscriber::MakeChannel(fake_->address()),
                               live_.get())
          .value();
  subscriber->Start();
  ASSERT_TRUE(WaitForVersion(2));
  ASSERT_TRUE(WaitUntil([&] { return subscriber->connected(); }, kDeadline));

  const std::string address = fake_->address();
  fake_->Stop();
  ASSERT_TRUE(WaitUntil([&] { return !subscriber->connected(); }, kDeadline));
  EXPECT_EQ(HeldVersion(), 2u);
  EXPECT_EQ(live_->Current()->checksum, trainer_.model().Checksum());

  const Update third = trainer_.Step();
  const Update fourth = trainer_.Step();
  absl::StatusOr<std::unique_ptr<FakeUpdateService>> returned =
      FakeUpdateService::Start(address, {HeldOpen({third, fourth})});
  ASSERT_OK(returned);
  ASSERT_TRUE(WaitForVersion(4)) << "holds version " << HeldVersion();

  EXPECT_EQ(live_->Current()->checksum, trainer_.model().Checksum());
  EXPECT_TRUE(WaitUntil([&] { return subscriber->connected(); }, kDeadline));
  EXPECT_EQ(subscriber->updates_applied(), 4u);
  EXPECT_EQ(subscriber->resyncs(), 0u);
  const std::vector<SubscribeRequest> requests = (*returned)->requests();
  ASSERT_GE(requests.size(), 1u);
  EXPECT_EQ(requests[0].have_version(), 2u);
  EXPECT_EQ(requests[0].have_run(), FakeTrainer::kRun);
  subscriber->Stop();
}

}  // namespace
}  // namespace contrail
