"""Helpers for driving accel-dra-plugin the way kubelet does, through accel-dra-kubelet-sim
(tests/tools/kubelet_sim), and for looking at what the plugin leaves on disk.

    dirs = PluginDirs.under(tmp_path)            # registrar dir, plugins dir, CDI root
    plugin = run_plugin(node, *dirs.args(), "--simulate=4")
    dirs.wait_serving()
    r = sim.prepare(dirs.dra_socket(), ("ns", "name", "uid"))   # -> SimResult
    r.rc, r.out["claims"]["uid"]["devices"], r.claim_error("uid")

Environment: ACCEL_DRA_KUBELET_SIM (the sim binary), else <ACCEL_DRA_BUILD_DIR or build>/tests/
tools/kubelet_sim/accel-dra-kubelet-sim.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import pytest

DRIVER = "accel-dra.dev"
SPEC_PREFIX = f"k8s.{DRIVER}-device_"  # CDI spec files: <prefix><claimUID>.json
SUN_PATH_MAX = 107  # usable bytes of sockaddr_un.sun_path

EXIT_OK = 0
EXIT_CALL_FAILED = 2  # connection / gRPC error
EXIT_REJECTED = 3  # the plugin answered, kubelet would fail (per-claim error, NOT_SERVING, ...)


def sim_binary() -> str:
    p = os.environ.get("ACCEL_DRA_KUBELET_SIM")
    if not p:
        build = os.environ.get("ACCEL_DRA_BUILD_DIR", "build")
        p = str(Path(build) / "tests" / "tools" / "kubelet_sim" / "accel-dra-kubelet-sim")
    if not Path(p).is_file():
        pytest.fail(f"accel-dra-kubelet-sim not found at {p} (build the accel-dra-kubelet-sim "
                    "target or set ACCEL_DRA_KUBELET_SIM)", pytrace=False)
    return p


@dataclass
class SimResult:
    args: list[str]
    rc: int
    out: Any  # decoded stdout JSON (None when stdout was not JSON)
    stdout: str
    stderr: str

    def claim(self, uid: str) -> dict:
        claims = (self.out or {}).get("claims", {})
        assert uid in claims, f"no answer for claim {uid}: {self}"
        return claims[uid]

    def claim_error(self, uid: str) -> str:
        return self.claim(uid).get("error", "")

    def devices(self, uid: str) -> list[dict]:
        return self.claim(uid).get("devices", [])

    def __str__(self) -> str:
        return (f"`accel-dra-kubelet-sim {' '.join(self.args)}` exit {self.rc}\n"
                f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}")


def run(*args: Any, timeout: float = 60) -> SimResult:
    argv = [str(a) for a in args]
    p = subprocess.run([sim_binary(), *argv], capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        out = None
    return SimResult(argv, p.returncode, out, p.stdout, p.stderr)


Claim = tuple[str, str, str]  # (namespace, name, uid)


def _claim_args(claims: Iterable[Claim]) -> list[str]:
    out: list[str] = []
    for ns, name, uid in claims:
        out += ["--claim", f"{ns}/{name}/{uid}"]
    return out


def register(registrar_dir: Path, driver: str = DRIVER, pod_uid: str = "",
             *extra: str) -> SimResult:
    args = ["register", "--registrar-dir", registrar_dir, "--driver", driver, *extra]
    if pod_uid:
        args += ["--pod-uid", pod_uid]
    return run(*args)


def prepare(socket_path: Path, *claims: Claim, api: str = "v1",
            timeout_ms: int = 20000) -> SimResult:
    return run("prepare", "--socket", socket_path, "--api", api, "--timeout-ms", timeout_ms,
               *_claim_args(claims))


def unprepare(socket_path: Path, *claims: Claim, api: str = "v1",
              timeout_ms: int = 20000) -> SimResult:
    return run("unprepare", "--socket", socket_path, "--api", api, "--timeout-ms", timeout_ms,
               *_claim_args(claims))


def healthcheck(address: str, timeout_ms: int = 2000, service: str = "") -> SimResult:
    return run("healthcheck", "--address", address, "--timeout-ms", timeout_ms,
               *(["--service", service] if service else []))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PluginDirs:
    """The kubelet-side directories of one plugin instance (never the host's)."""

    registrar: Path
    plugins: Path
    cdi: Path
    driver: str = DRIVER

    @classmethod
    def under(cls, root: Path) -> "PluginDirs":
        d = cls(root / "reg", root / "plugins", root / "cdi")
        for sock in (d.dra_socket("B"), d.registration_socket("B")):  # tests use 1-char pod UIDs
            assert len(str(sock)) <= SUN_PATH_MAX, f"socket path too long for sun_path: {sock}"
        return d

    def args(self) -> list[str]:
        return [f"--kubelet-registrar-directory-path={self.registrar}",
                f"--kubelet-plugins-directory-path={self.plugins}",
                f"--cdi-root={self.cdi}"]

    @property
    def data_dir(self) -> Path:
        return self.plugins / self.driver

    @property
    def checkpoint(self) -> Path:
        return self.data_dir / "checkpoint.json"

    def dra_socket(self, pod_uid: str = "") -> Path:
        return self.data_dir / (f"dra-{pod_uid}.sock" if pod_uid else "dra.sock")

    def registration_socket(self, pod_uid: str = "") -> Path:
        name = f"{self.driver}-{pod_uid}-reg.sock" if pod_uid else f"{self.driver}-reg.sock"
        return self.registrar / name

    def spec_path(self, claim_uid: str) -> Path:
        return self.cdi / f"{SPEC_PREFIX}{claim_uid}.json"

    def spec_uids(self) -> set[str]:
        """Claim UIDs that have a spec file of our driver in the CDI root."""
        if not self.cdi.is_dir():
            return set()
        return {p.name[len(SPEC_PREFIX):-len(".json")] for p in self.cdi.iterdir()
                if p.name.startswith(SPEC_PREFIX) and p.name.endswith(".json")}

    def our_cdi_files(self) -> list[str]:
        """Every file of our driver in the CDI root, temp files of atomic writes included."""
        if not self.cdi.is_dir():
            return []
        return sorted(p.name for p in self.cdi.iterdir() if SPEC_PREFIX in p.name)

    def checkpoint_claims(self) -> dict[str, str]:
        """claim UID -> state ("PrepareStarted" / "PrepareCompleted") from checkpoint.json
        ({} when there is no file)."""
        if not self.checkpoint.exists():
            return {}
        doc = json.loads(self.checkpoint.read_text())
        claims = doc["data"]["claims"]
        return {uid: c["state"] for uid, c in claims.items()}

    def wait_serving(self, plugin, pod_uid: str = "", timeout: float = 15) -> None:
        """Waits until the plugin answers an empty prepare on its DRA socket and its registration
        socket exists; fails early (with the log) when the plugin exits."""
        deadline = time.monotonic() + timeout
        last: Optional[SimResult] = None
        while time.monotonic() < deadline:
            if not plugin.alive():
                raise AssertionError(f"plugin exited with {plugin.proc.returncode} before serving;"
                                     f" log:\n{plugin.log()[-3000:]}")
            if self.dra_socket(pod_uid).exists() and self.registration_socket(pod_uid).exists():
                last = prepare(self.dra_socket(pod_uid), timeout_ms=2000)
                if last.rc == EXIT_OK:
                    return
            time.sleep(0.1)
        raise AssertionError(f"plugin not serving on {self.dra_socket(pod_uid)} after {timeout}s;"
                             f" last: {last}\nlog:\n{plugin.log()[-3000:]}")
