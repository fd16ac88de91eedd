// Who may call what: bearer tokens with roles, checked on every RPC.
//
// A tokens file (--tokens_file) lists one token per line:
//
//   # token                          name      roles
//   3b1f0c9e5d7a4e2f8c6b1a0d9e8f7c6b  server-1  subscribe,status
//   a7c2...                           feeder    ingest
//
// Roles: subscribe (SubscribeUpdates: the model and every change to it),
// ingest (Ingest), predict (Predict and the Open Inference Protocol),
// status (GetStatus); "all" grants every role. Tokens are at least 16
// characters. Clients send "authorization: Bearer <token>" metadata
// (AttachBearerToken()).
//
// Without a tokens file the policy is open: every caller has every role,
// as before tokens existed. Health checks and reflection stay open either
// way, so that probes need no secret.
//
// Immutable after construction; thread-safe.
#ifndef CONTRAIL_COMMON_ACCESS_POLICY_H_
#define CONTRAIL_COMMON_ACCESS_POLICY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace contrail {

enum class Role { kSubscribe, kIngest, kPredict, kStatus };

// "subscribe", "ingest", "predict", "status".
const char* RoleName(Role role);

class AccessPolicy {
 public:
  // Every caller may do everything. Lives for the whole process.
  static const AccessPolicy& Open();

  // The tokens of `text` (the format above); `source` names it in errors.
  // INVALID_ARGUMENT naming the line for a malformed line, an unknown role,
  // a short or repeated token, or a text without tokens.
  static absl::StatusOr<std::unique_ptr<AccessPolicy>> Parse(const std::string& text,
                                                             const std::string& source);

  // Parse() of the file at `path`; INVALID_ARGUMENT naming tokens_file when
  // it cannot be read.
  static absl::StatusOr<std::unique_ptr<AccessPolicy>> FromFile(const std::string& path);

  AccessPolicy(const AccessPolicy&) = delete;
  AccessPolicy& operator=(const AccessPolicy&) = delete;

  // OK when the caller of `context` may act as `role`. UNAUTHENTICATED when
  // it sent no bearer token or an unknown one; PERMISSION_DENIED, naming the
  // token's name and roles, when the token lacks `role`.
  grpc::Status Check(const grpc::ServerContextBase& context, Role role) const;

  // True when there are no tokens (Open()).
  bool open() const { return entries_.empty(); }

  // How many tokens there are.
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string token;
    std::string name;
    std::vector<Role> roles;
  };

  explicit AccessPolicy(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  // Constant after construction.
  const std::vector<Entry> entries_;
};

// Adds "authorization: Bearer <token>" to `context`; nothing when `token`
// is empty.
void AttachBearerToken(const std::string& token, grpc::ClientContext* context);

// The token in the file at `path` (surrounding whitespace removed): how a
// client keeps its token off the command line. INVALID_ARGUMENT naming
// `flag` when the file cannot be read or is empty; "" for an empty path.
absl::StatusOr<std::string> ReadTokenFile(const std::string& flag, const std::string& path);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_ACCESS_POLICY_H_
