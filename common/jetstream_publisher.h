// Publishes labelled examples to a JetStream stream for a trainer's nats://
// source to consume: each message is one serialized Example on the URL's
// subject. Used by `contrailctl ingest --nats=...` and by tests; a
// producer in another language does the same with its own NATS client.
//
// Two ways to publish. Publish() waits for the stream's acknowledgement,
// so the example is stored (durable) when it returns OK: one round trip
// each. PublishAsync() only sends, keeping at most `max_in_flight` examples
// unacknowledged, and Flush() waits for every acknowledgement and reports
// any that failed: many times faster, and just as durable once Flush()
// returns OK.
//
// Connect() creates the stream when it is missing (see
// common/jetstream_connection.h). Not thread-safe: one producer thread.
#ifndef CONTRAIL_COMMON_JETSTREAM_PUBLISHER_H_
#define CONTRAIL_COMMON_JETSTREAM_PUBLISHER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/jetstream_connection.h"
#include "proto/contrail.pb.h"

namespace contrail {

class JetStreamPublisher {
 public:
  struct Options {
    // nats://HOST[:PORT]/STREAM/SUBJECT with a literal SUBJECT.
    std::string url;
    // PublishAsync() waits for room once this many examples await their
    // acknowledgement.
    int64_t max_in_flight = 4096;
    // How long Publish() waits for its acknowledgement, PublishAsync() for
    // room, and Flush() for the last acknowledgement.
    absl::Duration ack_timeout = absl::Seconds(10);
  };

  // INVALID_ARGUMENT for a bad URL or options, UNAVAILABLE when the server
  // cannot be reached, FAILED_PRECONDITION when JetStream is off or the
  // existing stream does not capture the subject.
  static absl::StatusOr<std::unique_ptr<JetStreamPublisher>> Connect(const Options& options);
  static absl::StatusOr<std::unique_ptr<JetStreamPublisher>> Connect(absl::string_view url);

  // Waits (up to ack_timeout) for what PublishAsync() sent; failures are
  // logged.
  ~JetStreamPublisher();
  JetStreamPublisher(const JetStreamPublisher&) = delete;
  JetStreamPublisher& operator=(const JetStreamPublisher&) = delete;

  // Publishes `example` and waits for the stream to store it; its stream
  // sequence number.
  absl::StatusOr<uint64_t> Publish(const Example& example);
  // The same for any bytes: a producer's own serialization, or, in tests,
  // a message that is not an Example at all.
  absl::StatusOr<uint64_t> PublishBytes(absl::string_view bytes);

  // Sends `example` without waiting for its acknowledgement (but for room
  // when max_in_flight are in flight).
  absl::Status PublishAsync(const Example& example);
  absl::Status PublishBytesAsync(absl::string_view bytes);
  // Waits until every PublishAsync() so far is acknowledged: OK when all
  // were stored; otherwise how many failed, and the first reason. Either
  // way, the failures are then forgotten.
  absl::Status Flush();

  const JetStreamUrl& url() const { return connection_->url(); }

 private:
  JetStreamPublisher(const Options& options, std::unique_ptr<JetStreamConnection> connection);

  // Called by the client's thread for each failed asynchronous publish.
  static void OnAsyncError(jsCtx* jetstream, jsPubAckErr* error, void* closure);

  // Constant after construction.
  const Options options_;
  std::unique_ptr<JetStreamConnection> connection_;
  // A JetStream context of its own, whose asynchronous publishes report
  // failures to OnAsyncError.
  jsCtx* async_ = nullptr;
  bool published_async_ = false;  // whether PublishAsync() was ever called

  // Protects the failures OnAsyncError reports.
  absl::Mutex mu_;
  int64_t async_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_async_failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_JETSTREAM_PUBLISHER_H_
