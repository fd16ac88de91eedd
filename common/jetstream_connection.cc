#include "common/jetstream_connection.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// How long a reconnecting client waits between attempts.
constexpr int64_t kReconnectWaitMs = 500;
// What the destructor gives the last buffered bytes (acks) to reach the
// server.
constexpr int64_t kCloseFlushMs = 1000;

int64_t ToMillis(absl::Duration d) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(d));
}

// The client calls these on its own thread.
void OnDisconnected(natsConnection* connection, void* /*closure*/) {
  // Close() reports itself as a disconnection too; only a lost one is news.
  if (natsConnection_IsClosed(connection)) return;
  spdlog::warn("lost the connection to the NATS server; reconnecting");
}

void OnReconnected(natsConnection* connection, void* /*closure*/) {
  char url[256] = "";
  natsConnection_GetConnectedUrl(connection, url, sizeof(url));
  spdlog::info("reconnected to the NATS server at {}", url);
}

}  // namespace

absl::Status NatsStatusToStatus(natsStatus status, int js_code,
                                absl::string_view what) {
  std::string detail = natsStatus_GetText(status);
  // The thread's last error often says more ("stream not found").
  natsStatus last = NATS_OK;
  const char* last_text = nats_GetLastError(&last);
  if (last_text != nullptr && *last_text != '\0') {
    std::string text = last_text;
    // "(jsm.c:2867): stream not found" -> "stream not found"
    if (const size_t close = text.find("): "); !text.empty() && text[0] == '(' &&
                                               close != std::string::npos) {
      text = text.substr(close + 3);
    }
    if (text != detail) absl::StrAppend(&detail, ": ", text);
  }
  if (js_code != 0) absl::StrAppend(&detail, " (JetStream error ", js_code, ")");
  const std::string message = absl::StrCat(what, ": ", detail);
  if (js_code == JSStreamNotFoundErr || js_code == JSConsumerNotFoundErr) {
    return absl::NotFoundError(message);
  }
  if (js_code != 0 && js_code != JSNotEnabledErr) {
    return absl::FailedPreconditionError(message);
  }
  switch (status) {
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_IO_ERROR:
    case NATS_SECURE_CONNECTION_REQUIRED:
    case NATS_NO_RESPONDERS:
      return absl::UnavailableError(message);
    case NATS_TIMEOUT:
      return absl::DeadlineExceededError(message);
    case NATS_NOT_FOUND:
      return absl::NotFoundError(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_TIMEOUT:
      return absl::InvalidArgumentError(message);
    case NATS_NOT_PERMITTED:
      return absl::PermissionDeniedError(message);
    case NATS_MAX_PAYLOAD:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnknownError(message);
  }
}

absl::StatusOr<std::unique_ptr<JetStreamConnection>> JetStreamConnection::Connect(
    const JetStreamUrl& url, absl::string_view client_name, absl::Duration timeout) {
  natsOptions* options = nullptr;
  natsStatus status = natsOptions_Create(&options);
  const std::string server = url.server();
  const std::string name(client_name);
  if (status == NATS_OK) status = natsOptions_SetURL(options, server.c_str());
  if (status == NATS_OK) status = natsOptions_SetName(options, name.c_str());
  if (status == NATS_OK) status = natsOptions_SetTimeout(options, ToMillis(timeout));
  if (status == NATS_OK) status = natsOptions_SetMaxReconnect(options, -1);
  if (status == NATS_OK) status = natsOptions_SetReconnectWait(options, kReconnectWaitMs);
  if (status == NATS_OK) {
    status = natsOptions_SetDisconnectedCB(options, &OnDisconnected, nullptr);
  }
  if (status == NATS_OK) {
    status = natsOptions_SetReconnectedCB(options, &OnReconnected, nullptr);
  }
  if (status != NATS_OK) {
    natsOptions_Destroy(options);
    return NatsStatusToStatus(status, 0, "setting up the NATS client");
  }
  natsConnection* connection = nullptr;
  status = natsConnection_Connect(&connection, options);
  natsOptions_Destroy(options);
  if (status != NATS_OK) {
    return NatsStatusToStatus(status, 0,
                              absl::StrCat("cannot reach the NATS server at ", server));
  }
  jsCtx* jetstream = nullptr;
  status = natsConnection_JetStream(&jetstream, connection, nullptr);
  if (status != NATS_OK) {
    natsConnection_Destroy(connection);
    return NatsStatusToStatus(status, 0, "opening a JetStream context");
  }
  std::unique_ptr<JetStreamConnection> opened(
      new JetStreamConnection(url, connection, jetstream));
  if (absl::Status stream = opened->EnsureStream(); !stream.ok()) return stream;
  return opened;
}

JetStreamConnection::JetStreamConnection(JetStreamUrl url, natsConnection* connection,
                                         jsCtx* jetstream)
    : url_(std::move(url)), connection_(connection), jetstream_(jetstream) {}

JetStreamConnection::~JetStreamConnection() {
  // A connection that is down has nobody to flush to.
  if (natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED) {
    natsConnection_FlushTimeout(connection_, kCloseFlushMs);
  }
  jsCtx_Destroy(jetstream_);
  natsConnection_Destroy(connection_);
}

absl::Status JetStreamConnection::Flush(absl::Duration timeout) {
  const natsStatus status = natsConnection_FlushTimeout(connection_, ToMillis(timeout));
  if (status == NATS_OK) return absl::OkStatus();
  return NatsStatusToStatus(status, 0, absl::StrCat("flushing to ", url_.server()));
}

absl::Status JetStreamConnection::EnsureStream() {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&info, jetstream_, url_.stream.c_str(), nullptr, &code);
  if (status == NATS_OK) {
    std::vector<std::string> subjects;
    for (int i = 0; i < info->Config->SubjectsLen; ++i) {
      subjects.emplace_back(info->Config->Subjects[i]);
    }
    jsStreamInfo_Destroy(info);
    // A wildcard subject is checked by the server when a consumer filters
    // on it; a literal one must be captured for publishing to reach it.
    if (url_.has_wildcards()) return absl::OkStatus();
    for (const std::string& pattern : subjects) {
      if (SubjectMatches(pattern, url_.subject)) return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "stream ", url_.stream, " on ", url_.server(), " captures subjects [",
        absl::StrJoin(subjects, ", "), "], not ", url_.subject));
  }
  if (status == NATS_NO_RESPONDERS || code == JSNotEnabledErr ||
      code == JSNotEnabledForAccountErr) {
    return absl::FailedPreconditionError(
        absl::StrCat("JetStream is not enabled on the NATS server at ", url_.server(),
                     " (start nats-server with -js)"));
  }
  if (status != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
    return NatsStatusToStatus(status, code, absl::StrCat("looking up stream ", url_.stream,
                                                         " on ", url_.server()));
  }

  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = url_.stream.c_str();
  const char* subjects[] = {url_.subject.c_str()};
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  code = static_cast<jsErrCode>(0);
  status = js_AddStream(nullptr, jetstream_, &config, nullptr, &code);
  if (status != NATS_OK && code != JSStreamNameExistErr) {
    return NatsStatusToStatus(
        status, code,
        absl::StrCat("creating stream ", url_.stream, " for subject ", url_.subject, " on ",
                     url_.server()));
  }
  if (status == NATS_OK) {
    created_stream_ = true;
    spdlog::info("created JetStream stream {} (subject {}, file storage) on {}", url_.stream,
                 url_.subject, url_.server());
  }
  return absl::OkStatus();
}

}  // namespace contrail
