#include "trainer/nats_source.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "proto/contrail.pb.h"
#include "spdlog/spdlog.h"

namespace contrail {
namespace {

// Limits on Options.
constexpr int64_t kMaxFetchBatch = 100'000;
// How often the same kind of trouble is logged again.
constexpr absl::Duration kLogInterval = absl::Seconds(10);
// The shortest wait a fetch asks for. The server answers at once when it
// has messages and waits only while it has none; libnats tells it to wait
// 10 ms less than the client itself waits, but only for waits of 20 ms and
// more. That margin matters: a request the server still holds after the
// client gave up on it would take the next messages, and the next fetch
// would wait in vain for them.
constexpr absl::Duration kMinFetchWait = absl::Milliseconds(20);
// While the client reconnects, a read waits this long per attempt at most.
constexpr absl::Duration kReconnectingWait = absl::Milliseconds(100);

constexpr jsErrCode kNoJsError = static_cast<jsErrCode>(0);

int64_t ToNanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

}  // namespace

absl::StatusOr<std::unique_ptr<NatsSource>> NatsSource::Create(const Options& options) {
  CONTRAIL_ASSIGN_OR_RETURN(JetStreamUrl url, ParseJetStreamUrl(options.url));
  CONTRAIL_RETURN_IF_ERROR(CheckJetStreamName("durable consumer name", options.durable));
  if (options.input_shape.empty()) {
    return absl::InvalidArgumentError("the nats source needs the model's input shape");
  }
  for (int64_t d : options.input_shape) {
    if (d < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input shape [", absl::StrJoin(options.input_shape, ", "), "] has a dimension < 1"));
    }
  }
  if (options.num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes is ", options.num_classes, ", not at least 1"));
  }
  if (options.fetch_batch < 1 || options.fetch_batch > kMaxFetchBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fetch_batch is ", options.fetch_batch, ", not in [1, ", kMaxFetchBatch, "]"));
  }
  if (options.ack_wait <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ack_wait must be positive");
  }
  if (options.max_ack_pending < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_ack_pending is ", options.max_ack_pending, ", not at least 1"));
  }

  CONTRAIL_ASSIGN_OR_RETURN(std::unique_ptr<JetStreamConnection> connection,
                            JetStreamConnection::Connect(url, options.durable));
  CONTRAIL_ASSIGN_OR_RETURN(const uint64_t start, ResetConsumer(options, url, *connection));

  jsSubOptions subscribe;
  jsSubOptions_Init(&subscribe);
  subscribe.Stream = url.stream.c_str();
  subscribe.Consumer = options.durable.c_str();
  natsSubscription* subscription = nullptr;
  jsErrCode code = kNoJsError;
  const natsStatus status =
      js_PullSubscribe(&subscription, connection->jetstream(), url.subject.c_str(),
                       options.durable.c_str(), nullptr, &subscribe, &code);
  if (status != NATS_OK) {
    return NatsStatusToStatus(
        status, code, absl::StrCat("subscribing to ", url.ToString(), " as ", options.durable));
  }
  spdlog::info("reading {} from stream sequence {} (durable consumer {})", url.ToString(),
               start, options.durable);
  return std::unique_ptr<NatsSource>(
      new NatsSource(options, std::move(url), std::move(connection), subscription, start));
}

absl::StatusOr<uint64_t> NatsSource::ResetConsumer(const Options& options,
                                                   const JetStreamUrl& url,
                                                   JetStreamConnection& connection) {
  jsCtx* const jetstream = connection.jetstream();
  const char* const stream = url.stream.c_str();
  const char* const durable = options.durable.c_str();
  jsConsumerInfo* info = nullptr;
  jsErrCode code = kNoJsError;
  natsStatus status = js_GetConsumerInfo(&info, jetstream, stream, durable, nullptr, &code);
  uint64_t start = 1;
  if (status == NATS_OK) {
    // Right after the last acked message; a consumer made by a restart
    // that acked nothing since reports a floor of 0 and still knows where
    // it started.
    start = info->AckFloor.Stream + 1;
    if (info->Config->DeliverPolicy == js_DeliverByStartSequence) {
      start = std::max<uint64_t>(start, info->Config->OptStartSeq);
    }
    jsConsumerInfo_Destroy(info);
    code = kNoJsError;
    status = js_DeleteConsumer(jetstream, stream, durable, nullptr, &code);
    if (status != NATS_OK) {
      return NatsStatusToStatus(status, code,
                                absl::StrCat("deleting consumer ", durable, " of ",
                                             url.ToString(), " to restart it"));
    }
  } else if (status != NATS_NOT_FOUND && code != JSConsumerNotFoundErr) {
    return NatsStatusToStatus(
        status, code, absl::StrCat("looking up consumer ", durable, " of ", url.ToString()));
  }

  jsConsumerConfig config;
  jsConsumerConfig_Init(&config);
  config.Durable = durable;
  config.AckPolicy = js_AckExplicit;
  config.AckWait = ToNanos(options.ack_wait);
  config.MaxAckPending = options.max_ack_pending;
  config.FilterSubject = url.subject.c_str();
  if (start > 1) {
    config.DeliverPolicy = js_DeliverByStartSequence;
    config.OptStartSeq = start;
  } else {
    config.DeliverPolicy = js_DeliverAll;
  }
  code = kNoJsError;
  status = js_AddConsumer(nullptr, jetstream, stream, &config, nullptr, &code);
  if (status != NATS_OK) {
    return NatsStatusToStatus(
        status, code, absl::StrCat("creating consumer ", durable, " of ", url.ToString()));
  }
  return start;
}

NatsSource::NatsSource(const Options& options, JetStreamUrl url,
                       std::unique_ptr<JetStreamConnection> connection,
                       natsSubscription* subscription, uint64_t start_sequence)
    : url_(std::move(url)),
      durable_(options.durable),
      fetch_batch_(options.fetch_batch),
      validator_(options.input_shape, options.num_classes),
      start_sequence_(start_sequence),
      connection_(std::move(connection)),
      subscription_(subscription) {}

NatsSource::~NatsSource() {
  for (Pending& pending : pending_) natsMsg_Destroy(pending.message);
  natsSubscription_Destroy(subscription_);
  // The connection flushes the acks Commit() sent as it closes.
  connection_.reset();
  if (const std::string summary = rejections_.Summary(); !summary.empty()) {
    spdlog::info("{}: {}", url_.ToString(), summary);
  }
  if (redeliveries_ > 0) {
    spdlog::warn("{}: consumer {} redelivered {} messages taken before (after a server "
                 "restart, or a wait for a commit longer than AckWait)",
                 url_.ToString(), durable_, redeliveries_);
  }
}

absl::StatusOr<ExampleSource::ReadResult> NatsSource::Read(int64_t max_count,
                                                           absl::Time deadline,
                                                           Examples* out) {
  ReadResult result;
  bool fetched_nothing = false;
  while (true) {
    while (result.count < max_count && !ready_.empty()) {
      Ready& next = ready_.front();
      out->inputs.insert(out->inputs.end(), next.inputs.begin(), next.inputs.end());
      out->labels.push_back(next.label);
      ready_.pop_front();
      ++result.count;
      ++handed_out_;
    }
    if (result.count >= max_count) break;
    const absl::Duration left = deadline - absl::Now();
    // Once a fetch found nothing, what is left of the wait must be worth
    // another. Past the deadline, this fetches what the server has at
    // hand: once, and again while that brings messages.
    if (fetched_nothing && left < kMinFetchWait) break;
    CONTRAIL_ASSIGN_OR_RETURN(const int64_t arrived, Fetch(std::max(left, kMinFetchWait)));
    fetched_nothing = arrived == 0;
  }
  absl::MutexLock lock(&mu_);
  queued_ = static_cast<int64_t>(ready_.size());
  return result;
}

absl::StatusOr<int64_t> NatsSource::Fetch(absl::Duration wait) {
  // no_wait with an expiry: the server answers as soon as it has sent what
  // it has (up to the batch), and waits up to the expiry only while it has
  // nothing.
  jsFetchRequest request;
  jsFetchRequest_Init(&request);
  request.Batch = static_cast<int>(fetch_batch_);
  request.NoWait = true;
  request.Expires = ToNanos(wait);
  natsMsgList list;
  const natsStatus status = natsSubscription_FetchRequest(&list, subscription_, &request);
  if (status == NATS_TIMEOUT || status == NATS_NOT_FOUND) return 0;
  if (status != NATS_OK) {
    const absl::Status failed =
        NatsStatusToStatus(status, kNoJsError, absl::StrCat("fetching from ", url_.ToString()));
    const natsConnStatus connection = natsConnection_Status(connection_->nats());
    if (connection == NATS_CONN_STATUS_CLOSED) return failed;
    // Reconnecting, or an answer lost with the connection: nothing
    // arrived this time.
    const absl::Time now = absl::Now();
    if (now - last_fetch_error_log_ >= kLogInterval) {
      spdlog::warn("{} (will retry)", failed.ToString());
      last_fetch_error_log_ = now;
    }
    absl::SleepFor(std::min(wait, kReconnectingWait));
    return 0;
  }
  const int64_t arrived = list.Count;
  const int64_t taken_before = handed_out_ + static_cast<int64_t>(ready_.size());
  for (int i = 0; i < list.Count; ++i) {
    Take(list.Msgs[i]);
    list.Msgs[i] = nullptr;  // Take() owns it now
  }
  natsMsgList_Destroy(&list);
  {
    absl::MutexLock lock(&mu_);
    accepted_ += handed_out_ + static_cast<int64_t>(ready_.size()) - taken_before;
    queued_ = static_cast<int64_t>(ready_.size());
  }
  LogRejections();
  // Rejected messages right after the committed ones need no trainer.
  CONTRAIL_RETURN_IF_ERROR(AckReleased());
  return arrived;
}

void NatsSource::Take(natsMsg* message) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, message) != NATS_OK) {
    // Not a JetStream delivery: nothing to ack, nothing to train.
    natsMsg_Destroy(message);
    return;
  }
  const uint64_t sequence = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  if (sequence <= last_sequence_) {
    // Taken before: redelivered after AckWait, or by a server that lost
    // our acks (restarted before it stored them). It is not handed out
    // again. Acked already: ack it again. Still waiting for its commit:
    // the newest delivery is the one to ack.
    ++redeliveries_;
    if (sequence <= acked_sequence_) {
      natsMsg_Ack(message, nullptr);
      natsMsg_Destroy(message);
      return;
    }
    for (Pending& pending : pending_) {
      if (pending.sequence == sequence) {
        std::swap(pending.message, message);
        break;
      }
    }
    natsMsg_Destroy(message);
    return;
  }
  last_sequence_ = sequence;

  Example example;
  std::optional<Rejection> rejection;
  const int length = natsMsg_GetDataLength(message);
  if (!example.ParseFromArray(natsMsg_GetData(message), length)) {
    rejection = Rejection{RejectReason::kMalformed,
                          absl::StrCat("a message of ", length,
                                       " bytes that is not a serialized Example")};
  } else {
    rejection = validator_.Check(example);
  }
  if (rejection.has_value()) {
    // Positions in the stream are its sequence numbers.
    rejections_.Record(*rejection, static_cast<int64_t>(sequence), example.id());
    pending_.push_back({message, sequence, -1});
    return;
  }
  const int64_t position = handed_out_ + static_cast<int64_t>(ready_.size());
  ready_.push_back({std::vector<float>(example.inputs().values().begin(),
                                       example.inputs().values().end()),
                    example.label()});
  pending_.push_back({message, sequence, position});
}

absl::Status NatsSource::Commit(int64_t count) {
  if (count > handed_out_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "commit of ", count, " examples, but only ", handed_out_, " were read"));
  }
  if (count < committed_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "commit of ", count, " examples after one of ", committed_));
  }
  committed_ = count;
  return AckReleased();
}

absl::Status NatsSource::AckReleased() {
  while (!pending_.empty()) {
    Pending& front = pending_.front();
    const bool rejected = front.example < 0;
    if (!rejected && front.example >= committed_) break;
    const natsStatus status = natsMsg_Ack(front.message, nullptr);
    if (status != NATS_OK) {
      return NatsStatusToStatus(
          status, kNoJsError,
          absl::StrCat("acking stream sequence ", front.sequence, " of ", url_.ToString()));
    }
    acked_sequence_ = front.sequence;
    natsMsg_Destroy(front.message);
    pending_.pop_front();
  }
  return absl::OkStatus();
}

void NatsSource::LogRejections() {
  const int64_t rejected = rejections_.total();
  if (rejected == rejections_logged_) return;
  const absl::Time now = absl::Now();
  if (now - last_rejection_log_ < kLogInterval) return;
  spdlog::warn("{}: {}", url_.ToString(), rejections_.Summary());
  last_rejection_log_ = now;
  rejections_logged_ = rejected;
}

SourceCounters NatsSource::counters() const {
  SourceCounters counters;
  counters.rejected = rejections_.total();
  counters.rejected_by_reason = rejections_.by_reason();
  absl::MutexLock lock(&mu_);
  counters.accepted = accepted_;
  counters.queued = queued_;
  return counters;
}

}  // namespace contrail
