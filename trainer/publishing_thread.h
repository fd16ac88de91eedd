// The publishing thread: runs UpdatePublisher::Publish() on a thread of its
// own, so that turning a training step's changes into an update (trainer -
// mirror, encoding, the mirror's apply and checksum, the update log's
// append and the hand-off to subscribers) overlaps with the next step.
//
// A single slot: Submit() copies the trainer's tensors into a staging copy
// (the next step may change the trainer's own while the update is made) and
// hands them over; Wait() blocks until that update is published and returns
// its result. At most one update is in flight, and Submit() refuses a second
// one until Wait() has taken the first one's result, so updates go out one
// at a time, in the order submitted, each exactly what Publish() of the same
// tensors on the caller's thread would have made.
//
// The publisher's mirror belongs to the publishing thread from Submit()
// until Wait() returns: the caller must not read the mirror, nor call the
// publisher's Start(), Resume(), Replay() or Publish(), in between.
//
// Lifecycle: construct (starts the thread), Submit()/Wait() pairs, destroy
// (waits for the update in flight, if any, then joins the thread).
// Thread-safety: Submit(), Wait() and busy() are called by one thread (the
// training thread, which owns this object); the hand-off between it and the
// publishing thread is synchronized inside.
#ifndef CONTRAIL_TRAINER_PUBLISHING_THREAD_H_
#define CONTRAIL_TRAINER_PUBLISHING_THREAD_H_

#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tensor_views.h"
#include "trainer/update_publisher.h"

namespace contrail {

class PublishingThread {
 public:
  // What one submitted update came to.
  struct Result {
    // Publish()'s result, or its error (the publisher is then closed when
    // the update log refused it, as on the caller's thread).
    absl::StatusOr<UpdatePublisher::PublishResult> published;
    // Wall time of Publish() on the publishing thread.
    absl::Duration publish_time;
  };

  // `publisher` must outlive this object.
  explicit PublishingThread(UpdatePublisher* publisher);
  // Waits for the update in flight, then stops and joins the thread.
  ~PublishingThread();
  PublishingThread(const PublishingThread&) = delete;
  PublishingThread& operator=(const PublishingThread&) = delete;

  // Copies `trainer` (the publisher's tensor sizes) and starts publishing
  // it. FAILED_PRECONDITION while an earlier update's result has not been
  // taken by Wait().
  absl::Status Submit(const ConstTensorViews& trainer) ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until the submitted update is published and returns its result;
  // nullopt when nothing was submitted since the last Wait().
  std::optional<Result> Wait() ABSL_LOCKS_EXCLUDED(mu_);

  // True from Submit() until Wait() takes its result.
  bool busy() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The publishing thread's body.
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_ || stopping_;
  }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_; }

  // Constant after construction.
  UpdatePublisher* const publisher_;

  // The trainer's tensors as submitted: written by the caller's thread in
  // Submit() while nothing is pending, read by the publishing thread while
  // something is; the hand-off through mu_ orders the two.
  std::vector<std::vector<float>> staging_;
  ConstTensorViews staging_views_;

  // Protects the hand-off between the caller's thread and the publishing
  // thread.
  mutable absl::Mutex mu_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;   // submitted, not yet published
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // the destructor runs
  // The finished update's result, until Wait() takes it.
  std::optional<Result> result_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;  // last: starts once everything above is built
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_PUBLISHING_THREAD_H_
