// gRPC IngestService of the trainer: producers stream labelled examples into
// its IngestQueue (--source=ingest). Each call validates and queues its
// examples in order; a bad example is counted and skipped, a full queue
// holds the call back (flow control), and the summary says what was
// accepted and what was rejected and why, as does one log line per call.
//
// Thread-safe: each call runs on its own gRPC thread.
#ifndef CONTRAIL_TRAINER_INGEST_SERVICE_IMPL_H_
#define CONTRAIL_TRAINER_INGEST_SERVICE_IMPL_H_

#include <string>

#include "common/access_policy.h"
#include "proto/contrail.grpc.pb.h"
#include "trainer/ingest_queue.h"

namespace contrail {

class IngestServiceImpl final : public IngestService::Service {
 public:
  // `queue` must outlive the service; null when the trainer reads another
  // source (`source` names it), so that every call fails with
  // FAILED_PRECONDITION. Callers without the ingest role under `access`
  // (which must outlive the service) are refused.
  IngestServiceImpl(IngestQueue* queue, std::string source,
                    const AccessPolicy* access = &AccessPolicy::Open())
      : queue_(queue), source_(std::move(source)), access_(access) {}

  grpc::Status Ingest(grpc::ServerContext* context, grpc::ServerReader<Example>* reader,
                      IngestSummary* summary) override;

 private:
  IngestQueue* const queue_;
  const std::string source_;
  const AccessPolicy* const access_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_INGEST_SERVICE_IMPL_H_
