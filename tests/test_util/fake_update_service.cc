#include "tests/test_util/fake_update_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "common/status_macros.h"

namespace contrail {
namespace test {
namespace {

// How often a held stream checks whether its client cancelled: gRPC's
// synchronous API has no notification for it.
constexpr absl::Duration kCancelPoll = absl::Milliseconds(5);

}  // namespace

class FakeUpdateService::Service final : public UpdateService::Service {
 public:
  explicit Service(FakeUpdateService* owner) : owner_(owner) {}

  grpc::Status SubscribeUpdates(grpc::ServerContext* context,
                                const SubscribeRequest* request,
                                grpc::ServerWriter<Update>* writer) override {
    return owner_->Subscribe(context, *request, writer);
  }

 private:
  FakeUpdateService* const owner_;
};

FakeUpdateService::FakeUpdateService() : service_(std::make_unique<Service>(this)) {}

absl::StatusOr<std::unique_ptr<FakeUpdateService>> FakeUpdateService::Start(
    const std::string& listen, std::vector<Stream> streams) {
  std::unique_ptr<FakeUpdateService> fake(new FakeUpdateService);
  for (Stream& stream : streams) fake->AddStream(std::move(stream));
  CONTRAIL_ASSIGN_OR_RETURN(StartedServer started,
                            StartGrpcServer(listen, {fake->service_.get()}));
  fake->server_ = std::move(started.server);
  fake->port_ = started.port;
  return fake;
}

FakeUpdateService::~FakeUpdateService() { Stop(); }

std::string FakeUpdateService::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeUpdateService::AddStream(Stream stream) {
  absl::MutexLock lock(&mu_);
  streams_.push_back(std::move(stream));
}

std::vector<SubscribeRequest> FakeUpdateService::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool FakeUpdateService::WaitForRequests(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto arrived = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout);
}

void FakeUpdateService::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // Held streams see stopped_ within kCancelPoll; the deadline only bounds
  // a handler stuck in a write.
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
}

grpc::Status FakeUpdateService::Subscribe(grpc::ServerContext* context,
                                          const SubscribeRequest& request,
                                          grpc::ServerWriter<Update>* writer) {
  Stream stream;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    if (!streams_.empty()) {
      stream = std::move(streams_.front());
      streams_.pop_front();
    }
  }
  for (const Update& update : stream.updates) {
    if (!writer->Write(update)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away");
    }
  }
  if (!stream.hold_open) return stream.end_status;
  absl::MutexLock lock(&mu_);
  while (!context->IsCancelled() &&
         !mu_.AwaitWithTimeout(absl::Condition(&stopped_), kCancelPoll)) {
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the fake trainer stopped");
}

}  // namespace test
}  // namespace contrail
