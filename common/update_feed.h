// What the UpdateService streams from: a source of versioned updates that
// tells a subscriber, given what it holds, what it misses. The trainer's
// UpdatePublisher is one; a relaying server's UpdateRelay is another, so that
// one UpdateServiceImpl serves both a star and a tree of servers.
//
// Thread-safety: implementations are thread-safe; Next() may be called by
// many threads at once. A server that does not keep a thread waiting per
// subscriber (UpdateServiceImpl) calls Next() without waiting and learns
// from a listener when to try again.
#ifndef CONTRAIL_COMMON_UPDATE_FEED_H_
#define CONTRAIL_COMMON_UPDATE_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/contrail.pb.h"

namespace contrail {

class UpdateFeed {
 public:
  virtual ~UpdateFeed() = default;

  // Waits up to `timeout` for something a subscriber holding (`have_run`,
  // `have_version`, `have_fingerprint`; zeros when it holds nothing) has
  // not got, and fills `out` with the messages to send, in order: either
  // the retained updates after `have_version`, or a snapshot of the latest
  // version. Leaves `out` empty on timeout. UNAVAILABLE once the feed is
  // closed.
  virtual absl::Status Next(uint64_t have_run, uint64_t have_version,
                            uint64_t have_fingerprint, absl::Duration timeout,
                            std::vector<std::shared_ptr<const Update>>* out) = 0;

  // Calls `listener` after every change that may give a subscriber
  // something new or end its subscription (a new head, an update, closing),
  // on the thread that made the change (the trainer's publishing thread, a
  // relay's apply thread), after the feed's own lock is released. A
  // listener must be cheap and must never block for long or call back into
  // AddListener()/RemoveListener(): note the change and wake whoever calls
  // Next(). Returns the handle for RemoveListener().
  virtual uint64_t AddListener(std::function<void()> listener) = 0;

  // Once this returns, the listener of `handle` is neither running nor
  // ever called again. No-op for an unknown handle.
  virtual void RemoveListener(uint64_t handle) = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_UPDATE_FEED_H_
