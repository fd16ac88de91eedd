// Certificates for TLS tests, made at test time with openssl (never
// shipped): a CA, a certificate it signed for localhost and 127.0.0.1
// that serves both as a server's and as a client's, and a second,
// unrelated CA with a certificate of its own, for the "wrong CA" cases.
//
// Free function; call it from one thread.
#ifndef CONTRAIL_TESTS_TEST_UTIL_TEST_CERTIFICATES_H_
#define CONTRAIL_TESTS_TEST_UTIL_TEST_CERTIFICATES_H_

#include <string>

#include "absl/status/statusor.h"

namespace contrail {
namespace test {

// Paths of PEM files.
struct TestCertificates {
  std::string ca;          // the CA's certificate
  std::string cert;        // signed by `ca`; serverAuth and clientAuth
  std::string key;         // its key
  std::string other_ca;    // an unrelated CA
  std::string other_cert;  // signed by `other_ca`, same names as `cert`
  std::string other_key;
};

// Makes them in `dir` (created if missing) with the openssl command line
// tool. INTERNAL with openssl's output when a step fails.
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_TEST_CERTIFICATES_H_
