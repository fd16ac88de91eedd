// The source of --source=nats://HOST:PORT/STREAM/SUBJECT: labelled examples
// from a NATS JetStream stream, each message one serialized Example, read
// through a durable pull consumer with explicit acks.
//
// Semantics: at least once, for one trainer per durable consumer.
//  - Every message is validated against the model (ExampleValidator): a bad
//    one (or one that does not parse as an Example: "malformed") is counted
//    as rejected by reason and never handed out; a good one is handed out by
//    Read() in stream order. Rejections are described by stream sequence
//    ("example 17 (id x): label 12 is outside [0, 10)") and logged at most
//    every 10 s.
//  - A good example is acked only once Commit() says the trainer has
//    trained it, and acks go out in stream order: a rejected message is
//    acked once every message before it is. So the consumer's ack floor is
//    always exactly the trainer's progress.
//  - On Create(), an existing consumer of the same name is deleted and made
//    anew to start right after its ack floor (and never before where it
//    last started), so a restarted trainer -- after a crash or kill -9 too
//    -- resumes at once with the first example it had not committed,
//    instead of waiting for AckWait to redeliver. Examples read but not
//    committed before the crash are read again: trained at least once.
//  - AckWait is long (an hour by default): within one live trainer nothing
//    is redelivered; a redelivery that still comes (a trainer stalled past
//    AckWait) is recognised by its stream sequence and dropped.
//  - Two trainers on one durable consumer would delete each other's
//    consumer: give each trainer its own `durable` name.
// A missing stream is created (see common/jetstream_connection.h), so a
// trainer may start before its producers.
//
// Not thread-safe for Read() and Commit(): the training thread calls both.
// name() and counters() are thread-safe.
#ifndef CONTRAIL_TRAINER_NATS_SOURCE_H_
#define CONTRAIL_TRAINER_NATS_SOURCE_H_

#include <nats/nats.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/jetstream_connection.h"
#include "common/jetstream_url.h"
#include "trainer/example_source.h"
#include "trainer/example_validator.h"

namespace contrail {

class NatsSource final : public ExampleSource {
 public:
  struct Options {
    // nats://HOST[:PORT]/STREAM/SUBJECT (see common/jetstream_url.h); the
    // consumer filters on SUBJECT, which may have wildcards.
    std::string url;
    // The durable consumer's name: one per trainer.
    std::string durable = "contrail-trainer";
    // What every example must be: the model's per-example input shape
    // (e.g. [1, 28, 28]) and number of classes.
    std::vector<int64_t> input_shape;
    int64_t num_classes = 0;
    // Messages asked for per fetch round trip.
    int64_t fetch_batch = 256;
    // How long a delivered, unacked message waits before the server
    // redelivers it.
    absl::Duration ack_wait = absl::Hours(1);
    // Messages delivered and not yet acked, at most: the server stops
    // delivering beyond it. Must exceed what the trainer holds before it
    // commits (its initial examples and a fetch).
    int64_t max_ack_pending = 1'000'000;
  };

  // INVALID_ARGUMENT for a bad URL or options, UNAVAILABLE when the server
  // cannot be reached, FAILED_PRECONDITION when JetStream is off or the
  // stream does not capture the subject.
  static absl::StatusOr<std::unique_ptr<NatsSource>> Create(const Options& options);

  // Sends the acks Commit() released (waiting at most a second), then
  // closes. Nothing uncommitted is acked: a successor resumes there.
  ~NatsSource() override;

  std::vector<int64_t> input_shape() const override { return validator_.input_shape(); }
  int64_t num_classes() const override { return validator_.num_classes(); }
  // Fetches only while fewer than `max_count` good examples are waiting,
  // each fetch for up to fetch_batch messages, waiting for the first of
  // them until about `deadline`. A deadline in the past still takes what
  // the server has at hand, which costs a round trip, and up to 10 ms when
  // the stream is idle. A lost connection reads as nothing arriving while
  // the client reconnects. The stream never ends.
  absl::StatusOr<ReadResult> Read(int64_t max_count, absl::Time deadline,
                                  Examples* out) override;
  // Acks the first `count` examples handed out (and the rejected messages
  // among and just after them). INVALID_ARGUMENT when `count` is more than
  // Read() handed out or less than an earlier Commit().
  absl::Status Commit(int64_t count) override;
  // The URL, canonical (nats://HOST:PORT/STREAM/SUBJECT).
  std::string name() const override { return url_.ToString(); }
  // `queued` counts the good examples fetched and not yet handed out (at
  // most one fetch), not what waits in the stream.
  SourceCounters counters() const override ABSL_LOCKS_EXCLUDED(mu_);

  // The stream sequence the consumer started at.
  uint64_t start_sequence() const { return start_sequence_; }
  // The stream sequence of the last message acked (0 before any).
  uint64_t acked_sequence() const { return acked_sequence_; }

 private:
  // A message delivered and not yet acked, in stream order.
  struct Pending {
    natsMsg* message;  // owned
    uint64_t sequence;
    // Position among the good examples (the count Commit() refers to), or
    // -1 for a rejected message.
    int64_t example;
  };
  // A good example fetched and not yet handed out.
  struct Ready {
    std::vector<float> inputs;
    int64_t label;
  };

  NatsSource(const Options& options, JetStreamUrl url,
             std::unique_ptr<JetStreamConnection> connection, natsSubscription* subscription,
             uint64_t start_sequence);

  // Makes the durable consumer start at the right sequence; that sequence.
  static absl::StatusOr<uint64_t> ResetConsumer(const Options& options,
                                                const JetStreamUrl& url,
                                                JetStreamConnection& connection);
  // One fetch round trip, waiting up to `wait` for the first message.
  // Returns how many messages arrived (0 on a transient failure, which
  // it logs).
  absl::StatusOr<int64_t> Fetch(absl::Duration wait);
  // Validates one delivered message and files it.
  void Take(natsMsg* message);
  // Acks, in order, the leading pending messages that are committed or
  // rejected.
  absl::Status AckReleased();
  void LogRejections();

  // Constant after construction.
  const JetStreamUrl url_;
  const std::string durable_;
  const int64_t fetch_batch_;
  const ExampleValidator validator_;
  const uint64_t start_sequence_;
  std::unique_ptr<JetStreamConnection> connection_;
  natsSubscription* const subscription_;

  // Owned by the training thread (Read() and Commit()).
  std::deque<Pending> pending_;
  std::deque<Ready> ready_;
  int64_t handed_out_ = 0;  // good examples Read() returned
  int64_t committed_ = 0;
  uint64_t last_sequence_ = 0;  // highest stream sequence taken
  uint64_t acked_sequence_ = 0;
  int64_t redeliveries_ = 0;
  absl::Time last_rejection_log_ = absl::InfinitePast();
  int64_t rejections_logged_ = 0;
  absl::Time last_fetch_error_log_ = absl::InfinitePast();

  RejectionCounter rejections_;  // thread-safe
  // Protects the counters other threads read.
  mutable absl::Mutex mu_;
  int64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // ready_.size()
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_NATS_SOURCE_H_
