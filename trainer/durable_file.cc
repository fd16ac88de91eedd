#include "trainer/durable_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace contrail {
namespace {

constexpr char kMagic[8] = {'C', 'T', 'R', 'L', 'F', 'I', 'L', '1'};
constexpr size_t kHeaderBytes = sizeof(kMagic) + 2 * sizeof(uint64_t);

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("empty directory name");
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    const std::string prefix = dir.substr(0, i);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return Errno(absl::StrCat("cannot create ", prefix));
    }
  }
  struct stat info;
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir,
                                                   absl::string_view prefix,
                                                   absl::string_view suffix) {
  DIR* handle = opendir(dir.c_str());
  if (handle == nullptr) return Errno(absl::StrCat("cannot list ", dir));
  std::vector<std::string> names;
  while (const dirent* entry = readdir(handle)) {
    const std::string name = entry->d_name;
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, suffix)) {
      names.push_back(name);
    }
  }
  closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t written = write(fd, data.data(), data.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", dir));
  const int synced = fsync(fd);
  close(fd);
  if (synced != 0) return Errno(absl::StrCat("cannot fsync ", dir));
  return absl::OkStatus();
}

absl::Status WriteCheckedFile(const std::string& path, absl::string_view payload) {
  const std::string temporary = path + ".tmp";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", temporary));
  const uint64_t length = payload.size();
  const uint64_t hash = XXH64(payload.data(), payload.size(), 0);
  std::string header(kMagic, sizeof(kMagic));
  header.append(reinterpret_cast<const char*>(&length), sizeof(length));
  header.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
  if (!WriteAll(fd, header) || !WriteAll(fd, payload) || fsync(fd) != 0) {
    const absl::Status error = Errno(absl::StrCat("cannot write ", temporary));
    close(fd);
    unlink(temporary.c_str());
    return error;
  }
  close(fd);
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    const absl::Status error = Errno(absl::StrCat("cannot rename ", temporary));
    unlink(temporary.c_str());
    return error;
  }
  return SyncDir(Dirname(path));
}

absl::StatusOr<std::string> ReadCheckedFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string data = bytes.str();
  if (data.size() < kHeaderBytes || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a contrail state file, or truncated"));
  }
  uint64_t length, hash;
  std::memcpy(&length, data.data() + sizeof(kMagic), sizeof(length));
  std::memcpy(&hash, data.data() + sizeof(kMagic) + sizeof(length), sizeof(hash));
  if (data.size() - kHeaderBytes != length) {
    return absl::DataLossError(absl::StrCat(path, ": ", data.size() - kHeaderBytes,
                                            " bytes of payload, the header says ", length,
                                            " (truncated?)"));
  }
  std::string payload = data.substr(kHeaderBytes);
  if (XXH64(payload.data(), payload.size(), 0) != hash) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch (corrupt)"));
  }
  return payload;
}

}  // namespace contrail
