// One connection to a NATS server with JetStream, for the stream named by a
// JetStreamUrl: what the trainer's NatsSource and the producers'
// JetStreamPublisher share. It connects (UNAVAILABLE when the server cannot
// be reached), checks that JetStream is on, and makes sure the stream
// exists: a missing stream is created (file storage, capturing the URL's
// subject, limits retention with no limits), so that a trainer and its
// producers can start in either order on a fresh server; an existing one is
// used as it is, and must capture the URL's subject. Once connected, the
// client reconnects on its own after a lost connection, for ever, and logs
// the loss and the reconnection.
//
// Owns the natsConnection and its jsCtx; the raw handles are lent to the
// owner's own JetStream calls. The libnats handles are thread-safe, and so
// is this class (constant after construction).
#ifndef CONTRAIL_COMMON_JETSTREAM_CONNECTION_H_
#define CONTRAIL_COMMON_JETSTREAM_CONNECTION_H_

#include <nats/nats.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/jetstream_url.h"

namespace contrail {

class JetStreamConnection {
 public:
  // Connects to url.server() under the client name `client_name` (shown
  // by the server's monitoring), waiting at most `timeout` for the TCP and
  // NATS handshake; then EnsureStream().
  static absl::StatusOr<std::unique_ptr<JetStreamConnection>> Connect(
      const JetStreamUrl& url, absl::string_view client_name,
      absl::Duration timeout = absl::Seconds(2));

  // Flushes what is buffered (at most a second), then closes.
  ~JetStreamConnection();
  JetStreamConnection(const JetStreamConnection&) = delete;
  JetStreamConnection& operator=(const JetStreamConnection&) = delete;

  // Waits until the server has received everything sent so far (a
  // PING/PONG round trip), at most `timeout`.
  absl::Status Flush(absl::Duration timeout);

  const JetStreamUrl& url() const { return url_; }
  // Whether Connect() created the stream.
  bool created_stream() const { return created_stream_; }
  natsConnection* nats() const { return connection_; }
  jsCtx* jetstream() const { return jetstream_; }

 private:
  JetStreamConnection(JetStreamUrl url, natsConnection* connection, jsCtx* jetstream);

  absl::Status EnsureStream();

  const JetStreamUrl url_;
  natsConnection* const connection_;
  jsCtx* const jetstream_;
  bool created_stream_ = false;  // set by Connect() only
};

// A libnats failure as a Status whose message starts with `what`, e.g.
// "fetching from nats://h:1/S/a: Timeout". NATS_NO_SERVER and lost
// connections are UNAVAILABLE, NATS_TIMEOUT DEADLINE_EXCEEDED, missing
// streams and consumers NOT_FOUND, JetStream errors about the request
// FAILED_PRECONDITION; `js_code` (0 when none) is the JetStream error code.
absl::Status NatsStatusToStatus(natsStatus status, int js_code,
                                absl::string_view what);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_JETSTREAM_CONNECTION_H_
