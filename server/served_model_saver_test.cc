#include "server/served_model_saver.h"

#include <stdlib.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/live_model.h"
#include "server/served_model_store.h"
#include "tests/test_util/fake_trainer.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;
using test::FakeTrainer;
using test::WaitUntil;

constexpr absl::Duration kDeadline = absl::Seconds(30);

class ServedModelSaverTest : public ::testing::Test {
 protected:
  ServedModelSaverTest()
      : trainer_(/*seed=*/7), live_(LiveModel::Create(LiveModel::Options()).value()) {}

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/saver-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    ServedModelStore::Options options;
    options.dir = pattern;
    store_ = ServedModelStore::Create(options).value();
  }

  std::unique_ptr<ServedModelSaver> NewSaver(absl::Duration interval) {
    ServedModelSaver::Options options;
    options.interval = interval;
    return ServedModelSaver::Create(options, live_.get(), store_.get()).value();
  }

  // The version in the newest file; 0 when there is none.
  uint64_t SavedOnDisk() const {
    absl::StatusOr<ServedModelStore::Saved> saved =
        ServedModelStore::Read(store_->current_path());
    return saved.ok() ? saved->snapshot.version() : 0;
  }

  FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<ServedModelStore> store_;
};

TEST_F(ServedModelSaverTest, CreateRejectsInvalidOptions) {
  ServedModelSaver::Options options;
  options.interval = absl::ZeroDuration();
  EXPECT_THAT(ServedModelSaver::Create(options, live_.get(), store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--save_every_s")));
  options = ServedModelSaver::Options();
  options.clock = nullptr;
  EXPECT_THAT(ServedModelSaver::Create(options, live_.get(), store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clock")));
}

TEST_F(ServedModelSaverTest, SavesOnlyWhenTheVersionMoved) {
  std::unique_ptr<ServedModelSaver> saver = NewSaver(absl::Hours(1));
  ASSERT_OK(saver->SaveIfChanged());  // nothing held: nothing to save
  EXPECT_EQ(saver->saves(), 0u);
  EXPECT_EQ(SavedOnDisk(), 0u);

  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  ASSERT_OK(saver->SaveIfChanged());
  ASSERT_OK(saver->SaveIfChanged());
  EXPECT_EQ(saver->saves(), 1u);
  EXPECT_EQ(saver->saved_version(), 1u);
  EXPECT_EQ(SavedOnDisk(), 1u);

  ASSERT_OK(live_->Apply(trainer_.Step()));
  ASSERT_OK(saver->SaveIfChanged());
  EXPECT_EQ(saver->saves(), 2u);
  EXPECT_EQ(SavedOnDisk(), 2u);
}

TEST_F(ServedModelSaverTest, AVersionOfAnotherRunIsSavedEvenWithTheSameNumber) {
  std::unique_ptr<ServedModelSaver> saver = NewSaver(absl::Hours(1));
  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  ASSERT_OK(saver->SaveIfChanged());
  FakeTrainer other(/*seed=*/8, "lenet5", /*run=*/99);
  ASSERT_OK(live_->Apply(other.Snapshot()));
  ASSERT_OK(saver->SaveIfChanged());
  EXPECT_EQ(saver->saves(), 2u);
  EXPECT_EQ(ServedModelStore::Read(store_->current_path())->snapshot.run(), 99u);
}

TEST_F(ServedModelSaverTest, TheRestoredVersionIsNotSavedAgain) {
  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  std::unique_ptr<ServedModelSaver> saver = NewSaver(absl::Hours(1));
  saver->MarkSaved(FakeTrainer::kRun, 1);
  ASSERT_OK(saver->SaveIfChanged());
  EXPECT_EQ(saver->saves(), 0u);
  EXPECT_EQ(saver->saved_version(), 1u);
}

TEST_F(ServedModelSaverTest, SavesEveryIntervalWhileRunning) {
  std::unique_ptr<ServedModelSaver> saver = NewSaver(absl::Milliseconds(10));
  saver->Start();
  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  ASSERT_TRUE(WaitUntil([&] { return SavedOnDisk() == 1; }, kDeadline));
  ASSERT_OK(live_->Apply(trainer_.Step()));
  ASSERT_TRUE(WaitUntil([&] { return SavedOnDisk() == 2; }, kDeadline));
  saver->Stop();
  EXPECT_EQ(saver->saved_version(), 2u);
}

TEST_F(ServedModelSaverTest, SavesTheLastVersionWhenStopped) {
  std::unique_ptr<ServedModelSaver> saver = NewSaver(absl::Hours(1));
  saver->Start();
  ASSERT_OK(live_->Apply(trainer_.Snapshot()));
  ASSERT_OK(live_->Apply(trainer_.Step()));
  EXPECT_EQ(SavedOnDisk(), 0u);
  saver->Stop();
  EXPECT_EQ(SavedOnDisk(), 2u);
  EXPECT_EQ(saver->saves(), 1u);
  saver->Stop();  // idempotent
  EXPECT_EQ(saver->saves(), 1u);
}

}  // namespace
}  // namespace contrail
