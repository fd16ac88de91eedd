// --tls_cert, --tls_key and --tls_ca, shared by every contrail binary that
// serves or calls gRPC (both daemons, contrailctl), so that they mean the
// same everywhere: see common/transport_security.h. Only main.cc files
// depend on this (STYLE.md: no library reads a flag).
#ifndef CONTRAIL_COMMON_TLS_FLAGS_H_
#define CONTRAIL_COMMON_TLS_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "common/transport_security.h"

ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_ca);

namespace contrail {

// The three flags as TlsOptions.
TlsOptions TlsFlags();

}  // namespace contrail

#endif  // CONTRAIL_COMMON_TLS_FLAGS_H_
