// Status propagation helpers. Debian's Abseil (20220623) predates
// ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN, so contrail carries its own.
#ifndef CONTRAIL_COMMON_STATUS_MACROS_H_
#define CONTRAIL_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns the status of `expr` from the enclosing function when it is not OK.
#define CONTRAIL_RETURN_IF_ERROR(expr)                 \
  do {                                                 \
    const ::absl::Status contrail_status_ = (expr);    \
    if (!contrail_status_.ok()) return contrail_status_; \
  } while (false)

#define CONTRAIL_STATUS_CONCAT_INNER_(a, b) a##b
#define CONTRAIL_STATUS_CONCAT_(a, b) CONTRAIL_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK,
// otherwise moves its value into `lhs` (a declaration or an lvalue).
#define CONTRAIL_ASSIGN_OR_RETURN(lhs, rexpr)                                  \
  CONTRAIL_ASSIGN_OR_RETURN_IMPL_(                                             \
      CONTRAIL_STATUS_CONCAT_(contrail_statusor_, __LINE__), lhs, rexpr)

#define CONTRAIL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) return statusor.status();               \
  lhs = std::move(statusor).value()

#endif  // CONTRAIL_COMMON_STATUS_MACROS_H_
