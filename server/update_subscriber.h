// The server's side of deployment: subscribes to a trainer's updates and
// applies each to the LiveModel.
//
// It subscribes with the version it holds (0 when empty) and so receives a
// snapshot or the updates it missed. An update that does not apply (another
// base version, fingerprint or run, a failed checksum) is dropped and the
// subscriber resubscribes from the version it has. When the trainer goes
// away, the LiveModel keeps serving its last version while the subscriber
// reconnects. Every resubscription, after a rejected update as after a
// stream that ended or never connected, waits first: exponential backoff
// with jitter (server/backoff.h), started over once an update applies or a
// subscription has stayed open for Backoff::Options::max (a healthy link to
// a trainer with nothing new), so that a trainer that keeps sending what a
// server cannot apply, or keeps refusing or dropping it, is not flooded
// with subscriptions, while one that restarts after a quiet hour is found
// again at once.
//
// Liveness: the channel MakeChannel() builds pings the trainer over HTTP/2
// every Keepalive::interval while a subscription is open, however long the
// trainer has nothing to send, and closes the connection when a ping goes
// unanswered for Keepalive::timeout. A trainer that froze, or a link that
// died without a FIN or RST (a half-open connection), so ends the
// subscription within interval + timeout; the subscriber then backs off and
// reconnects as after any other failure, and connected() turns false at
// once.
//
// The trainer is reached over a channel given at Create(): MakeChannel() in
// production, a channel to an in-process server in tests. Waits run on the
// Clock of the options.
//
// The stream is read with gRPC's callback API: gRPC's threads queue each
// update as it arrives, and the apply thread takes all that are queued at
// once and applies the consecutive updates among them as one swap
// (LiveModel::ApplyBatch; one at a time through an UpdateApplier), so that
// a burst costs one wake-up, one copy and one model checksum. At most
// Options::max_queued updates wait; beyond that the subscriber stops reading
// and HTTP/2 flow control holds the trainer back.
//
// Lifecycle: Create(), then Start() launches the apply thread, which owns
// the stream and the backoff and is the only writer of the LiveModel; Stop()
// (or the destructor) cancels the stream, interrupts a wait and joins.
// Start() and Stop() are called from one thread; the counters are
// thread-safe.
#ifndef CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_
#define CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/contrail.grpc.pb.h"
#include "server/backoff.h"
#include "server/live_model.h"

namespace contrail {

// Where a subscriber applies what it receives, when that is more than the
// LiveModel: a relay (server/update_relay.h) applies each update to it and
// passes it on. Called by the apply thread only.
class UpdateApplier {
 public:
  virtual ~UpdateApplier() = default;
  // As LiveModel::Apply(): an error means the update did not apply.
  virtual absl::Status Apply(const Update& update) = 0;
};

class UpdateSubscriber {
 public:
  // Told of every update (snapshots included) the subscriber applied, on
  // the apply thread, right after the LiveModel took it; for metrics
  // (server/server_metrics.h). Must not block.
  class Observer {
   public:
    virtual ~Observer() = default;
    // `update` arrived as `wire_bytes` bytes, took `apply_time` to apply
    // (its share of the batch it was applied in) and was served from
    // `applied_at` (wall time, comparable with Update.publish_time_us).
    virtual void Applied(const Update& update, uint64_t wire_bytes,
                         absl::Duration apply_time, absl::Time applied_at) = 0;
  };

  struct Options {
    // host:port of the trainer, as logs name it (the channel given to
    // Create() is what connects).
    std::string trainer = "127.0.0.1:50051";
    // How this server names itself in the trainer's logs.
    std::string name = "server";
    // The bearer token sent with each subscription (a token with the
    // subscribe role: common/access_policy.h); empty sends none.
    std::string token;
    // Waits before each resubscription.
    Backoff::Options backoff;
    // The clock the waits run on; must outlive the subscriber.
    Clock* clock = Clock::Real();
    // Told of each update applied; null: nobody. Must outlive the
    // subscriber.
    Observer* observer = nullptr;
    // Updates received and not yet applied, at most; then reading pauses.
    int max_queued = 256;
    // What each received update is applied to, if not straight to the
    // LiveModel given to Create() (which it must then write); null: the
    // LiveModel. Must outlive the subscriber.
    UpdateApplier* applier = nullptr;
  };

  // The keepalive pings of the update channel. A trainer accepts pings
  // down to one a second (common/daemon.h).
  struct Keepalive {
    // Between pings while a subscription is open.
    absl::Duration interval = absl::Seconds(2);
    // How long a ping may go unanswered before the link counts as dead.
    absl::Duration timeout = absl::Seconds(2);
  };

  // INVALID_ARGUMENT naming the field unless interval >= 1 s (what trainers
  // accept) and timeout > 0.
  static absl::Status CheckKeepalive(const Keepalive& keepalive);

  // A channel to `trainer` ("host:port") fit for update streams: no limit
  // on the size of a received snapshot, `keepalive` pings (unlimited in
  // number while the trainer has nothing to send), and gRPC's own
  // reconnect backoff kept within the subscriber's defaults. Secured by
  // `credentials` (common/transport_security.h); null is plaintext.
  static std::shared_ptr<grpc::Channel> MakeChannel(
      const std::string& trainer, const Keepalive& keepalive,
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  // The same with the default Keepalive.
  static std::shared_ptr<grpc::Channel> MakeChannel(const std::string& trainer);

  // Checks `options` (INVALID_ARGUMENT naming the field) and builds a
  // subscriber that follows the trainer on `channel` into `live`, which
  // must outlive it. Connects nothing before Start().
  static absl::StatusOr<std::unique_ptr<UpdateSubscriber>> Create(
      const Options& options, std::shared_ptr<grpc::Channel> channel,
      LiveModel* live);

  ~UpdateSubscriber();
  UpdateSubscriber(const UpdateSubscriber&) = delete;
  UpdateSubscriber& operator=(const UpdateSubscriber&) = delete;

  // Starts following the trainer. Call at most once.
  void Start();
  // Stops following it and joins the apply thread; idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Updates (snapshots included) applied.
  uint64_t updates_applied() const { return updates_applied_.load(); }
  // Wire bytes of every update received, applied or not.
  uint64_t bytes_received() const { return bytes_received_.load(); }
  // Updates rejected, each followed by a resubscription.
  uint64_t resyncs() const { return resyncs_.load(); }
  // True while a subscription is open on a live connection to the trainer,
  // whether or not the trainer has had anything to send on it.
  bool connected() const;

 private:
  // How one subscription ended.
  struct Ended {
    bool rejected = false;  // an update did not apply
    bool applied = false;   // at least one update applied
    absl::Duration lasted;  // from the call to its end, on the options' clock
    std::string reason;     // why it ended, for the log
  };

  UpdateSubscriber(const Options& options, Backoff backoff,
                   std::shared_ptr<grpc::Channel> channel, LiveModel* live);

  // One subscription's call: what gRPC's threads read, queued for the
  // apply thread (defined in the .cc).
  class Stream;

  void Run();
  // One subscription, until the stream ends, an update is rejected or
  // Stop() cancels it.
  Ended SubscribeOnce() ABSL_LOCKS_EXCLUDED(mu_);
  // Applies `updates` (taken from the queue in arrival order) and counts
  // them; the first error, naming the update, ends the subscription.
  absl::Status ApplyTaken(std::vector<Update>& updates, bool* applied_any);
  // Applies `run` (a snapshot alone, or consecutive updates; one at a time
  // through an applier) as one swap, and counts and reports it.
  absl::Status ApplyRun(absl::Span<const Update> run);
  // Counts and reports `updates` as applied in `apply_time` at `applied_at`.
  void Applied(absl::Span<const Update> updates, absl::Duration apply_time,
               absl::Time applied_at);
  // The version held, 0 when none.
  uint64_t HeldVersion() const;

  // Constant after construction.
  const Options options_;
  LiveModel* const live_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<UpdateService::Stub> stub_;

  // Apply thread only.
  Backoff backoff_;

  std::thread thread_;
  absl::Notification stop_;
  // Protects the context of the subscription in progress, for Stop().
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::atomic<uint64_t> updates_applied_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> resyncs_{0};
  // True while SubscribeOnce() has a call open.
  std::atomic<bool> subscribed_{false};
};

}  // namespace contrail

#endif  // CONTRAIL_SERVER_UPDATE_SUBSCRIBER_H_
