#include "common/jetstream_url.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(JetStreamUrl, ParsesHostPortStreamAndSubject) {
  absl::StatusOr<JetStreamUrl> url =
      ParseJetStreamUrl("nats://127.0.0.1:4333/EXAMPLES/examples.fashion");
  ASSERT_OK(url);
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 4333);
  EXPECT_EQ(url->stream, "EXAMPLES");
  EXPECT_EQ(url->subject, "examples.fashion");
  EXPECT_EQ(url->server(), "nats://127.0.0.1:4333");
  EXPECT_EQ(url->ToString(), "nats://127.0.0.1:4333/EXAMPLES/examples.fashion");
  EXPECT_FALSE(url->has_wildcards());
}

TEST(JetStreamUrl, PortDefaultsTo4222AndIpv6HostsAreBracketed) {
  absl::StatusOr<JetStreamUrl> url = ParseJetStreamUrl("nats://queue.internal/S/a");
  ASSERT_OK(url);
  EXPECT_EQ(url->host, "queue.internal");
  EXPECT_EQ(url->port, 4222);
  EXPECT_EQ(url->ToString(), "nats://queue.internal:4222/S/a");

  absl::StatusOr<JetStreamUrl> v6 = ParseJetStreamUrl("nats://[::1]:5000/S/a.b");
  ASSERT_OK(v6);
  EXPECT_EQ(v6->host, "[::1]");
  EXPECT_EQ(v6->port, 5000);
  absl::StatusOr<JetStreamUrl> v6_default = ParseJetStreamUrl("nats://[::1]/S/a");
  ASSERT_OK(v6_default);
  EXPECT_EQ(v6_default->port, 4222);
}

TEST(JetStreamUrl, WildcardSubjectsParseAndSaySo) {
  for (const char* text : {"nats://h:1/S/a.*", "nats://h:1/S/a.>", "nats://h:1/S/*.b.>"}) {
    absl::StatusOr<JetStreamUrl> url = ParseJetStreamUrl(text);
    ASSERT_OK(url);
    EXPECT_TRUE(url->has_wildcards()) << text;
  }
}

TEST(JetStreamUrl, MalformedUrlsAreInvalidArgumentsSayingWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "does not start with nats://"},
      {"http://h:4222/S/a", "does not start with nats://"},
      {"nats://h:4222", "no /STREAM/SUBJECT"},
      {"nats://h:4222/S", "no /SUBJECT"},
      {"nats://h:4222/S/", "the subject is empty"},
      {"nats://h:4222//a", "empty stream name"},
      {"nats://:4222/S/a", "no host"},
      {"nats://h:/S/a", "empty port"},
      {"nats://h:port/S/a", "port \"port\""},
      {"nats://h:0/S/a", "[1, 65535]"},
      {"nats://h:70000/S/a", "[1, 65535]"},
      {"nats://a:b:4222/S/a", "malformed host"},
      {"nats://user@h:4222/S/a", "malformed host"},
      {"nats://[::1/S/a", "unclosed '['"},
      {"nats://h:4222/S.x/a", "contains '.'"},
      {"nats://h:4222/S*/a", "contains '*'"},
      {"nats://h:4222/S/a..b", "empty token"},
      {"nats://h:4222/S/.a", "empty token"},
      {"nats://h:4222/S/a b", "whitespace"},
      {"nats://h:4222/S/a.b*", "whole tokens"},
      {"nats://h:4222/S/a.>.b", "last token"},
  };
  for (const auto& [text, why] : bad) {
    EXPECT_THAT(ParseJetStreamUrl(text),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(why), HasSubstr("nats://HOST[:PORT]/STREAM/SUBJECT"))))
        << text;
  }
}

TEST(JetStreamUrl, CheckJetStreamNameNamesWhatIsWrong) {
  EXPECT_OK(CheckJetStreamName("consumer", "contrail-trainer_1"));
  EXPECT_THAT(CheckJetStreamName("consumer", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("consumer is empty")));
  EXPECT_THAT(CheckJetStreamName("consumer", "a.b"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("consumer \"a.b\" contains '.'")));
  EXPECT_THAT(CheckJetStreamName("consumer", "a b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("whitespace")));
  EXPECT_THAT(CheckJetStreamName("stream", std::string(256, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("longer than 255")));
}

TEST(SubjectMatches, FollowsNatsWildcards) {
  EXPECT_TRUE(SubjectMatches("a.b", "a.b"));
  EXPECT_FALSE(SubjectMatches("a.b", "a.c"));
  EXPECT_FALSE(SubjectMatches("a.b", "a.b.c"));
  EXPECT_FALSE(SubjectMatches("a.b.c", "a.b"));
  EXPECT_TRUE(SubjectMatches("a.*", "a.b"));
  EXPECT_FALSE(SubjectMatches("a.*", "a.b.c"));
  EXPECT_TRUE(SubjectMatches("*.b", "a.b"));
  EXPECT_TRUE(SubjectMatches("a.>", "a.b.c"));
  EXPECT_FALSE(SubjectMatches("a.>", "a"));
  EXPECT_TRUE(SubjectMatches(">", "a"));
}

}  // namespace
}  // namespace contrail
