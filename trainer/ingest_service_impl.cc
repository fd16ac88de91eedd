#include "trainer/ingest_service_impl.h"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "trainer/example_validator.h"

namespace contrail {

grpc::Status IngestServiceImpl::Ingest(grpc::ServerContext* context,
                                       grpc::ServerReader<Example>* reader,
                                       IngestSummary* summary) {
  if (grpc::Status allowed = access_->Check(*context, Role::kIngest); !allowed.ok()) {
    return allowed;
  }
  if (queue_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("this trainer reads its examples from ", source_,
                                     "; start it with --source=ingest to send them "
                                     "over IngestService"));
  }
  RejectionCounter rejections;
  int64_t accepted = 0;
  int64_t position = 0;
  absl::Status outcome;
  Example example;
  const auto cancelled = [context] { return context->IsCancelled(); };
  while (reader->Read(&example)) {
    absl::StatusOr<std::optional<Rejection>> added =
        queue_->Add(example, position, cancelled);
    if (!added.ok()) {
      outcome = added.status();
      break;
    }
    if (added->has_value()) {
      rejections.Record(**added, position, example.id());
    } else {
      ++accepted;
    }
    ++position;
  }
  summary->set_accepted(accepted);
  summary->set_rejected(rejections.total());
  for (const auto& [reason, count] : rejections.by_reason()) {
    (*summary->mutable_rejected_by_reason())[reason] = count;
  }
  for (const std::string& first : rejections.first()) summary->add_first_rejections(first);
  const std::string rejected = rejections.Summary();
  spdlog::info("ingest from {}: {} examples accepted{}{}{}", context->peer(), accepted,
               rejected.empty() ? "" : ", ", rejected,
               outcome.ok() ? "" : absl::StrCat("; ended: ", outcome.ToString()));
  if (!outcome.ok()) {
    return ToGrpcStatus(absl::Status(
        outcome.code(), absl::StrCat(outcome.message(), " (", accepted,
                                     " examples of this call were accepted before)")));
  }
  return grpc::Status::OK;
}

}  // namespace contrail
