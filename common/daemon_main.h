// What the main() of every contrail daemon shares: the flags every daemon
// has (--port_file, --threads, --tokens_file, --insecure; the TLS flags
// are in common/tls_flags.h), start-up (flag parsing, signal blocking, log
// format) and the one way a daemon gives up at start-up.
//
// Each daemon keeps its own --listen (the defaults differ) and its own
// flags; only main.cc files depend on this library, so that no library
// reads a flag (STYLE.md). It stays torch-free: a daemon that runs LibTorch
// applies ThreadsFlag() itself (SetLibTorchThreads in common/model.h).
//
// Free functions, called from the main thread: InitDaemon() first, before
// any thread starts; the others after it.
#ifndef CONTRAIL_COMMON_DAEMON_MAIN_H_
#define CONTRAIL_COMMON_DAEMON_MAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "common/daemon.h"
#include "spdlog/spdlog.h"

ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, metrics_port_file);
ABSL_DECLARE_FLAG(int32_t, threads);
ABSL_DECLARE_FLAG(std::string, tokens_file);
ABSL_DECLARE_FLAG(bool, insecure);

namespace contrail {

// Ends the process at start-up with one line, "<program>: <message>", on
// stderr and exit status 2.
[[noreturn]] void Fail(const std::string& program, const std::string& message);
[[noreturn]] void Fail(const std::string& program, const absl::Status& status);

// Parses the command line (`usage` is what --help prints above the flags),
// checks the shared flags (Fail() naming the flag when one is out of range),
// blocks SIGINT and SIGTERM for every thread started later (see
// WaitForTerminationSignal() in common/daemon.h), and makes every log line
// name `program`. Returns the positional arguments, argv[0] first.
std::vector<char*> InitDaemon(const std::string& program, const std::string& usage,
                              int argc, char** argv);

// --threads: intra-op threads for LibTorch, >= 0; 0 keeps LibTorch's
// default.
int ThreadsFlag();

// Writes `port` to --port_file (atomically; nothing when the flag is unset),
// so that a caller that asked for port 0 learns the bound port.
absl::Status WritePortFileFlag(int port);
// Writes `port` to --metrics_port_file; nothing when the flag is unset or
// `port` is 0 (no --metrics_listen).
absl::Status WriteMetricsPortFileFlag(int port);

// --metrics_listen: host:port for /metrics and the status page; empty:
// none.
std::string MetricsListenFlag();

// The life of a created daemon (TrainerDaemon, ServerDaemon: Start(),
// port(), metrics_port(), Shutdown()) in its main: starts it, writes
// --port_file (and --metrics_port_file when it serves metrics), serves
// until SIGINT or SIGTERM, shuts it down; Fail()s when it cannot start.
// Returns main's exit status.
template <typename Daemon>
int ServeUntilSignal(const std::string& program, Daemon& daemon) {
  if (absl::Status started = daemon.Start(); !started.ok()) Fail(program, started);
  if (absl::Status written = WritePortFileFlag(daemon.port()); !written.ok()) {
    daemon.Shutdown();
    Fail(program, written);
  }
  if (absl::Status written = WriteMetricsPortFileFlag(daemon.metrics_port());
      !written.ok()) {
    daemon.Shutdown();
    Fail(program, written);
  }
  const int signal = WaitForTerminationSignal();
  spdlog::info("signal {} received: shutting down", signal);
  daemon.Shutdown();
  return 0;
}

}  // namespace contrail

#endif  // CONTRAIL_COMMON_DAEMON_MAIN_H_
