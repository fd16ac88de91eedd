#include "server/served_model_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/update_codec.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the state file's header is written in host order: little-endian hosts only"
#endif

constexpr char kMagic[8] = {'C', 'T', 'R', 'L', 'S', 'R', 'V', '1'};
constexpr size_t kHeaderSize = 32;
constexpr char kCurrent[] = "served_model";
constexpr char kPrevious[] = "served_model.prev";
constexpr char kTemporary[] = "served_model.tmp";
constexpr char kPreviousTemporary[] = "served_model.prev.tmp";
constexpr char kMarker[] = "restoring";

std::string Errno() { return std::strerror(errno); }

uint64_t LoadU64(const char* bytes) {
  uint64_t v;
  std::memcpy(&v, bytes, sizeof(v));
  return v;
}

void StoreU64(uint64_t v, char* bytes) { std::memcpy(bytes, &v, sizeof(v)); }

// xxHash64 of the header's fields after the magic, then the payload.
uint64_t FileChecksum(const char* fields, const std::string& payload) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, /*seed=*/0);
  XXH64_update(state, fields, 16);
  XXH64_update(state, payload.data(), payload.size());
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}

absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", Errno()));
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

absl::Status FsyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", dir, ": ", Errno()));
  const int synced = ::fsync(fd);
  const std::string error = Errno();
  ::close(fd);
  if (synced != 0) return absl::InternalError(absl::StrCat("cannot fsync ", dir, ": ", error));
  return absl::OkStatus();
}

// Writes `contents` to `path` (replacing it) and fsyncs it.
absl::Status WriteDurably(const std::string& path, const std::string& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", path, ": ", Errno()));
  absl::Status status = WriteAll(fd, contents.data(), contents.size(), path);
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat("cannot fsync ", path, ": ", Errno()));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat("cannot close ", path, ": ", Errno()));
  }
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

}  // namespace

Update SnapshotOf(const LiveModel::Version& version) {
  const Model& model = *version.model;
  Update snapshot;
  snapshot.set_version(version.version);
  snapshot.set_base_version(0);
  snapshot.set_snapshot(true);
  snapshot.set_fingerprint(model.spec().fingerprint());
  snapshot.set_encoding(FP32_ASSIGN);
  snapshot.set_run(version.run);
  const ConstTensorViews views = model.Views();
  for (size_t t = 0; t < views.size(); ++t) {
    AppendDenseTensor(static_cast<uint32_t>(t), views[t], &snapshot);
  }
  SealUpdate(&snapshot);
  *snapshot.mutable_spec() = model.spec();
  snapshot.set_model_checksum(version.checksum);
  snapshot.set_torchscript_module(model.torchscript_module());
  return snapshot;
}

absl::StatusOr<std::unique_ptr<ServedModelStore>> ServedModelStore::Create(
    const Options& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("state_dir must not be empty");
  if (::mkdir(options.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create state_dir ", options.dir, ": ", Errno()));
  }
  struct stat info;
  if (::stat(options.dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", options.dir, " is not a directory"));
  }
  if (::access(options.dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write files in state_dir ", options.dir, ": ", Errno()));
  }
  return std::unique_ptr<ServedModelStore>(new ServedModelStore(options));
}

std::string ServedModelStore::current_path() const {
  return absl::StrCat(options_.dir, "/", kCurrent);
}

std::string ServedModelStore::previous_path() const {
  return absl::StrCat(options_.dir, "/", kPrevious);
}

absl::Status ServedModelStore::Save(const LiveModel::Version& version) const {
  return SaveSnapshot(SnapshotOf(version), version.applied_at);
}

absl::Status ServedModelStore::SaveSnapshot(const Update& snapshot,
                                            absl::Time applied_at) const {
  std::string payload;
  if (!snapshot.SerializeToString(&payload)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the snapshot of version ", snapshot.version()));
  }
  std::string file(kHeaderSize, '\0');
  std::memcpy(&file[0], kMagic, sizeof(kMagic));
  StoreU64(static_cast<uint64_t>(absl::ToUnixMicros(applied_at)), &file[8]);
  StoreU64(payload.size(), &file[16]);
  StoreU64(FileChecksum(&file[8], payload), &file[24]);
  file += payload;

  const std::string temporary = absl::StrCat(options_.dir, "/", kTemporary);
  const absl::Status written = WriteDurably(temporary, file);
  if (!written.ok()) return written;
  const std::string current = current_path();
  if (Exists(current)) {
    // The current file becomes the fallback: a hard link under a temporary
    // name, renamed over the old fallback, so that `current` never goes
    // missing.
    const std::string previous_temporary =
        absl::StrCat(options_.dir, "/", kPreviousTemporary);
    ::unlink(previous_temporary.c_str());
    if (::link(current.c_str(), previous_temporary.c_str()) != 0 ||
        ::rename(previous_temporary.c_str(), previous_path().c_str()) != 0) {
      const std::string error = Errno();
      ::unlink(temporary.c_str());
      return absl::InternalError(
          absl::StrCat("cannot keep ", current, " as ", previous_path(), ": ", error));
    }
  }
  if (::rename(temporary.c_str(), current.c_str()) != 0) {
    const std::string error = Errno();
    ::unlink(temporary.c_str());
    return absl::InternalError(
        absl::StrCat("cannot rename ", temporary, " to ", current, ": ", error));
  }
  return FsyncDirectory(options_.dir);
}

absl::StatusOr<ServedModelStore::Saved> ServedModelStore::Read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return absl::DataLossError(absl::StrCat("cannot open ", path, ": ", Errno()));
  }
  std::string file;
  std::vector<char> buffer(1 << 20);
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string error = Errno();
      ::close(fd);
      return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", error));
    }
    if (n == 0) break;
    file.append(buffer.data(), static_cast<size_t>(n));
  }
  ::close(fd);

  if (file.size() < kHeaderSize) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: ", file.size(),
                                            " bytes, shorter than the header"));
  }
  if (std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, " is not a contrail server state file"));
  }
  const uint64_t payload_size = LoadU64(&file[16]);
  if (payload_size != file.size() - kHeaderSize) {
    return absl::DataLossError(absl::StrCat(
        path, " is ", file.size() < kHeaderSize + payload_size ? "truncated" : "too long",
        ": its header announces ", payload_size, " payload bytes, it holds ",
        file.size() - kHeaderSize));
  }
  const std::string payload = file.substr(kHeaderSize);
  const uint64_t checksum = FileChecksum(&file[8], payload);
  if (checksum != LoadU64(&file[24])) {
    return absl::DataLossError(absl::StrCat(path, " fails its checksum: computed ",
                                            absl::Hex(checksum), ", stored ",
                                            absl::Hex(LoadU64(&file[24]))));
  }
  Saved saved;
  if (!saved.snapshot.ParseFromString(payload) || !saved.snapshot.snapshot()) {
    return absl::DataLossError(absl::StrCat(path, " does not hold a snapshot"));
  }
  saved.applied_at = absl::FromUnixMicros(static_cast<int64_t>(LoadU64(&file[8])));
  return saved;
}

void ServedModelStore::SetAside(const std::string& path, const std::string& suffix,
                                const std::string& why) const {
  const std::string aside = path + suffix;
  if (::rename(path.c_str(), aside.c_str()) == 0) {
    spdlog::warn("state: {}; ignoring it (moved to {})", why, aside);
  } else {
    spdlog::warn("state: {}; ignoring it (cannot move it to {}: {})", why, aside, Errno());
  }
}

absl::StatusOr<uint64_t> ServedModelStore::Restore(LiveModel* live) const {
  const std::string marker = absl::StrCat(options_.dir, "/", kMarker);
  {
    // A marker left behind: the last start died while loading that file.
    absl::StatusOr<std::string> crashed = [&]() -> absl::StatusOr<std::string> {
      std::FILE* file = std::fopen(marker.c_str(), "r");
      if (file == nullptr) return absl::NotFoundError("no marker");
      char name[256] = {};
      const size_t n = std::fread(name, 1, sizeof(name) - 1, file);
      std::fclose(file);
      return std::string(name, n);
    }();
    if (crashed.ok()) {
      const std::string path = absl::StrCat(options_.dir, "/", *crashed);
      if ((*crashed == kCurrent || *crashed == kPrevious) && Exists(path)) {
        SetAside(path, ".crashed",
                 absl::StrCat("the last start died while loading ", path));
      }
      ::unlink(marker.c_str());
    }
  }
  for (const char* name : {kCurrent, kPrevious}) {
    const std::string path = absl::StrCat(options_.dir, "/", name);
    absl::StatusOr<Saved> saved = Read(path);
    if (absl::IsNotFound(saved.status())) continue;
    if (!saved.ok()) {
      SetAside(path, ".bad", std::string(saved.status().message()));
      continue;
    }
    {
      std::FILE* file = std::fopen(marker.c_str(), "w");
      if (file != nullptr) {
        std::fputs(name, file);
        std::fflush(file);
        ::fsync(fileno(file));
        std::fclose(file);
      }
    }
    const absl::Status restored = live->Restore(saved->snapshot, saved->applied_at);
    ::unlink(marker.c_str());
    if (!restored.ok()) {
      SetAside(path, ".bad", absl::StrCat(path, " does not load: ", restored.ToString()));
      continue;
    }
    spdlog::info("state: restored version {} (applied {}) from {}",
                 saved->snapshot.version(),
                 absl::FormatTime(saved->applied_at, absl::UTCTimeZone()), path);
    return saved->snapshot.version();
  }
  spdlog::info("state: no saved model to restore in {}; waiting for the trainer's snapshot",
               options_.dir);
  return absl::NotFoundError(absl::StrCat("no saved model in ", options_.dir));
}

}  // namespace contrail
