// Saves a server's live model to its ServedModelStore (--state_dir): every
// `interval`, when the version served has moved since the last save, and
// once more when stopped, so that a restart loses at most `interval` of
// updates (which the trainer then sends again as deltas).
//
// A save reads the current version while predictions go on (it holds a
// reference, so the version stays unchanged; the apply path then clones
// instead of recycling it, once). A failed save is logged and retried at
// the next tick.
//
// Lifecycle: Create(); MarkSaved() the version restored at start, if any;
// Start() launches the saver thread, which owns the writes to the store;
// Stop() (or the destructor) interrupts the wait, joins the thread and
// saves a last time. Start() and Stop() are called from one thread;
// saved_version() and saves() are thread-safe.
#ifndef CONTRAIL_SERVER_SERVED_MODEL_SAVER_H_
#define CONTRAIL_SERVER_SERVED_MODEL_SAVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/live_model.h"
#include "server/served_model_store.h"

namespace contrail {

class ServedModelSaver {
 public:
  struct Options {
    // How often the saver looks for a new version to save.
    absl::Duration interval = absl::Seconds(5);
    // The clock the waits run on; must outlive the saver.
    Clock* clock = Clock::Real();
  };

  // Checks `options` (INVALID_ARGUMENT naming the field) and builds a saver
  // of `live` into `store`, both of which must outlive it.
  static absl::StatusOr<std::unique_ptr<ServedModelSaver>> Create(
      const Options& options, const LiveModel* live, const ServedModelStore* store);

  ~ServedModelSaver();
  ServedModelSaver(const ServedModelSaver&) = delete;
  ServedModelSaver& operator=(const ServedModelSaver&) = delete;

  // Records that `version` of `run` is on disk already (it was restored
  // from there). Call before Start().
  void MarkSaved(uint64_t run, uint64_t version);

  // Starts saving every Options::interval. Call at most once.
  void Start();
  // Stops the saver thread, then saves the current version if it moved;
  // idempotent.
  void Stop();

  // Saves the current version now unless it is the one saved last (or
  // there is none); the saver thread's step, public for tests that drive
  // it without one. Not to be called while the thread runs.
  absl::Status SaveIfChanged();

  // The version last saved (or marked saved); 0 before any.
  uint64_t saved_version() const { return saved_version_.load(); }
  // Files written.
  uint64_t saves() const { return saves_.load(); }

 private:
  ServedModelSaver(const Options& options, const LiveModel* live,
                   const ServedModelStore* store)
      : options_(options), live_(live), store_(store) {}

  void Run();

  // Constant after construction.
  const Options options_;
  const LiveModel* const live_;
  const ServedModelStore* const store_;

  std::thread thread_;
  absl::Notification stop_;
  bool stopped_ = false;  // Start()/Stop() thread only

  // Saver thread (or the caller of SaveIfChanged()) only: the run of the
  // version last saved, which with saved_version_ names it.
  uint64_t saved_run_ = 0;
  std::atomic<uint64_t> saved_version_{0};
  std::atomic<uint64_t> saves_{0};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_SERVED_MODEL_SAVER_H_
