// JetStreamPublisher against a real nats-server (tests/test_util/nats_server.h).
#include "common/jetstream_publisher.h"

#include <nats/nats.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/jetstream_connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "tests/test_util/nats_server.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

Example MakeExample(int64_t label) {
  Example example;
  example.mutable_inputs()->add_shape(2);
  example.mutable_inputs()->add_values(0.25f);
  example.mutable_inputs()->add_values(static_cast<float>(label));
  example.set_label(label);
  example.set_id(absl::StrCat("e", label));
  return example;
}

class JetStreamPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<test::NatsServer>> server = test::NatsServer::Start();
    ASSERT_OK(server);
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (HasFailure() && server_ != nullptr) std::fprintf(stderr, "%s", server_->Logs().c_str());
  }

  // The stored message at `sequence` of `stream`, parsed.
  absl::StatusOr<Example> StoredExample(const std::string& stream, uint64_t sequence) {
    absl::StatusOr<JetStreamUrl> url = ParseJetStreamUrl(server_->Url(stream, "any"));
    if (!url.ok()) return url.status();
    natsConnection* connection = nullptr;
    if (natsConnection_ConnectTo(&connection, url->server().c_str()) != NATS_OK) {
      return absl::UnavailableError("connect");
    }
    jsCtx* jetstream = nullptr;
    natsConnection_JetStream(&jetstream, connection, nullptr);
    natsMsg* message = nullptr;
    const natsStatus status =
        js_GetMsg(&message, jetstream, stream.c_str(), sequence, nullptr, nullptr);
    Example example;
    const bool parsed = status == NATS_OK &&
                        example.ParseFromArray(natsMsg_GetData(message),
                                               natsMsg_GetDataLength(message));
    natsMsg_Destroy(message);
    jsCtx_Destroy(jetstream);
    natsConnection_Destroy(connection);
    if (!parsed) return absl::NotFoundError(absl::StrCat("no example at ", sequence));
    return example;
  }

  std::unique_ptr<test::NatsServer> server_;
};

TEST_F(JetStreamPublisherTest, PublishStoresTheExampleAndReturnsItsSequence) {
  absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
      JetStreamPublisher::Connect(server_->Url("EXAMPLES", "examples.new"));
  ASSERT_OK(publisher);
  EXPECT_EQ((*publisher)->url().ToString(), server_->Url("EXAMPLES", "examples.new"));
  for (int64_t i = 1; i <= 3; ++i) {
    absl::StatusOr<uint64_t> sequence = (*publisher)->Publish(MakeExample(i));
    ASSERT_OK(sequence);
    EXPECT_EQ(*sequence, static_cast<uint64_t>(i));
  }
  absl::StatusOr<Example> stored = StoredExample("EXAMPLES", 2);
  ASSERT_OK(stored);
  EXPECT_EQ(stored->SerializeAsString(), MakeExample(2).SerializeAsString());
}

TEST_F(JetStreamPublisherTest, AsyncPublishesAreAllStoredOnceFlushReturns) {
  JetStreamPublisher::Options options;
  options.url = server_->Url("EXAMPLES", "examples.new");
  options.max_in_flight = 16;  // forces PublishAsync to wait for room
  absl::StatusOr<std::unique_ptr<JetStreamPublisher>> publisher =
      JetStreamPublisher::Connect(options);
  ASSERT_OK(publisher);
  constexpr int64_t kCount = 500;
  for (int64_t i = 0; i < kCount; ++i) ASSERT_OK((*publisher)->PublishAsync(MakeExample(i)));
  ASSERT_OK((*publisher)->Flush());
  // The next synchronous publish lands right after them.
  absl::StatusOr<uint64_t> next = (*publisher)->Publish(MakeExample(7));
  ASSERT_OK(next);
  EXPECT_EQ(*next, static_cast<uint64_t>(kCount + 1));
  absl::StatusOr<Example> last = StoredExample("EXAMPLES", kCount);
  ASSERT_OK(last);
  EXPECT_EQ(last->label(), kCount - 1);
}

TEST_F(JetStreamPublisherTest, AnExistingStreamIsUsedAsItIs) {
  const std::string url = server_->Url("EXAMPLES", "examples.new");
  {
    absl::StatusOr<std::unique_ptr<JetStreamPublisher>> first = JetStreamPublisher::Connect(url);
    ASSERT_OK(first);
    ASSERT_OK((*first)->Publish(MakeExample(1)));
  }
  absl::StatusOr<std::unique_ptr<JetStreamPublisher>> second = JetStreamPublisher::Connect(url);
  ASSERT_OK(second);
  absl::StatusOr<uint64_t> sequence = (*second)->Publish(MakeExample(2));
  ASSERT_OK(sequence);
  EXPECT_EQ(*sequence, 2u) << "the stream kept the first example";
}

TEST_F(JetStreamPublisherTest, AStreamThatDoesNotCaptureTheSubjectIsAFailedPrecondition) {
  ASSERT_OK(JetStreamPublisher::Connect(server_->Url("EXAMPLES", "examples.new")));
  EXPECT_THAT(JetStreamPublisher::Connect(server_->Url("EXAMPLES", "other.subject")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("captures subjects [examples.new], not other.subject")));
}

TEST_F(JetStreamPublisherTest, BadUrlsAndWildcardSubjectsAreInvalidArguments) {
  EXPECT_THAT(JetStreamPublisher::Connect("nats://127.0.0.1/EXAMPLES"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no /SUBJECT")));
  EXPECT_THAT(JetStreamPublisher::Connect(server_->Url("EXAMPLES", "examples.*")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wildcard")));
}

TEST_F(JetStreamPublisherTest, AnUnreachableServerIsUnavailable) {
  const std::string url = server_->Url("EXAMPLES", "examples.new");
  server_->Kill();
  EXPECT_THAT(JetStreamPublisher::Connect(url),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("cannot reach the NATS server at nats://127.0.0.1:",
                                              server_->port()))));
}

}  // namespace
}  // namespace contrail
