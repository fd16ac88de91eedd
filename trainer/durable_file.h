// Files that survive kill -9 and power loss: whole files written atomically
// (temporary file, fsync, rename, fsync of the directory) and checked on
// reading (a magic, the length and an xxHash64 of the payload), and
// append-only record files. Used by the trainer's checkpoints and update
// log. Stateless functions; thread-safe for different paths.
#ifndef CONTRAIL_TRAINER_DURABLE_FILE_H_
#define CONTRAIL_TRAINER_DURABLE_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace contrail {

// Creates `dir` (and its parents) if missing. INTERNAL with errno's text.
absl::Status MakeDirs(const std::string& dir);

// The names of the files in `dir` that start with `prefix` and end with
// `suffix`, sorted.
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir,
                                                   absl::string_view prefix,
                                                   absl::string_view suffix);

// Writes `payload` to `path` atomically, framed as a checked file: a
// reader sees the old file or the whole new one.
absl::Status WriteCheckedFile(const std::string& path, absl::string_view payload);
// The payload of a file WriteCheckedFile wrote: NOT_FOUND when missing,
// DATA_LOSS when truncated or corrupt.
absl::StatusOr<std::string> ReadCheckedFile(const std::string& path);

// Writes all of `data` to `fd`, retrying short writes and EINTR; false
// (errno set) on an error.
bool WriteAll(int fd, absl::string_view data);

// fsyncs `dir`, so that files created, renamed or deleted in it stay so.
absl::Status SyncDir(const std::string& dir);

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_DURABLE_FILE_H_
