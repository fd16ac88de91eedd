// An in-process stand-in for the trainer's UpdateService: a real gRPC
// server on a loopback port that serves scripted update streams and records
// every SubscribeRequest, so that server-side tests can drive a subscriber
// through snapshots, deltas, rejections and a trainer that goes away.
//
// Each subscription takes the next scripted Stream in order; one that finds
// none is held open, sending nothing, until its client cancels or Stop().
// Stop() ends every stream and shuts the server down, as a trainer that
// goes away; a later FakeUpdateService::Start() on the same address plays
// the trainer coming back.
//
// This class is thread-safe.
#ifndef CONTRAIL_TESTS_TEST_UTIL_FAKE_UPDATE_SERVICE_H_
#define CONTRAIL_TESTS_TEST_UTIL_FAKE_UPDATE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/contrail.grpc.pb.h"

namespace contrail {
namespace test {

class FakeUpdateService {
 public:
  // What one subscription receives.
  struct Stream {
    // Sent in order.
    std::vector<Update> updates;
    // After the updates: hold the stream open until the client cancels or
    // Stop() (true), or end it at once with `end_status` (false).
    bool hold_open = true;
    grpc::Status end_status{grpc::StatusCode::UNAVAILABLE, "the script ended the stream"};
  };

  // Serves on `listen` ("host:port"; port 0 picks a free one) with
  // `streams` scripted before the first subscription can arrive.
  static absl::StatusOr<std::unique_ptr<FakeUpdateService>> Start(
      const std::string& listen = "127.0.0.1:0", std::vector<Stream> streams = {});

  ~FakeUpdateService();
  FakeUpdateService(const FakeUpdateService&) = delete;
  FakeUpdateService& operator=(const FakeUpdateService&) = delete;

  int port() const { return port_; }
  // "127.0.0.1:<port>".
  std::string address() const;

  // Scripts the stream of the next subscription that has none yet.
  void AddStream(Stream stream) ABSL_LOCKS_EXCLUDED(mu_);

  // Every SubscribeRequest received, in order.
  std::vector<SubscribeRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until `count` subscriptions have arrived; false after `timeout`.
  bool WaitForRequests(size_t count, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every stream (UNAVAILABLE) and shuts the server down; idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Service;

  FakeUpdateService();

  grpc::Status Subscribe(grpc::ServerContext* context, const SubscribeRequest& request,
                         grpc::ServerWriter<Update>* writer) ABSL_LOCKS_EXCLUDED(mu_);

  // Protects the script, the record of requests and the stopped flag.
  mutable absl::Mutex mu_;
  std::deque<Stream> streams_ ABSL_GUARDED_BY(mu_);
  std::vector<SubscribeRequest> requests_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  // Constant after Start().
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_FAKE_UPDATE_SERVICE_H_
