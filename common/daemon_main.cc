#include "common/daemon_main.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/daemon.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once listening");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus metrics (/metrics) and a live status page "
          "(/status) on over HTTP; port 0 picks a free port (see --metrics_port_file); "
          "empty: none");
ABSL_FLAG(std::string, metrics_port_file, "",
          "if set, write the bound --metrics_listen port to this file once listening");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads; 0 keeps LibTorch's default");
ABSL_FLAG(std::string, tokens_file, "",
          "file of bearer tokens with roles, one per line: <token> <name> "
          "<role>[,<role>...] (roles: subscribe, ingest, predict, status, all); every "
          "RPC must then carry a token with its role (empty: no tokens, every caller "
          "may do everything)");
ABSL_FLAG(bool, insecure, false,
          "allow serving plaintext on a non-loopback --listen (without it, a daemon "
          "bound beyond loopback requires --tls_cert, --tls_key and --tls_ca)");

namespace contrail {

void Fail(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  std::exit(2);
}

void Fail(const std::string& program, const absl::Status& status) {
  Fail(program, std::string(status.message()));
}

std::vector<char*> InitDaemon(const std::string& program, const std::string& usage,
                              int argc, char** argv) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const int32_t threads = absl::GetFlag(FLAGS_threads);
  if (threads < 0) Fail(program, absl::StrCat("--threads must be >= 0, got ", threads));
  BlockTerminationSignals();
  spdlog::set_pattern(absl::StrCat("%Y-%m-%d %H:%M:%S.%e ", program, " %^%l%$ %v"));
  return positional;
}

int ThreadsFlag() { return absl::GetFlag(FLAGS_threads); }

absl::Status WritePortFileFlag(int port) {
  return WritePortFile(absl::GetFlag(FLAGS_port_file), port);
}

}  // namespace contrail

namespace contrail {

std::string MetricsListenFlag() { return absl::GetFlag(FLAGS_metrics_listen); }

absl::Status WriteMetricsPortFileFlag(int port) {
  if (port == 0) return absl::OkStatus();
  return WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), port);
}

}  // namespace contrail
