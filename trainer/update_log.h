// The trainer's update log: every published update, appended and fsynced
// before any subscriber sees it (UpdatePublisher's sink), so that a
// restarted trainer can replay the updates published after its last
// checkpoint onto the checkpoint's mirror, and serve them again to servers
// that continue with deltas. No version is ever reused with other content.
//
// The log is a series of segments in the state directory,
// updates-<first version>.log, each a sequence of records
// [u32 length][u64 xxHash64][serialized Update]. A checkpoint starts a new
// segment; segments that only hold versions older than the previous
// checkpoint are deleted. A torn record at the end of a segment (a crash
// mid-append: never published) ends what is read of it.
//
// Not thread-safe: the training thread appends (through the publisher) and
// rotates.
#ifndef CONTRAIL_TRAINER_UPDATE_LOG_H_
#define CONTRAIL_TRAINER_UPDATE_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/contrail.pb.h"
#include "trainer/update_publisher.h"

namespace contrail {

class UpdateLog final : public UpdateSink {
 public:
  // Opens a new segment in `dir` (which must exist) for versions from
  // `next_version` on.
  static absl::StatusOr<std::unique_ptr<UpdateLog>> Open(const std::string& dir,
                                                         uint64_t next_version);
  ~UpdateLog() override;
  UpdateLog(const UpdateLog&) = delete;
  UpdateLog& operator=(const UpdateLog&) = delete;

  // Appends `update` and fsyncs it.
  absl::Status Append(const Update& update) override;

  // Starts a new segment for versions from `next_version` on (at a
  // checkpoint of version next_version - 1).
  absl::Status Rotate(uint64_t next_version);

  // Deletes the segments whose updates all have versions <= `version`
  // (covered by a checkpoint that is not the newest), never the open one.
  absl::Status DropThrough(uint64_t version);

  // Every update logged in `dir` with a version above `after`, in order.
  // A torn or corrupt record ends its segment (with one log line).
  static absl::StatusOr<std::vector<Update>> ReadAfter(const std::string& dir,
                                                       uint64_t after);

  int64_t bytes_appended() const { return bytes_appended_; }

 private:
  UpdateLog(std::string dir, int fd, uint64_t first_version)
      : dir_(std::move(dir)), fd_(fd), first_version_(first_version) {}

  const std::string dir_;
  int fd_;
  uint64_t first_version_;  // of the open segment
  int64_t bytes_appended_ = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_UPDATE_LOG_H_
