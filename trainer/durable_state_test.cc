#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/checkpoint_store.h"
#include "trainer/durable_file.h"
#include "trainer/update_log.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string FreshDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  EXPECT_OK(MakeDirs(dir));
  return dir;
}

void Truncate(const std::string& path, int64_t drop) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const int64_t size = in.tellg();
  ASSERT_EQ(truncate(path.c_str(), size - drop), 0);
}

void FlipByte(const std::string& path, int64_t at) {
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  file.seekg(at);
  char c;
  file.get(c);
  file.seekp(at);
  file.put(static_cast<char>(c ^ 0x5a));
}

TEST(CheckedFileTest, RoundTripsAndDetectsDamage) {
  const std::string dir = FreshDir("checked");
  const std::string path = dir + "/f";
  EXPECT_THAT(ReadCheckedFile(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr("f")));
  ASSERT_OK(WriteCheckedFile(path, "hello, durable world"));
  absl::StatusOr<std::string> read = ReadCheckedFile(path);
  ASSERT_OK(read);
  EXPECT_EQ(*read, "hello, durable world");
  FlipByte(path, 30);
  EXPECT_THAT(ReadCheckedFile(path),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("checksum")));
  ASSERT_OK(WriteCheckedFile(path, "hello, durable world"));
  Truncate(path, 3);
  EXPECT_THAT(ReadCheckedFile(path),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
}

TrainerCheckpoint Checkpoint(uint64_t version) {
  TrainerCheckpoint checkpoint;
  checkpoint.set_version(version);
  checkpoint.set_run(77);
  checkpoint.set_examples_read(static_cast<int64_t>(version) * 10);
  return checkpoint;
}

TEST(CheckpointStoreTest, KeepsTheNewestTwoAndFallsBackFromADamagedOne) {
  const std::string dir = FreshDir("checkpoints");
  CheckpointStore store(dir);
  EXPECT_THAT(store.LoadNewest(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no checkpoint")));
  for (uint64_t v : {3, 9, 12}) ASSERT_OK(store.Write(Checkpoint(v)));
  absl::StatusOr<std::vector<uint64_t>> versions = store.Versions();
  ASSERT_OK(versions);
  EXPECT_THAT(*versions, ElementsAre(9, 12));
  absl::StatusOr<TrainerCheckpoint> newest = store.LoadNewest();
  ASSERT_OK(newest);
  EXPECT_EQ(newest->version(), 12u);

  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir, "checkpoint-", ".ckpt");
  ASSERT_OK(names);
  ASSERT_THAT(*names, SizeIs(2));
  Truncate(dir + "/" + (*names)[1], 2);  // the newest, half-written
  newest = store.LoadNewest();
  ASSERT_OK(newest);
  EXPECT_EQ(newest->version(), 9u);
  EXPECT_EQ(newest->examples_read(), 90);

  FlipByte(dir + "/" + (*names)[0], 25);
  EXPECT_THAT(store.LoadNewest(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("every checkpoint")));
}

Update Logged(uint64_t version) {
  Update update;
  update.set_version(version);
  update.set_base_version(version - 1);
  update.set_run(77);
  return update;
}

TEST(UpdateLogTest, ReadsBackAfterAVersionAcrossSegments) {
  const std::string dir = FreshDir("log");
  absl::StatusOr<std::unique_ptr<UpdateLog>> log = UpdateLog::Open(dir, 2);
  ASSERT_OK(log);
  for (uint64_t v = 2; v <= 5; ++v) ASSERT_OK((*log)->Append(Logged(v)));
  ASSERT_OK((*log)->Rotate(6));  // a checkpoint of version 5
  for (uint64_t v = 6; v <= 8; ++v) ASSERT_OK((*log)->Append(Logged(v)));
  absl::StatusOr<std::vector<Update>> after = UpdateLog::ReadAfter(dir, 3);
  ASSERT_OK(after);
  ASSERT_THAT(*after, SizeIs(5));
  EXPECT_EQ(after->front().version(), 4u);
  EXPECT_EQ(after->back().version(), 8u);

  // Once a newer checkpoint (8) is durable, what only the one before (5)
  // needed goes: versions 2-5.
  ASSERT_OK((*log)->Rotate(9));
  ASSERT_OK((*log)->DropThrough(5));
  after = UpdateLog::ReadAfter(dir, 0);
  ASSERT_OK(after);
  ASSERT_THAT(*after, SizeIs(3));
  EXPECT_EQ(after->front().version(), 6u);
}

TEST(UpdateLogTest, ATornRecordEndsItsSegment) {
  const std::string dir = FreshDir("torn");
  absl::StatusOr<std::unique_ptr<UpdateLog>> log = UpdateLog::Open(dir, 2);
  ASSERT_OK(log);
  for (uint64_t v = 2; v <= 4; ++v) ASSERT_OK((*log)->Append(Logged(v)));
  log->reset();
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir, "updates-", ".log");
  ASSERT_OK(names);
  ASSERT_THAT(*names, SizeIs(1));
  Truncate(dir + "/" + (*names)[0], 3);  // kill -9 in the middle of appending 4
  absl::StatusOr<std::vector<Update>> after = UpdateLog::ReadAfter(dir, 0);
  ASSERT_OK(after);
  ASSERT_THAT(*after, SizeIs(2));
  EXPECT_EQ(after->back().version(), 3u);
  // A corrupt record ends it too.
  FlipByte(dir + "/" + (*names)[0], 14);
  after = UpdateLog::ReadAfter(dir, 0);
  ASSERT_OK(after);
  EXPECT_THAT(*after, SizeIs(0));
}

}  // namespace
}  // namespace contrail
