// The server's side of deployment: subscribes to a trainer's updates and
// applies each to the LiveModel.
//
// It subscribes with the version it holds (0 when empty) and so receives a
// snapshot or the updates it missed. An update that does not apply (another
// base version, fingerprint or run, a failed checksum) is dropped and the
// subscriber resubscribes from the version it has. When the trainer goes
// away, the LiveModel keeps serving its last version while the subscriber
// reconnects with exponential backoff.
//
// Lifecycle: Start() launches the apply thread, which owns the stream and
// is the only writer of the LiveModel; Stop() (or the destructor) cancels
// the stream and joins. Counters are thread-safe.
#ifndef CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_
#define CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/contrail.grpc.pb.h"
#include "server/live_model.h"

namespace contrail {

class UpdateSubscriber {
 public:
  struct Options {
    // host:port of the trainer.
    std::string trainer = "127.0.0.1:50051";
    // How this server names itself in the trainer's logs.
    std::string name = "server";
    // First wait before reconnecting to a trainer that went away; doubles
    // after every failed attempt up to max_backoff.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
  };

  // `live` must outlive the subscriber.
  UpdateSubscriber(const Options& options, LiveModel* live);
  ~UpdateSubscriber();
  UpdateSubscriber(const UpdateSubscriber&) = delete;
  UpdateSubscriber& operator=(const UpdateSubscriber&) = delete;

  void Start();
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t updates_applied() const { return updates_applied_.load(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }
  uint64_t resyncs() const { return resyncs_.load(); }
  bool connected() const { return connected_.load(); }

 private:
  void Run();
  // One subscription, until the stream ends or an update is rejected;
  // true when it ended by rejecting an update.
  bool SubscribeOnce(bool* received_any);

  // Constant after construction.
  const Options options_;
  LiveModel* const live_;
  const std::unique_ptr<UpdateService::Stub> stub_;

  std::thread thread_;
  absl::Notification stop_;
  // Protects the context of the subscription in progress, for Stop().
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::atomic<uint64_t> updates_applied_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> resyncs_{0};
  std::atomic<bool> connected_{false};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_
