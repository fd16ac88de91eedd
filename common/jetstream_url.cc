#include "common/jetstream_url.h"

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace contrail {
namespace {

constexpr absl::string_view kScheme = "nats://";
constexpr size_t kMaxNameLength = 255;

bool IsSpaceOrControl(char c) {
  return absl::ascii_isspace(static_cast<unsigned char>(c)) ||
         absl::ascii_iscntrl(static_cast<unsigned char>(c));
}

// Why `subject` is not a NATS subject; empty when it is one.
std::string SubjectProblem(absl::string_view subject) {
  if (subject.empty()) return "the subject is empty";
  const std::vector<absl::string_view> tokens = absl::StrSplit(subject, '.');
  for (size_t i = 0; i < tokens.size(); ++i) {
    const absl::string_view token = tokens[i];
    if (token.empty()) return absl::StrCat("subject \"", subject, "\" has an empty token");
    for (char c : token) {
      if (IsSpaceOrControl(c)) {
        return absl::StrCat("subject \"", subject, "\" contains whitespace");
      }
    }
    if (token.size() > 1 && (absl::StrContains(token, '*') || absl::StrContains(token, '>'))) {
      return absl::StrCat("subject \"", subject,
                          "\": '*' and '>' must be whole tokens");
    }
    if (token == ">" && i + 1 != tokens.size()) {
      return absl::StrCat("subject \"", subject, "\": '>' must be the last token");
    }
  }
  return "";
}

}  // namespace

std::string JetStreamUrl::server() const {
  return absl::StrCat(kScheme, host, ":", port);
}

std::string JetStreamUrl::ToString() const {
  return absl::StrCat(server(), "/", stream, "/", subject);
}

bool JetStreamUrl::has_wildcards() const {
  for (absl::string_view token : absl::StrSplit(subject, '.')) {
    if (token == "*" || token == ">") return true;
  }
  return false;
}

absl::Status CheckJetStreamName(absl::string_view what, absl::string_view name) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", name, "\" ", why));
  };
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > kMaxNameLength) {
    return invalid(absl::StrCat("is longer than ", kMaxNameLength, " characters"));
  }
  for (char c : name) {
    if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\') {
      return invalid(absl::StrCat("contains '", std::string(1, c),
                                  "' (not allowed in a JetStream name)"));
    }
    if (IsSpaceOrControl(c)) return invalid("contains whitespace or a control character");
  }
  return absl::OkStatus();
}

absl::StatusOr<JetStreamUrl> ParseJetStreamUrl(absl::string_view url) {
  auto invalid = [url](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JetStream URL \"", url, "\": ", why,
        " (expected nats://HOST[:PORT]/STREAM/SUBJECT)"));
  };
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, kScheme)) return invalid("does not start with nats://");
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return invalid("has no /STREAM/SUBJECT");
  const absl::string_view authority = rest.substr(0, slash);
  const absl::string_view path = rest.substr(slash + 1);

  JetStreamUrl parsed;
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return invalid("has an unclosed '[' in its host");
    parsed.host = std::string(authority.substr(0, close + 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) return invalid("has junk after its host");
      port = after;
      if (port.empty()) return invalid("has an empty port");
    }
  } else {
    const size_t colon = authority.rfind(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return invalid("has an empty port");
    }
  }
  if (parsed.host.empty() || parsed.host == "[]") return invalid("has no host");
  for (char c : parsed.host) {
    if (IsSpaceOrControl(c) || c == '@' || (c == ':' && parsed.host[0] != '[')) {
      return invalid("has a malformed host");
    }
  }
  if (!port.empty() && (!absl::SimpleAtoi(port, &parsed.port) || parsed.port < 1 ||
                        parsed.port > 65535)) {
    return invalid(absl::StrCat("has port \"", port, "\", not a number in [1, 65535]"));
  }

  const size_t stream_end = path.find('/');
  if (stream_end == absl::string_view::npos) return invalid("has no /SUBJECT after its stream");
  parsed.stream = std::string(path.substr(0, stream_end));
  parsed.subject = std::string(path.substr(stream_end + 1));
  if (parsed.stream.empty()) return invalid("has an empty stream name");
  if (const absl::Status name = CheckJetStreamName("stream", parsed.stream); !name.ok()) {
    return invalid(name.message());
  }
  if (const std::string problem = SubjectProblem(parsed.subject); !problem.empty()) {
    return invalid(problem);
  }
  return parsed;
}

bool SubjectMatches(absl::string_view pattern, absl::string_view subject) {
  const std::vector<absl::string_view> want = absl::StrSplit(pattern, '.');
  const std::vector<absl::string_view> have = absl::StrSplit(subject, '.');
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == ">") return have.size() > i;
    if (i >= have.size()) return false;
    if (want[i] != "*" && want[i] != have[i]) return false;
  }
  return want.size() == have.size();
}

}  // namespace contrail
