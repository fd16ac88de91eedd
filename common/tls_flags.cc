#include "common/tls_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to present (a daemon serves TLS with it; a client "
          "shows it as its client certificate); made for serverAuth and clientAuth");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates that verify the other side: the trainer requires client "
          "certificates signed by it (mutual TLS), servers and contrailctl verify "
          "the daemon they call with it");

namespace contrail {

TlsOptions TlsFlags() {
  TlsOptions tls;
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  return tls;
}

}  // namespace contrail
