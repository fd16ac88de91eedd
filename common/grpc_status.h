// The one place where absl::Status becomes grpc::Status, at the RPC edge
// (as TF Serving's ToGRPCStatus). Stateless; thread-safe.
#ifndef CONTRAIL_COMMON_GRPC_STATUS_H_
#define CONTRAIL_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace contrail {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace contrail

#endif  // CONTRAIL_COMMON_GRPC_STATUS_H_
