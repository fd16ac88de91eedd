#include "common/access_policy.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/transport_security.h"

namespace contrail {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr char kBearerPrefix[] = "Bearer ";
constexpr Role kAllRoles[] = {Role::kSubscribe, Role::kIngest, Role::kPredict, Role::kStatus};

// Compares in time that depends on the lengths only, not on where the
// first difference lies.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ |= static_cast<unsigned char>(a[i] ^ b[i]);
  return differ == 0;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSubscribe:
      return "subscribe";
    case Role::kIngest:
      return "ingest";
    case Role::kPredict:
      return "predict";
    case Role::kStatus:
      return "status";
  }
  return "unknown";
}

const AccessPolicy& AccessPolicy::Open() {
  static const AccessPolicy* const open = new AccessPolicy({});
  return *open;
}

absl::StatusOr<std::unique_ptr<AccessPolicy>> AccessPolicy::Parse(const std::string& text,
                                                                  const std::string& source) {
  std::vector<Entry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    const std::string where = absl::StrCat(source, ":", line_number, ": ");
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "expected \"<token> <name> <role>[,<role>...]\", got ", fields.size(),
          " fields"));
    }
    Entry entry;
    entry.token = std::string(fields[0]);
    entry.name = std::string(fields[1]);
    if (entry.token.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "the token of ", entry.name, " has ", entry.token.size(),
          " characters; at least ", kMinTokenLength,
          " are needed (e.g. openssl rand -hex 16)"));
    }
    for (const Entry& other : entries) {
      if (other.token == entry.token) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "the token of ", entry.name, " is also ", other.name, "'s"));
      }
    }
    for (absl::string_view role_name : absl::StrSplit(fields[2], ',', absl::SkipEmpty())) {
      if (role_name == "all") {
        entry.roles.assign(std::begin(kAllRoles), std::end(kAllRoles));
        continue;
      }
      bool known = false;
      for (Role role : kAllRoles) {
        if (role_name == RoleName(role)) {
          entry.roles.push_back(role);
          known = true;
        }
      }
      if (!known) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "unknown role \"", role_name,
            "\" (roles: subscribe, ingest, predict, status, all)"));
      }
    }
    if (entry.roles.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, entry.name, " has no role"));
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " holds no token; without tokens, leave --tokens_file out"));
  }
  return std::unique_ptr<AccessPolicy>(new AccessPolicy(std::move(entries)));
}

absl::StatusOr<std::unique_ptr<AccessPolicy>> AccessPolicy::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFlagFile("tokens_file", path);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

grpc::Status AccessPolicy::Check(const grpc::ServerContextBase& context, Role role) const {
  if (open()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("this call needs a bearer token with the ",
                                     RoleName(role),
                                     " role (metadata \"authorization: Bearer <token>\")"));
  }
  const absl::string_view value(found->second.data(), found->second.size());
  if (!absl::StartsWith(value, kBearerPrefix)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata must read \"Bearer <token>\"");
  }
  const absl::string_view token = value.substr(sizeof(kBearerPrefix) - 1);
  const Entry* match = nullptr;
  for (const Entry& entry : entries_) {
    if (SameSecret(entry.token, token)) match = &entry;
  }
  if (match == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
  }
  for (Role held : match->roles) {
    if (held == role) return grpc::Status::OK;
  }
  std::vector<std::string> held;
  for (Role r : match->roles) held.push_back(RoleName(r));
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("token \"", match->name, "\" may not ", RoleName(role),
                                   " (its roles: ", absl::StrJoin(held, ","), ")"));
}

void AttachBearerToken(const std::string& token, grpc::ClientContext* context) {
  if (token.empty()) return;
  context->AddMetadata("authorization", absl::StrCat(kBearerPrefix, token));
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& flag, const std::string& path) {
  if (path.empty()) return std::string();
  absl::StatusOr<std::string> text = ReadFlagFile(flag, path);
  if (!text.ok()) return text.status();
  const std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  }
  return token;
}

}  // namespace contrail
