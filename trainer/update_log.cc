#include "trainer/update_log.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "trainer/durable_file.h"

namespace contrail {
namespace {

constexpr char kPrefix[] = "updates-";
constexpr char kSuffix[] = ".log";
constexpr size_t kRecordHeader = sizeof(uint32_t) + sizeof(uint64_t);

std::string SegmentName(uint64_t first_version) {
  return absl::StrFormat("%s%020u%s", kPrefix, first_version, kSuffix);
}

// The first version of segment `name`, or 0 when it is not one.
uint64_t SegmentFirst(const std::string& name) {
  uint64_t first = 0;
  const size_t prefix = sizeof(kPrefix) - 1;
  const size_t suffix = sizeof(kSuffix) - 1;
  if (name.size() <= prefix + suffix ||
      !absl::SimpleAtoi(name.substr(prefix, name.size() - prefix - suffix), &first)) {
    return 0;
  }
  return first;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<int> OpenSegment(const std::string& dir, uint64_t first_version) {
  const std::string path = absl::StrCat(dir, "/", SegmentName(first_version));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", path));
  if (absl::Status synced = SyncDir(dir); !synced.ok()) {
    close(fd);
    return synced;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UpdateLog>> UpdateLog::Open(const std::string& dir,
                                                           uint64_t next_version) {
  absl::StatusOr<int> fd = OpenSegment(dir, next_version);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<UpdateLog>(new UpdateLog(dir, *fd, next_version));
}

UpdateLog::~UpdateLog() {
  if (fd_ >= 0) close(fd_);
}

absl::Status UpdateLog::Append(const Update& update) {
  const std::string payload = update.SerializeAsString();
  const uint32_t length = static_cast<uint32_t>(payload.size());
  const uint64_t hash = XXH64(payload.data(), payload.size(), 0);
  std::string record;
  record.reserve(kRecordHeader + payload.size());
  record.append(reinterpret_cast<const char*>(&length), sizeof(length));
  record.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
  record.append(payload);
  if (!WriteAll(fd_, record)) return Errno("cannot append to the update log");
  if (fdatasync(fd_) != 0) return Errno("cannot fsync the update log");
  bytes_appended_ += static_cast<int64_t>(record.size());
  return absl::OkStatus();
}

absl::Status UpdateLog::Rotate(uint64_t next_version) {
  if (next_version == first_version_) return absl::OkStatus();
  absl::StatusOr<int> fd = OpenSegment(dir_, next_version);
  if (!fd.ok()) return fd.status();
  close(fd_);
  fd_ = *fd;
  first_version_ = next_version;
  return absl::OkStatus();
}

absl::Status UpdateLog::DropThrough(uint64_t version) {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir_, kPrefix, kSuffix);
  if (!names.ok()) return names.status();
  // Segment i holds versions [first_i, first_{i+1}): all <= version when
  // the next one starts at or below version + 1.
  for (size_t i = 0; i + 1 < names->size(); ++i) {
    const uint64_t first = SegmentFirst((*names)[i]);
    const uint64_t next = SegmentFirst((*names)[i + 1]);
    if (first == 0 || first == first_version_ || next > version + 1) continue;
    const std::string path = absl::StrCat(dir_, "/", (*names)[i]);
    if (unlink(path.c_str()) != 0) return Errno(absl::StrCat("cannot delete ", path));
  }
  return SyncDir(dir_);
}

absl::StatusOr<std::vector<Update>> UpdateLog::ReadAfter(const std::string& dir,
                                                         uint64_t after) {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir, kPrefix, kSuffix);
  if (!names.ok()) return names.status();
  std::vector<Update> updates;
  for (const std::string& name : *names) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::InternalError(absl::StrCat("cannot open ", path));
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    size_t at = 0;
    while (at < data.size()) {
      uint32_t length = 0;
      uint64_t hash = 0;
      if (data.size() - at < kRecordHeader) break;
      std::memcpy(&length, data.data() + at, sizeof(length));
      std::memcpy(&hash, data.data() + at + sizeof(length), sizeof(hash));
      if (data.size() - at - kRecordHeader < length) break;
      const char* payload = data.data() + at + kRecordHeader;
      Update update;
      if (XXH64(payload, length, 0) != hash ||
          !update.ParseFromArray(payload, static_cast<int>(length))) {
        break;
      }
      at += kRecordHeader + length;
      if (update.version() > after) updates.push_back(std::move(update));
    }
    if (at < data.size()) {
      spdlog::warn("update log {}: a torn or corrupt record at byte {} of {}; the "
                   "updates before it are kept (a crash during an append: that update "
                   "was never published)",
                   path, at, data.size());
    }
  }
  return updates;
}

}  // namespace contrail
