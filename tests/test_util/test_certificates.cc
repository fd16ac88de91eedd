#include "tests/test_util/test_certificates.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/test_util/child_process.h"

namespace contrail {
namespace test {
namespace {

// Runs `command` through the shell with its output in `log`; INTERNAL with
// that output when it fails.
absl::Status Run(const std::string& command, const std::string& log) {
  const int status = std::system(absl::StrCat(command, " >", log, " 2>&1").c_str());
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (", status, "): ", ReadFileOrEmpty(log)));
  }
  return absl::OkStatus();
}

// A CA key and self-signed certificate at `prefix`.key/.pem.
absl::Status MakeCa(const std::string& prefix, const std::string& name) {
  return Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=", name,
                          "' -keyout ", prefix, ".key -out ", prefix, ".pem"),
             prefix + ".log");
}

// A key and a certificate for localhost at `prefix`.key/.pem, signed by
// the CA at `ca_prefix`.
absl::Status MakeLeaf(const std::string& dir, const std::string& prefix,
                      const std::string& ca_prefix) {
  const std::string extensions = prefix + ".ext";
  std::ofstream(extensions) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n"
                               "basicConstraints=CA:FALSE\n";
  if (absl::Status s = Run(absl::StrCat("openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost'",
                                        " -keyout ", prefix, ".key -out ", prefix, ".csr"),
                           prefix + ".log");
      !s.ok()) {
    return s;
  }
  return Run(absl::StrCat("openssl x509 -req -in ", prefix, ".csr -CA ", ca_prefix,
                          ".pem -CAkey ", ca_prefix, ".key -CAcreateserial -CAserial ", dir,
                          "/serial -days 2 -extfile ", extensions, " -out ", prefix, ".pem"),
             prefix + ".log");
}

}  // namespace

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  mkdir(dir.c_str(), 0700);
  TestCertificates out;
  for (const auto& [ca, leaf, name] :
       {std::make_tuple(dir + "/ca", dir + "/leaf", std::string("contrail test CA")),
        std::make_tuple(dir + "/other_ca", dir + "/other_leaf",
                        std::string("some other CA"))}) {
    if (absl::Status s = MakeCa(ca, name); !s.ok()) return s;
    if (absl::Status s = MakeLeaf(dir, leaf, ca); !s.ok()) return s;
  }
  out.ca = dir + "/ca.pem";
  out.cert = dir + "/leaf.pem";
  out.key = dir + "/leaf.key";
  out.other_ca = dir + "/other_ca.pem";
  out.other_cert = dir + "/other_leaf.pem";
  out.other_key = dir + "/other_leaf.key";
  return out;
}

}  // namespace test
}  // namespace contrail
