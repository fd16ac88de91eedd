"""Runs contrail's real trainer and server binaries as child processes for
tests (the Python counterpart of tests/integration_test.cc's ChildProcess).

Each daemon listens on 127.0.0.1 port 0 and writes the port it bound to
--port_file, which start() waits for; its stdout and stderr go to files in
the given directory. The children die with the test process (setpriv
--pdeathsig) should it be killed before stop(). Not thread-safe.
"""

import os
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Optional

# From exec to the port file: loading LibTorch, reading the data.
START_TIMEOUT_S = 60.0
POLL_S = 0.02


def runfile(path: str) -> str:
    """A file of this workspace's runfiles, e.g. runfile("trainer/trainer")."""
    root = os.environ.get("TEST_SRCDIR")
    if not root:
        raise RuntimeError("TEST_SRCDIR is not set: run under bazel test")
    return os.path.join(root, os.environ.get("TEST_WORKSPACE", "contrail"), path)


class Daemon:
    """One started daemon: its process, port and logs."""

    def __init__(self, name: str, process: subprocess.Popen, port: int, log_prefix: str):
        self.name = name
        self.process = process
        self.port = port
        self._log_prefix = log_prefix

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float = 10.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after `grace_s`; reaps it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def logs(self) -> str:
        parts = []
        for stream in ("stdout", "stderr"):
            try:
                with open(f"{self._log_prefix}.{stream}", errors="replace") as f:
                    parts.append(f"---- {self.name} {stream} ----\n{f.read()}")
            except OSError as error:
                parts.append(f"---- {self.name} {stream}: {error}")
        return "\n".join(parts)


class DaemonSet:
    """Starts daemons and stops every one of them in stop_all()."""

    def __init__(self, directory: str):
        self._directory = directory
        self._started = 0
        self.daemons: List[Daemon] = []

    def start(self, name: str, binary: str, flags: Dict[str, str]) -> Daemon:
        """Starts `binary` (a runfile path) with --flag=value `flags` plus
        --listen=127.0.0.1:0 (unless given) and --port_file; returns once it
        listens. Raises RuntimeError when it exits first or writes no port
        within START_TIMEOUT_S."""
        self._started += 1
        prefix = os.path.join(self._directory, f"{name}-{self._started}")
        port_file = prefix + ".port"
        flags = dict(flags)
        flags.setdefault("listen", "127.0.0.1:0")
        flags["port_file"] = port_file
        command = [runfile(binary)] + [f"--{k}={v}" for k, v in flags.items()]
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "KILL", "--"] + command
        with open(prefix + ".stdout", "wb") as out, open(prefix + ".stderr", "wb") as err:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err)
        daemon = Daemon(name, process, 0, prefix)
        self.daemons.append(daemon)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text.isdigit() and int(text) > 0:
                    daemon.port = int(text)
                    return daemon
            except FileNotFoundError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before "
                                   f"listening:\n{daemon.logs()}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{name} wrote no port file in {START_TIMEOUT_S} s:\n"
                                   f"{daemon.logs()}")
            time.sleep(POLL_S)

    def stop_all(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()

    def logs(self) -> str:
        return "\n".join(daemon.logs() for daemon in self.daemons)
