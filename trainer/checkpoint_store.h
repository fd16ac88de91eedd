// The trainer's checkpoints in its state directory (--state_dir):
// checkpoint-<version>.ckpt, each a TrainerCheckpoint written atomically
// and checked on reading (trainer/durable_file.h). The newest two are
// kept: when the newest is truncated or corrupt, the one before serves,
// with one clear log line.
//
// Thread-safe for one writer and any number of readers of other files.
#ifndef CONTRAIL_TRAINER_CHECKPOINT_STORE_H_
#define CONTRAIL_TRAINER_CHECKPOINT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"

namespace contrail {

class CheckpointStore {
 public:
  // Checkpoints kept.
  static constexpr int kKept = 2;

  explicit CheckpointStore(std::string dir) : dir_(std::move(dir)) {}

  // Writes `checkpoint` atomically, then deletes all but the newest kKept.
  absl::Status Write(const TrainerCheckpoint& checkpoint) const;

  // The newest checkpoint that reads back intact: NOT_FOUND when there is
  // none (a first start), DATA_LOSS when every one is damaged.
  absl::StatusOr<TrainerCheckpoint> LoadNewest() const;

  // The versions of the checkpoints present, oldest first.
  absl::StatusOr<std::vector<uint64_t>> Versions() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string Path(uint64_t version) const;

  const std::string dir_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_CHECKPOINT_STORE_H_
