// TLS for contrail's gRPC ports and the rule about who may reach them.
//
// Both daemons and contrailctl take --tls_cert, --tls_key and --tls_ca (PEM
// files). A daemon serves TLS with the certificate and key; with a CA it
// also verifies client certificates against it (mutual TLS), which the
// trainer requires of every client, since its port carries the update
// channel. As a client (a server following a trainer, contrailctl) the
// same files present the certificate and verify the peer against the CA,
// so one certificate made for both serverAuth and clientAuth serves a
// machine's daemon and its connections.
//
// Nothing listens beyond loopback in plaintext unless the user says
// --insecure: CheckExposure() is the one place that decides.
//
// Free functions; thread-safe.
#ifndef CONTRAIL_COMMON_TRANSPORT_SECURITY_H_
#define CONTRAIL_COMMON_TRANSPORT_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace contrail {

// PEM files; each empty when not given.
struct TlsOptions {
  // --tls_cert: the certificate chain this side presents.
  std::string cert_file;
  // --tls_key: its private key.
  std::string key_file;
  // --tls_ca: the CA certificates that verify the other side.
  std::string ca_file;

  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !ca_file.empty(); }
};

// What a TLS server asks of its clients.
enum class ClientCertificates {
  // TLS only: clients are not asked for a certificate.
  kNotRequested,
  // A client certificate, when sent, must verify against the CA; clients
  // without one are served (a server's Predict port with a relay on it).
  kVerifyIfPresent,
  // Mutual TLS: every client presents a certificate that verifies.
  kRequired,
};

// Server credentials for `tls`: plaintext when !tls.enabled(); otherwise
// TLS with cert_file and key_file (both required) and, as `clients` asks,
// client certificates verified against ca_file (required unless
// kNotRequested). INVALID_ARGUMENT naming the flag (tls_cert, tls_key,
// tls_ca) when a file is missing, unreadable or not PEM.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& tls, ClientCertificates clients);

// Channel credentials for a client: plaintext when !tls.enabled();
// otherwise TLS that verifies the server against ca_file (required) and
// presents cert_file and key_file when given (both or neither).
// INVALID_ARGUMENT naming the flag as above.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& tls);

// True when `listen` ("host:port") binds only a loopback address:
// localhost, 127.0.0.0/8 or ::1.
bool IsLoopbackListen(const std::string& listen);

// OK when `listen` is loopback, or `tls` is on, or `insecure`; otherwise
// FAILED_PRECONDITION in one line that names `flag` and the two ways out.
absl::Status CheckExposure(const std::string& flag, const std::string& listen, bool tls,
                           bool insecure);

// The contents of the file at `path`, which `flag` named; INVALID_ARGUMENT
// naming `flag` when it cannot be read. For the secrets of the security
// flags: certificates, keys, tokens.
absl::StatusOr<std::string> ReadFlagFile(const std::string& flag, const std::string& path);

// ReadFlagFile() of a PEM file; INVALID_ARGUMENT naming `flag` also when
// it holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_TRANSPORT_SECURITY_H_
