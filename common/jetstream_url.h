// Where a JetStream stream of examples lives, as one URL:
//
//   nats://HOST[:PORT]/STREAM/SUBJECT
//
// e.g. nats://127.0.0.1:4222/EXAMPLES/examples.fashion. PORT defaults to
// NATS's 4222; HOST may be a bracketed IPv6 address ("[::1]"). STREAM is a
// JetStream stream name (no '.', '*', '>', '/' or whitespace). SUBJECT is a
// NATS subject: dot-separated non-empty tokens without whitespace, where
// '*' may stand for one whole token and '>' for the last one; a publisher
// needs a literal subject (JetStreamUrl::has_wildcards() false).
//
// Torch-free, and thread-safe: plain values and a pure function.
#ifndef CONTRAIL_COMMON_JETSTREAM_URL_H_
#define CONTRAIL_COMMON_JETSTREAM_URL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace contrail {

struct JetStreamUrl {
  static constexpr int kDefaultPort = 4222;

  std::string host;
  int port = kDefaultPort;
  std::string stream;
  std::string subject;

  // "nats://HOST:PORT", what the NATS client connects to.
  std::string server() const;
  // The whole URL, canonical: "nats://HOST:PORT/STREAM/SUBJECT".
  std::string ToString() const;
  // Whether `subject` has a '*' or '>' token (fine for a consumer's
  // filter, not for publishing).
  bool has_wildcards() const;
};

// Parses `url`; INVALID_ARGUMENT naming the URL and what is wrong with it.
absl::StatusOr<JetStreamUrl> ParseJetStreamUrl(absl::string_view url);

// OK when `name` can name a JetStream stream or consumer: non-empty, at
// most 255 characters, none of them '.', '*', '>', '/', '\\', whitespace or
// control characters. Otherwise INVALID_ARGUMENT "<what> \"name\": why".
absl::Status CheckJetStreamName(absl::string_view what, absl::string_view name);

// Whether `subject` (literal) is one of those the subject pattern `pattern`
// (with '*' and '>' wildcards, as in a stream's subjects) captures.
bool SubjectMatches(absl::string_view pattern, absl::string_view subject);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_JETSTREAM_URL_H_
