#include "trainer/checkpoint_store.h"

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "trainer/durable_file.h"

namespace contrail {
namespace {

constexpr char kPrefix[] = "checkpoint-";
constexpr char kSuffix[] = ".ckpt";

}  // namespace

std::string CheckpointStore::Path(uint64_t version) const {
  return absl::StrFormat("%s/%s%020u%s", dir_, kPrefix, version, kSuffix);
}

absl::StatusOr<std::vector<uint64_t>> CheckpointStore::Versions() const {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir_, kPrefix, kSuffix);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> versions;
  for (const std::string& name : *names) {
    uint64_t version = 0;
    const size_t digits = name.size() - (sizeof(kPrefix) - 1) - (sizeof(kSuffix) - 1);
    if (absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1, digits), &version)) {
      versions.push_back(version);
    }
  }
  return versions;  // sorted: the names are zero-padded
}

absl::Status CheckpointStore::Write(const TrainerCheckpoint& checkpoint) const {
  const absl::Status written =
      WriteCheckedFile(Path(checkpoint.version()), checkpoint.SerializeAsString());
  if (!written.ok()) return written;
  absl::StatusOr<std::vector<uint64_t>> versions = Versions();
  if (!versions.ok()) return versions.status();
  for (size_t i = 0; i + kKept < versions->size(); ++i) {
    unlink(Path((*versions)[i]).c_str());
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainerCheckpoint> CheckpointStore::LoadNewest() const {
  absl::StatusOr<std::vector<uint64_t>> versions = Versions();
  if (!versions.ok()) return versions.status();
  if (versions->empty()) {
    return absl::NotFoundError(absl::StrCat("no checkpoint in ", dir_));
  }
  absl::Status last_error;
  for (auto it = versions->rbegin(); it != versions->rend(); ++it) {
    absl::StatusOr<std::string> payload = ReadCheckedFile(Path(*it));
    TrainerCheckpoint checkpoint;
    if (payload.ok() && !checkpoint.ParseFromString(*payload)) {
      payload = absl::DataLossError(absl::StrCat(Path(*it), ": not a checkpoint"));
    }
    if (payload.ok()) return checkpoint;
    last_error = payload.status();
    spdlog::error("checkpoint {} is unusable ({}); trying the one before", Path(*it),
                  std::string(payload.status().message()));
  }
  return absl::DataLossError(
      absl::StrCat("every checkpoint in ", dir_, " is damaged; the last: ",
                   last_error.message()));
}

}  // namespace contrail
