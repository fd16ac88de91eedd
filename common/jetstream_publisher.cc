#include "common/jetstream_publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

int64_t ToMillis(absl::Duration d) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(d));
}

}  // namespace

absl::StatusOr<std::unique_ptr<JetStreamPublisher>> JetStreamPublisher::Connect(
    absl::string_view url) {
  Options options;
  options.url = std::string(url);
  return Connect(options);
}

absl::StatusOr<std::unique_ptr<JetStreamPublisher>> JetStreamPublisher::Connect(
    const Options& options) {
  CONTRAIL_ASSIGN_OR_RETURN(const JetStreamUrl url, ParseJetStreamUrl(options.url));
  if (url.has_wildcards()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot publish to ", url.ToString(), ": its subject has a wildcard"));
  }
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight is ", options.max_in_flight, ", not at least 1"));
  }
  if (options.ack_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ack_timeout must be positive");
  }
  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<JetStreamConnection> connection,
                            JetStreamConnection::Connect(url, "contrail-publisher"));
  std::unique_ptr<JetStreamPublisher> publisher(
      new JetStreamPublisher(options, std::move(connection)));

  jsOptions async_options;
  jsOptions_Init(&async_options);
  async_options.PublishAsync.MaxPending = options.max_in_flight;
  async_options.PublishAsync.StallWait = ToMillis(options.ack_timeout);
  async_options.PublishAsync.ErrHandler = &JetStreamPublisher::OnAsyncError;
  async_options.PublishAsync.ErrHandlerClosure = publisher.get();
  const natsStatus status = natsConnection_JetStream(
      &publisher->async_, publisher->connection_->nats(), &async_options);
  if (status != NATS_OK) {
    return NatsStatusToStatus(status, 0, "opening a JetStream context");
  }
  return publisher;
}

JetStreamPublisher::JetStreamPublisher(const Options& options,
                                       std::unique_ptr<JetStreamConnection> connection)
    : options_(options), connection_(std::move(connection)) {}

JetStreamPublisher::~JetStreamPublisher() {
  if (async_ == nullptr) return;
  if (published_async_) {
    if (absl::Status flushed = Flush(); !flushed.ok()) {
      spdlog::warn("closing the publisher to {}: {}", url().ToString(), flushed.ToString());
      // Take back what is still unacknowledged: no callback can come for
      // it once this object is gone. (libnats 3.4 crashes here when
      // nothing was ever published asynchronously.)
      natsMsgList pending;
      if (js_PublishAsyncGetPendingList(&pending, async_) == NATS_OK) {
        natsMsgList_Destroy(&pending);
      }
    }
  }
  jsCtx_Destroy(async_);
}

absl::StatusOr<uint64_t> JetStreamPublisher::Publish(const Example& example) {
  return PublishBytes(example.SerializeAsString());
}

absl::StatusOr<uint64_t> JetStreamPublisher::PublishBytes(absl::string_view bytes) {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = ToMillis(options_.ack_timeout);
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const JetStreamUrl& where = url();
  const natsStatus status =
      js_Publish(&ack, connection_->jetstream(), where.subject.c_str(), bytes.data(),
                 static_cast<int>(bytes.size()), &options, &code);
  if (status != NATS_OK) {
    return NatsStatusToStatus(status, code, absl::StrCat("publishing to ", where.ToString()));
  }
  const uint64_t sequence = ack->Sequence;
  jsPubAck_Destroy(ack);
  return sequence;
}

absl::Status JetStreamPublisher::PublishAsync(const Example& example) {
  return PublishBytesAsync(example.SerializeAsString());
}

absl::Status JetStreamPublisher::PublishBytesAsync(absl::string_view bytes) {
  published_async_ = true;
  // Waits up to StallWait (ack_timeout) while max_in_flight are in flight.
  const natsStatus status =
      js_PublishAsync(async_, url().subject.c_str(), bytes.data(),
                      static_cast<int>(bytes.size()), nullptr);
  if (status == NATS_OK) return absl::OkStatus();
  return NatsStatusToStatus(status, 0,
                            absl::StrCat("publishing to ", url().ToString()));
}

absl::Status JetStreamPublisher::Flush() {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = ToMillis(options_.ack_timeout);
  const natsStatus status = js_PublishAsyncComplete(async_, &options);
  if (status != NATS_OK) {
    return NatsStatusToStatus(
        status, 0,
        absl::StrCat("waiting for the acknowledgements of ", url().ToString()));
  }
  absl::MutexLock lock(&mu_);
  if (async_failures_ == 0) return absl::OkStatus();
  const absl::Status failed = absl::UnavailableError(
      absl::StrCat(async_failures_, " examples published to ", url().ToString(),
                   " were not stored; the first: ", first_async_failure_));
  async_failures_ = 0;
  first_async_failure_.clear();
  return failed;
}

void JetStreamPublisher::OnAsyncError(jsCtx* /*jetstream*/, jsPubAckErr* error,
                                      void* closure) {
  auto* publisher = static_cast<JetStreamPublisher*>(closure);
  absl::MutexLock lock(&publisher->mu_);
  if (publisher->async_failures_++ == 0) {
    publisher->first_async_failure_ =
        absl::StrCat(natsStatus_GetText(error->Err),
                     error->ErrText != nullptr ? absl::StrCat(": ", error->ErrText) : "",
                     error->ErrCode != 0 ? absl::StrCat(" (JetStream error ", error->ErrCode, ")")
                                         : "");
  }
}

}  // namespace contrail
