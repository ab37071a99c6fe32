"""Runs accel-dra-plugin as a child process for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest


def plugin_binary() -> str:
    p = os.environ.get("ACCEL_DRA_PLUGIN")
    if not p:
        build = os.environ.get("ACCEL_DRA_BUILD_DIR", "build")
        p = str(Path(build) / "src" / "cmd" / "plugin" / "accel-dra-plugin")
    if not Path(p).is_file():
        pytest.fail(f"accel-dra-plugin binary not found at {p} (set ACCEL_DRA_PLUGIN)", pytrace=False)
    return p


class PluginProcess:
    """One running plugin. Logs go to <tmp>/plugin-<n>.log; stop() sends SIGTERM and returns the
    exit code (a crash — death by signal — fails the test)."""

    def __init__(self, args: list[str], log: Path, env: Optional[dict] = None):
        self.args = [plugin_binary(), *args]
        self.log_path = log
        self._log = open(log, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"plugin did not stop within {timeout}s after signal {sig}; "
                                     f"log:\n{self.log()[-3000:]}")
        self._log.close()
        rc = self.proc.returncode
        assert rc >= 0 or sig == signal.SIGKILL, \
            f"plugin died of signal {-rc}; log:\n{self.log()[-3000:]}"
        return rc


@pytest.fixture
def run_plugin(cluster, tmp_path):
    """run_plugin(node, *extra_args, kubeconfig=None, env=None) starts the plugin for `node`
    against the test cluster and stops it (SIGTERM) after the test."""
    procs: list[PluginProcess] = []

    def start(node: str, *extra: str, kubeconfig: Optional[str] = None,
              env: Optional[dict] = None) -> PluginProcess:
        args = [f"--kubeconfig={kubeconfig or cluster.kubeconfig}", f"--node-name={node}", *extra]
        # Never the host's /var/lib/kubelet or /var/run/cdi: per-plugin dirs unless the test
        # chose its own.
        for flag, sub in (("--kubelet-registrar-directory-path", "registry"),
                          ("--kubelet-plugins-directory-path", "plugins"), ("--cdi-root", "cdi")):
            if not any(a.startswith(flag) for a in extra):
                d = tmp_path / f"plugin-{len(procs)}-{sub}"
                d.mkdir(parents=True, exist_ok=True)
                args.append(f"{flag}={d}")
        p = PluginProcess(args, tmp_path / f"plugin-{len(procs)}.log", env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.alive():
            p.stop()
