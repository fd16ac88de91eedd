#include "trainer/update_service_impl.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/access_policy.h"
#include "common/update_retention.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kRun = 7;
constexpr uint64_t kFingerprint = 99;
constexpr absl::Duration kPatience = absl::Seconds(30);

// An UpdateRetention over no real model (updates and snapshots carry only
// their versions), served by an UpdateServiceImpl on an in-process gRPC
// server.
class UpdateServiceImplTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UpdateRetention::Options options;
    options.owner = "the test feed";
    feed_ = UpdateRetention::Create(options, [](const UpdateRetention::Head& head) {
              auto snapshot = std::make_shared<Update>();
              snapshot->set_snapshot(true);
              snapshot->set_run(head.run);
              snapshot->set_fingerprint(head.fingerprint);
              snapshot->set_version(head.version);
              snapshot->set_publish_time_us(
                  static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
              return std::shared_ptr<const Update>(std::move(snapshot));
            }).value();
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    }
    server_.reset();
    service_.reset();
  }

  void Serve(uint64_t max_subscribers = 256,
             const AccessPolicy* access = &AccessPolicy::Open()) {
    service_ = std::make_unique<UpdateServiceImpl>(feed_.get(), max_subscribers,
                                                   "--test_max_subscribers", access);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = UpdateService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void ResetTo(uint64_t version) {
    UpdateRetention::Head head;
    head.run = kRun;
    head.fingerprint = kFingerprint;
    head.version = version;
    ASSERT_OK(feed_->Reset(head, [] { return absl::OkStatus(); }));
  }

  // Serves over TCP on a free port instead: unlike the in-process
  // transport, it applies flow control, so a client that does not read
  // leaves a write outstanding.
  void ServeOverTcp() {
    service_ = std::make_unique<UpdateServiceImpl>(feed_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = UpdateService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                       grpc::InsecureChannelCredentials()));
  }

  // Publishes the next version, stamped with the time now, with `padding`
  // bytes of payload.
  void Publish(size_t padding = 0) {
    const uint64_t head = feed_->head().version;
    auto update = std::make_shared<Update>();
    if (padding > 0) update->set_torchscript_module(std::string(padding, 'x'));
    update->set_run(kRun);
    update->set_fingerprint(kFingerprint);
    update->set_base_version(head);
    update->set_version(head + 1);
    update->set_publish_time_us(static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
    ASSERT_OK(feed_->Advance(std::move(update), [](Update*) { return absl::OkStatus(); }));
  }

  // A request of a subscriber that holds `version` of the feed's run.
  static SubscribeRequest Holding(uint64_t version, const std::string& name) {
    SubscribeRequest request;
    request.set_subscriber(name);
    request.set_have_run(kRun);
    request.set_have_fingerprint(kFingerprint);
    request.set_have_version(version);
    return request;
  }

  std::unique_ptr<UpdateRetention> feed_;
  std::unique_ptr<UpdateServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UpdateService::Stub> stub_;
};

TEST_F(UpdateServiceImplTest, ManySubscribersReceiveEveryUpdateInOrder) {
  constexpr int kSubscribers = 20;
  // More than one batch of updates per subscriber.
  constexpr uint64_t kLast = 1 + 2 * UpdateServiceImpl::kMaxBatch + 10;
  ResetTo(1);
  Serve();
  std::vector<std::thread> readers;
  std::vector<std::string> errors(kSubscribers);
  std::vector<uint64_t> ends(kSubscribers, 0);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int s = 0; s < kSubscribers; ++s) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
  }
  for (int s = 0; s < kSubscribers; ++s) {
    readers.emplace_back([&, s] {
      // Even subscribers hold version 1 and follow by updates; odd ones
      // hold nothing and start from a snapshot.
      const bool holds = s % 2 == 0;
      SubscribeRequest request =
          holds ? Holding(1, absl::StrCat("s", s)) : SubscribeRequest();
      request.set_subscriber(absl::StrCat("s", s));
      auto reader = stub_->SubscribeUpdates(contexts[s].get(), request);
      uint64_t version = holds ? 1 : 0;
      Update update;
      while (version < kLast && reader->Read(&update)) {
        if (version == 0 ? !update.snapshot()
                         : update.snapshot() || update.version() != version + 1) {
          errors[s] = absl::StrCat("after version ", version, " got ",
                                   update.ShortDebugString());
          break;
        }
        version = update.version();
      }
      ends[s] = version;
    });
  }
  ASSERT_TRUE(test::WaitUntil([&] { return service_->subscribers() == kSubscribers; },
                              kPatience));
  for (uint64_t v = 2; v <= kLast; ++v) Publish();
  for (std::thread& reader : readers) reader.join();
  for (int s = 0; s < kSubscribers; ++s) {
    EXPECT_EQ(errors[s], "") << "subscriber " << s;
    EXPECT_EQ(ends[s], kLast) << "subscriber " << s;
  }
  EXPECT_GT(service_->bytes_sent(), 0u);
  // OpenSubscribers() catches up with what the clients read.
  EXPECT_TRUE(test::WaitUntil(
      [&] {
        const std::vector<UpdateServiceImpl::Subscriber> open = service_->OpenSubscribers();
        if (open.size() != kSubscribers) return false;
        for (const UpdateServiceImpl::Subscriber& subscriber : open) {
          if (subscriber.version != kLast || subscriber.send_lag < absl::ZeroDuration()) {
            return false;
          }
        }
        return true;
      },
      kPatience));
  for (auto& context : contexts) context->TryCancel();
  EXPECT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 0; }, kPatience));
}

TEST_F(UpdateServiceImplTest, IdleSubscriberGetsALaterUpdateAtOnce) {
  ResetTo(1);
  Serve();
  grpc::ClientContext context;
  auto reader = stub_->SubscribeUpdates(&context, Holding(1, "idle"));
  ASSERT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 1; }, kPatience));
  for (uint64_t version = 2; version <= 6; ++version) {
    // Long enough for the subscription to be waiting on the feed.
    absl::SleepFor(absl::Milliseconds(100));
    const absl::Time published = absl::Now();
    Publish();
    Update update;
    ASSERT_TRUE(reader->Read(&update));
    EXPECT_EQ(update.version(), version);
    EXPECT_LT(absl::Now() - published, absl::Seconds(1));
  }
  context.TryCancel();
  reader->Finish();
}

TEST_F(UpdateServiceImplTest, SubscriberWaitsForTheFirstModel) {
  Serve();
  grpc::ClientContext context;
  auto reader = stub_->SubscribeUpdates(&context, SubscribeRequest());
  ASSERT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 1; }, kPatience));
  ResetTo(4);
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_TRUE(snapshot.snapshot());
  EXPECT_EQ(snapshot.version(), 4u);
  context.TryCancel();
  reader->Finish();
}

TEST_F(UpdateServiceImplTest, CancelledSubscriptionIsNoLongerOpen) {
  ResetTo(3);
  Serve();
  grpc::ClientContext context;
  auto reader = stub_->SubscribeUpdates(&context, Holding(0, "leaving"));
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.version(), 3u);
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        const std::vector<UpdateServiceImpl::Subscriber> open = service_->OpenSubscribers();
        return open.size() == 1 && open[0].name == "leaving" && open[0].version == 3;
      },
      kPatience));
  EXPECT_EQ(service_->subscribers(), 1u);
  context.TryCancel();
  reader->Finish();
  EXPECT_TRUE(test::WaitUntil(
      [&] { return service_->subscribers() == 0 && service_->OpenSubscribers().empty(); },
      kPatience));
}

TEST_F(UpdateServiceImplTest, ServerShutdownEndsIdleSubscriptions) {
  ResetTo(1);
  Serve();
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<Update>>> readers;
  for (int s = 0; s < 5; ++s) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub_->SubscribeUpdates(contexts.back().get(), SubscribeRequest()));
    Update snapshot;
    ASSERT_TRUE(readers.back()->Read(&snapshot));
  }
  // And one that holds the head: it has had nothing at all.
  contexts.push_back(std::make_unique<grpc::ClientContext>());
  readers.push_back(stub_->SubscribeUpdates(contexts.back().get(), Holding(1, "at head")));
  ASSERT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 6; }, kPatience));
  const absl::Time start = absl::Now();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(service_->subscribers(), 0u);
  for (auto& reader : readers) {
    Update none;
    EXPECT_FALSE(reader->Read(&none));
    EXPECT_FALSE(reader->Finish().ok());
  }
}

// A client that stops reading leaves a write outstanding (the stream is
// full); cancelling it, or shutting the server down, still ends it.
TEST_F(UpdateServiceImplTest, SubscriptionsStuckOnAFullStreamEnd) {
  ResetTo(1);
  ServeOverTcp();
  grpc::ClientContext cancelled_context;
  auto cancelled = stub_->SubscribeUpdates(&cancelled_context, Holding(1, "cancelled"));
  grpc::ClientContext shut_context;
  auto shut = stub_->SubscribeUpdates(&shut_context, Holding(1, "shut"));
  ASSERT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 2; }, kPatience));
  constexpr size_t kMiB = size_t{1} << 20;
  for (int i = 0; i < 48; ++i) Publish(kMiB);
  // Neither reads: after a few MiB in flight, the next write waits.
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        for (const UpdateServiceImpl::Subscriber& open : service_->OpenSubscribers()) {
          if (open.version == 1) return false;
        }
        return true;
      },
      kPatience));
  for (const UpdateServiceImpl::Subscriber& open : service_->OpenSubscribers()) {
    EXPECT_LT(open.version, 49u) << open.name << " was sent everything";
  }
  cancelled_context.TryCancel();
  EXPECT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 1; }, kPatience));
  const absl::Time start = absl::Now();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(service_->subscribers(), 0u);
  EXPECT_FALSE(cancelled->Finish().ok());
  shut_context.TryCancel();
  EXPECT_FALSE(shut->Finish().ok());
}

TEST_F(UpdateServiceImplTest, ClosingTheFeedEndsSubscriptionsWithUnavailable) {
  ResetTo(1);
  Serve();
  grpc::ClientContext context;
  auto reader = stub_->SubscribeUpdates(&context, SubscribeRequest());
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  feed_->Close();
  Update none;
  EXPECT_FALSE(reader->Read(&none));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("the test feed"));
  EXPECT_TRUE(test::WaitUntil([&] { return service_->subscribers() == 0; }, kPatience));
}

TEST_F(UpdateServiceImplTest, SubscribersBeyondTheLimitAreRefused) {
  ResetTo(1);
  Serve(/*max_subscribers=*/1);
  grpc::ClientContext first_context;
  auto first = stub_->SubscribeUpdates(&first_context, SubscribeRequest());
  Update snapshot;
  ASSERT_TRUE(first->Read(&snapshot));
  grpc::ClientContext second_context;
  auto second = stub_->SubscribeUpdates(&second_context, SubscribeRequest());
  Update none;
  EXPECT_FALSE(second->Read(&none));
  const grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--test_max_subscribers"));
  EXPECT_EQ(service_->subscribers(), 1u);
  first_context.TryCancel();
  first->Finish();
}

TEST_F(UpdateServiceImplTest, CallersWithoutTheSubscribeRoleAreRefused) {
  const std::string kSubscriber = "0123456789abcdef0123";
  const std::string kStatusOnly = "fedcba9876543210fedc";
  absl::StatusOr<std::unique_ptr<AccessPolicy>> policy = AccessPolicy::Parse(
      absl::StrCat(kSubscriber, " server subscribe\n", kStatusOnly, " prober status\n"),
      "test tokens");
  ASSERT_OK(policy);
  ResetTo(1);
  Serve(/*max_subscribers=*/256, policy->get());
  auto refusal = [&](const std::string& token) {
    grpc::ClientContext context;
    AttachBearerToken(token, &context);
    auto reader = stub_->SubscribeUpdates(&context, SubscribeRequest());
    Update none;
    EXPECT_FALSE(reader->Read(&none));
    return reader->Finish();
  };
  EXPECT_EQ(refusal("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(refusal(kStatusOnly).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(service_->subscribers(), 0u);

  grpc::ClientContext context;
  AttachBearerToken(kSubscriber, &context);
  auto reader = stub_->SubscribeUpdates(&context, SubscribeRequest());
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_TRUE(snapshot.snapshot());
  context.TryCancel();
  reader->Finish();
}

}  // namespace
}  // namespace contrail
