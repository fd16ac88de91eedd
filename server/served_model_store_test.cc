#include "server/served_model_store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/update_codec.h"
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
using test::FakeTrainer;

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << bytes;
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

std::unique_ptr<LiveModel> NewLiveModel() {
  return LiveModel::Create(LiveModel::Options()).value();
}

class ServedModelStoreTest : public ::testing::Test {
 protected:
  ServedModelStoreTest() : trainer_(/*seed=*/7), live_(NewLiveModel()) {}

  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/state-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern + "/state";  // Create() makes this one
    ServedModelStore::Options options;
    options.dir = dir_;
    absl::StatusOr<std::unique_ptr<ServedModelStore>> store =
        ServedModelStore::Create(options);
    ASSERT_OK(store);
    store_ = *std::move(store);
  }

  // Applies `update` to live_ and saves the version it makes.
  void ApplyAndSave(const Update& update) {
    ASSERT_OK(live_->Apply(update));
    ASSERT_OK(store_->Save(*live_->Current()));
  }

  // Restores into a fresh live model; the version restored, or the error.
  absl::StatusOr<uint64_t> RestoreFresh() {
    restored_ = NewLiveModel();
    return store_->Restore(restored_.get());
  }

  FakeTrainer trainer_;
  std::unique_ptr<LiveModel> live_;
  std::string dir_;
  std::unique_ptr<ServedModelStore> store_;
  std::unique_ptr<LiveModel> restored_;
};

TEST_F(ServedModelStoreTest, RestoresTheSavedVersionBitForBitAndUpdatesFollow) {
  ApplyAndSave(trainer_.Snapshot());
  ASSERT_OK(live_->Apply(trainer_.Step()));
  ASSERT_OK(live_->Apply(trainer_.Step()));
  const std::shared_ptr<const LiveModel::Version> saved = live_->Current();
  ASSERT_OK(store_->Save(*saved));

  absl::StatusOr<uint64_t> restored = RestoreFresh();
  ASSERT_OK(restored);
  EXPECT_EQ(*restored, 3u);
  const std::shared_ptr<const LiveModel::Version> current = restored_->Current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->version, 3u);
  EXPECT_EQ(current->run, FakeTrainer::kRun);
  EXPECT_EQ(current->checksum, saved->checksum);
  EXPECT_EQ(current->checksum, trainer_.model().Checksum());
  EXPECT_EQ(current->applied_at, absl::FromUnixMicros(absl::ToUnixMicros(saved->applied_at)));
  // It continues with the deltas after the saved version.
  ASSERT_OK(restored_->Apply(trainer_.Step()));
  EXPECT_EQ(restored_->Current()->checksum, trainer_.model().Checksum());
}

TEST_F(ServedModelStoreTest, KeepsTheSaveBeforeTheNewestAsTheFallback) {
  ApplyAndSave(trainer_.Snapshot());
  ApplyAndSave(trainer_.Step());
  ApplyAndSave(trainer_.Step());
  absl::StatusOr<ServedModelStore::Saved> current =
      ServedModelStore::Read(store_->current_path());
  absl::StatusOr<ServedModelStore::Saved> previous =
      ServedModelStore::Read(store_->previous_path());
  ASSERT_OK(current);
  ASSERT_OK(previous);
  EXPECT_EQ(current->snapshot.version(), 3u);
  EXPECT_EQ(previous->snapshot.version(), 2u);
  EXPECT_FALSE(Exists(store_->current_path() + ".tmp"));
}

TEST_F(ServedModelStoreTest, NothingSavedRestoresNothing) {
  EXPECT_THAT(RestoreFresh(), StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_)));
  EXPECT_EQ(restored_->Current(), nullptr);
  EXPECT_THAT(ServedModelStore::Read(store_->current_path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does not exist")));
}

TEST_F(ServedModelStoreTest, TruncatedNewestFileIsSetAsideAndThePreviousRestored) {
  ApplyAndSave(trainer_.Snapshot());
  ApplyAndSave(trainer_.Step());
  const std::string whole = ReadBytes(store_->current_path());
  const std::string previous = ReadBytes(store_->previous_path());
  for (const size_t length : {size_t{0}, size_t{7}, size_t{31}, size_t{32}, size_t{33},
                              whole.size() / 2, whole.size() - 1}) {
    SCOPED_TRACE(absl::StrCat("cut to ", length, " of ", whole.size(), " bytes"));
    WriteBytes(store_->current_path(), whole.substr(0, length));
    WriteBytes(store_->previous_path(), previous);
    EXPECT_THAT(ServedModelStore::Read(store_->current_path()),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
    absl::StatusOr<uint64_t> restored = RestoreFresh();
    ASSERT_OK(restored);
    EXPECT_EQ(*restored, 1u);
    EXPECT_FALSE(Exists(store_->current_path()));
    EXPECT_EQ(ReadBytes(store_->current_path() + ".bad").size(), length);
    ::unlink((store_->current_path() + ".bad").c_str());
  }
  // The next save keeps the restored fallback and does not resurrect the
  // bad file.
  ApplyAndSave(trainer_.Step());
  EXPECT_EQ(ServedModelStore::Read(store_->previous_path())->snapshot.version(), 1u);
}

TEST_F(ServedModelStoreTest, EveryDefectOfTheFileIsDataLossNamingIt) {
  ApplyAndSave(trainer_.Snapshot());
  const std::string whole = ReadBytes(store_->current_path());
  struct Case {
    const char* name;
    std::string bytes;
    const char* message;
  };
  std::string flipped_payload = whole;
  flipped_payload[whole.size() - 100] ^= 0x01;
  std::string flipped_time = whole;
  flipped_time[9] ^= 0x01;
  std::string flipped_magic = whole;
  flipped_magic[0] = 'X';
  std::string wrong_size = whole;
  wrong_size[16] ^= 0x01;
  const Case cases[] = {
      {"payload byte", flipped_payload, "fails its checksum"},
      {"time byte", flipped_time, "fails its checksum"},
      {"magic", flipped_magic, "not a contrail server state file"},
      {"size field", wrong_size, "header announces"},
      {"trailing byte", whole + "x", "too long"},
      {"cut", whole.substr(0, whole.size() - 1), "truncated"},
  };
  const std::string path = dir_ + "/spoiled";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WriteBytes(path, c.bytes);
    EXPECT_THAT(ServedModelStore::Read(path),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.message)));
  }
}

TEST_F(ServedModelStoreTest, AFileOfAnotherModelIsRefusedAndThePreviousRestored) {
  ApplyAndSave(trainer_.Snapshot());
  // Sealed and checksummed throughout, but its spec is not what this
  // binary builds for "lenet5": as after an upgrade that changed the
  // architecture.
  Update other = trainer_.Snapshot();
  other.mutable_spec()->mutable_tensors(0)->set_name("renamed.weight");
  other.mutable_spec()->set_fingerprint(ComputeFingerprint(other.spec()));
  other.set_fingerprint(other.spec().fingerprint());
  SealUpdate(&other);
  ASSERT_OK(store_->SaveSnapshot(other, absl::Now()));
  ASSERT_OK(ServedModelStore::Read(store_->current_path()));

  absl::StatusOr<uint64_t> restored = RestoreFresh();
  ASSERT_OK(restored);
  EXPECT_EQ(*restored, 1u);
  EXPECT_EQ(restored_->Current()->checksum, trainer_.model().Checksum());
  EXPECT_TRUE(Exists(store_->current_path() + ".bad"));
}

TEST_F(ServedModelStoreTest, WhenEveryFileIsBadTheServerStartsEmpty) {
  ApplyAndSave(trainer_.Snapshot());
  // The newest reads back whole but fails the model checksum; the one
  // before it is garbage.
  Update wrong_checksum = trainer_.Snapshot();
  wrong_checksum.set_model_checksum(wrong_checksum.model_checksum() ^ 1);
  ASSERT_OK(store_->SaveSnapshot(wrong_checksum, absl::Now()));
  WriteBytes(store_->previous_path(), "garbage");

  EXPECT_THAT(RestoreFresh(), StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir_)));
  EXPECT_EQ(restored_->Current(), nullptr);
  EXPECT_TRUE(Exists(store_->current_path() + ".bad"));
  EXPECT_TRUE(Exists(store_->previous_path() + ".bad"));
}

TEST_F(ServedModelStoreTest, AFileWhoseLoadingKilledTheLastStartIsNotLoadedAgain) {
  ApplyAndSave(trainer_.Snapshot());
  ApplyAndSave(trainer_.Step());
  // What a start that died while loading served_model leaves behind.
  WriteBytes(dir_ + "/restoring", "served_model");

  absl::StatusOr<uint64_t> restored = RestoreFresh();
  ASSERT_OK(restored);
  EXPECT_EQ(*restored, 1u);
  EXPECT_TRUE(Exists(store_->current_path() + ".crashed"));
  EXPECT_FALSE(Exists(dir_ + "/restoring"));
  // A clean restore leaves no marker either.
  ApplyAndSave(trainer_.Step());
  ASSERT_OK(RestoreFresh());
  EXPECT_FALSE(Exists(dir_ + "/restoring"));
}

TEST_F(ServedModelStoreTest, TorchScriptModelsAreSavedWithTheirModule) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(test::Runfile("tests/tiny_cnn.pt"), /*seed=*/0);
  ASSERT_OK(model);
  LiveModel::Version version;
  version.model = *std::move(model);
  version.model->SetTraining(false);
  version.version = 12;
  version.run = 34;
  version.checksum = version.model->Checksum();
  version.applied_at = absl::FromUnixSeconds(1700000000);
  ASSERT_OK(store_->Save(version));

  absl::StatusOr<uint64_t> restored = RestoreFresh();
  ASSERT_OK(restored);
  EXPECT_EQ(*restored, 12u);
  const std::shared_ptr<const LiveModel::Version> current = restored_->Current();
  EXPECT_EQ(current->model->spec().architecture(), "torchscript:tiny_cnn.pt");
  EXPECT_EQ(current->checksum, version.checksum);
  EXPECT_EQ(current->run, 34u);
  const std::vector<float> inputs(2 * 28 * 28, 0.25f);
  absl::StatusOr<Model::Predictions> expected = version.model->Predict({2, 1, 28, 28}, inputs);
  absl::StatusOr<LiveModel::Predictions> served = restored_->Predict({2, 1, 28, 28}, inputs);
  ASSERT_OK(expected);
  ASSERT_OK(served);
  EXPECT_EQ(served->probabilities, expected->probabilities);
}

TEST(ServedModelStoreCreateTest, RefusesAnEmptyDirOrAPathThatIsNotADirectory) {
  EXPECT_THAT(ServedModelStore::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state_dir")));
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string file = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/a-file");
  WriteBytes(file, "x");
  ServedModelStore::Options options;
  options.dir = file;
  EXPECT_THAT(ServedModelStore::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(file)));
  options.dir = file + "/below";
  EXPECT_THAT(ServedModelStore::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot create")));
}

}  // namespace
}  // namespace contrail
