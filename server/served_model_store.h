// Where a server keeps the model it serves across restarts (--state_dir), so
// that a restarted server answers at once, even with its trainer down, and
// then continues from the version it holds with deltas.
//
// A directory with two files: `served_model`, the newest save, and
// `served_model.prev`, the save before it, kept as a fallback. Each holds a
// snapshot exactly as a trainer sends one (an Update: spec, every tensor
// dense, version, run, payload checksum, model checksum, and the module
// bytes of a "torchscript:" model), framed by a header of its own:
//
//   bytes  0-7   magic "CTRLSRV1"
//   bytes  8-15  when the saved version was applied, Unix microseconds
//   bytes 16-23  payload size in bytes
//   bytes 24-31  xxHash64 of bytes 8-23 and the payload
//   bytes 32-    payload: the serialized snapshot
//   (integers little-endian)
//
// Save() writes `served_model.tmp`, fsyncs it, hard-links the current file
// to `served_model.prev`, renames the temporary file over `served_model`
// and fsyncs the directory: at every moment `served_model` is a whole file,
// the old one or the new one, and a crash loses at most the save in
// progress.
//
// Restore() tries `served_model`, then `served_model.prev`. A file that is
// truncated, fails its checksum, or that the live model refuses (its
// checksums fail, or this binary builds another model from its spec: a
// fingerprint that differs) is skipped with one log line and renamed to
// `<name>.bad`, so that the next Save() does not keep it as the fallback.
// A marker file, `restoring`, names the file being restored while it loads:
// should a start die inside LibTorch while loading a module (which no
// catch clause can stop), the next start finds the marker, sets that file
// aside as `<name>.crashed` and does not load it again, so that a bad file
// cannot put the server into a crash loop.
//
// Thread-compatible: the daemon restores before it starts serving, then one
// thread (the saver's) saves.
#ifndef CONTRAIL_SERVER_SERVED_MODEL_STORE_H_
#define CONTRAIL_SERVER_SERVED_MODEL_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"

namespace contrail {

class ServedModelStore {
 public:
  struct Options {
    // The directory of the state files; created (one level) when missing.
    std::string dir;
  };

  // A snapshot read back from a file.
  struct Saved {
    Update snapshot;
    absl::Time applied_at;  // when the saved version was applied
  };

  // Checks `options` (INVALID_ARGUMENT for an empty dir) and creates the
  // directory when missing; FAILED_PRECONDITION naming it when it is not a
  // directory this process can create and write files in.
  static absl::StatusOr<std::unique_ptr<ServedModelStore>> Create(const Options& options);

  ServedModelStore(const ServedModelStore&) = delete;
  ServedModelStore& operator=(const ServedModelStore&) = delete;

  // Saves `version` (which must stay unchanged meanwhile: the current
  // version of a LiveModel, held) as the newest file. INTERNAL naming the
  // file and the system error when a write, fsync or rename fails; the
  // newest file is then the one before the call (which may also have
  // become the fallback).
  absl::Status Save(const LiveModel::Version& version) const;
  // Saves `snapshot` as it is; for Save() and for tests that need a file
  // a server would not write.
  absl::Status SaveSnapshot(const Update& snapshot, absl::Time applied_at) const;

  // Reads and checks the file at `path`: NOT_FOUND when it does not exist,
  // DATA_LOSS naming the defect when it is truncated, too long, not a state
  // file, fails its checksum or does not hold a snapshot.
  static absl::StatusOr<Saved> Read(const std::string& path);

  // Restores into `live` the newest file that reads back whole and that
  // `live` accepts (see the class comment), logging one line for each file
  // skipped (and one when there is nothing to restore); returns the
  // version restored, or NOT_FOUND when there is none (the server then
  // starts empty).
  absl::StatusOr<uint64_t> Restore(LiveModel* live) const;

  // <dir>/served_model and <dir>/served_model.prev.
  std::string current_path() const;
  std::string previous_path() const;

 private:
  explicit ServedModelStore(const Options& options) : options_(options) {}

  // Sets `path` aside as `path` + `suffix`, logging `why` (which names it).
  void SetAside(const std::string& path, const std::string& suffix,
                const std::string& why) const;

  // Constant after construction.
  const Options options_;
};

// The snapshot that reproduces `version` exactly: what the trainer would
// send a new subscriber at that version.
Update SnapshotOf(const LiveModel::Version& version);

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVED_MODEL_STORE_H_
