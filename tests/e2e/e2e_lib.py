"""Helpers for the e2e tests (see conftest.py): the real node, the plugin, pods that print what
they received, and the teardown checks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from accel_dra_integration_conftest import (LOCAL_CLUSTER, Cluster, Kubectl, read_env,  # noqa: F401
                                            wait_for)

DRIVER = "accel-dra.dev"
DEVICES = 2  # simulated devices gpu-0, gpu-1 on the node (small: "every device taken" is cheap)
IMAGE = "localhost/busybox:local"
# Waits: generous but bounded. A pod on this node is Running in 1-3 s.
POD_TIMEOUT = 90

NODE_KEYS = ("NODE_REAL", "CONTAINERD_ADDRESS", "KUBELET_ROOT_DIR", "KUBELET_REGISTRAR_DIR",
             "KUBELET_PLUGINS_DIR", "CDI_ROOT", "KUBELET_PORT")

DEVICE_CLASS = f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: {DRIVER}}}
spec:
  selectors:
  - cel: {{expression: 'device.driver == "{DRIVER}"'}}
"""


def run(cmd: list[str], timeout: float = 180, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs a script, stdout and stderr merged (what a user would see)."""
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def plugin_binary() -> str:
    p = os.environ.get("ACCEL_DRA_PLUGIN") or str(
        Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")) / "src/cmd/plugin/accel-dra-plugin")
    assert Path(p).is_file(), f"accel-dra-plugin binary not found at {p} (set ACCEL_DRA_PLUGIN)"
    return p


def cgroup_root_of(run_dir: Path) -> str:
    """The per-run cgroup parent node-up.sh gives kubelet (cgroupRoot)."""
    return "/accel-dra-" + hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as e:
        return f"({path}: {e})"


@dataclass
class Node:
    cluster: Cluster
    kubectl: Kubectl
    env: dict[str, str]

    @classmethod
    def load(cls, cluster: Cluster) -> "Node":
        script = '. "$1" && shift && for k in "$@"; do printf "%s=%s\\0" "$k" "${!k-}"; done'
        out = subprocess.run(["bash", "-c", script, "_", str(cluster.dir / "env"), *NODE_KEYS],
                             check=True, capture_output=True, text=True).stdout
        env = dict(kv.split("=", 1) for kv in out.split("\0") if kv)
        if env.get("NODE_REAL") != "1":
            raise AssertionError(f"no real node in {cluster.dir}: start one with "
                                 f"hack/local-cluster/node-up.sh --dir {cluster.dir}")
        n = cls(cluster, Kubectl(cluster), env)
        pid = n.kubelet_pid()
        assert pid and Path(f"/proc/{pid}").exists(), \
            f"kubelet of {cluster.dir} is not running; log tail:\n{tail(n.log('kubelet'))}"
        return n

    dir = property(lambda self: self.cluster.dir)
    name = property(lambda self: self.cluster.node_name)
    cdi_root = property(lambda self: Path(self.env["CDI_ROOT"]))

    def log(self, comp: str) -> Path:
        return self.dir / "logs" / f"{comp}.log"

    def pid(self, comp: str) -> Optional[int]:
        try:
            return int((self.dir / "pids" / f"{comp}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kubelet_pid(self) -> Optional[int]:
        return self.pid("kubelet")

    def devnode(self, device: str) -> str:
        """Host path of a simulated device's node: gpu-N -> RUN_DIR/dev/accel-simN."""
        return f"{self.dir}/dev/accel-sim{device.rsplit('-', 1)[1]}"

    @staticmethod
    def ctr_devnode(device: str) -> str:
        """Where a container sees that node: the part after the last /dev/ (gpu-N ->
        /dev/accel-simN)."""
        return f"/dev/accel-sim{device.rsplit('-', 1)[1]}"

    @property
    def driver_version_file(self) -> Path:
        """The simulated driver's version file of plugin-up.sh's default profile."""
        return self.dir / "sim-driver" / "version"

    def cdi_spec(self, claim_uid: str) -> Path:
        return self.cdi_root / f"k8s.{DRIVER}-device_{claim_uid}.json"

    def slices(self) -> list[dict]:
        items = self.kubectl.json("get", "resourceslices",
                                  f"--field-selector=spec.nodeName={self.name}")["items"]
        return [s for s in items if s["spec"]["driver"] == DRIVER]

    def slice_devices(self) -> list[str]:
        return sorted(d["name"] for s in self.slices() for d in s["spec"].get("devices", []))

    def ready(self) -> bool:
        n = self.kubectl.json("get", "node", self.name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])

    def restart_kubelet(self) -> int:
        """Stops kubelet (SIGTERM) and starts it again with the same command line, as a service
        manager would; returns the new PID (recorded in RUN_DIR/pids/kubelet.pid)."""
        old = self.kubelet_pid()
        cmd = Path(f"/proc/{old}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{old}").exists() or
                 Path(f"/proc/{old}/stat").read_text().split(") ")[1].startswith("Z"),
                 30, f"kubelet (PID {old}) to stop")
        with open(self.log("kubelet"), "ab") as log:
            log.write(b"--- e2e: kubelet restarted ---\n")
            p = subprocess.Popen([c.decode() for c in cmd], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        (self.dir / "pids" / "kubelet.pid").write_text(f"{p.pid}\n")
        return p.pid


class PluginHandle:
    """accel-dra-plugin for the node, started through hack/local-cluster/plugin-up.sh."""

    def __init__(self, node: Node):
        self.node = node

    @property
    def log_path(self) -> Path:
        return self.node.log("plugin")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pid(self) -> Optional[int]:
        return self.node.pid("plugin")

    def start(self, restart: bool = False, inspect_tool: Optional[Path] = None,
              extra: tuple[str, ...] = (), profile: Optional[Path] = None,
              env: Optional[dict] = None) -> int:
        """(Re)starts the plugin with DEVICES default devices, or with `profile` (plugin-up.sh
        --profile), extra plugin flags, and `env` added to its environment."""
        cmd = [LOCAL_CLUSTER / "plugin-up.sh", "--dir", self.node.dir, "--plugin", plugin_binary()]
        cmd += ["--profile", profile] if profile is not None else ["--devices", str(DEVICES)]
        if restart:
            cmd.append("--restart")
        if inspect_tool is not None:
            cmd += ["--inspect-tool", inspect_tool]
        if extra:
            cmd += ["--", *extra]
        p = run(cmd, timeout=120, env=env)
        assert p.returncode == 0, f"plugin-up.sh failed (exit {p.returncode}):\n{p.stdout}"
        return self.pid()


# --- pods ----------------------------------------------------------------------------------------

INSPECT_PATH = "/usr/local/bin/accel-dra-inspect"
DRIVER_VERSION_PATH = "/run/accel-dra/driver/version"


def probe(node: Node, tag: str = "") -> str:
    """A container command that prints its ACCEL_* environment, every simulated device node it
    can see (path and major:minor; at the container path and at the host path, where it must not
    be), whether it has the inspect tool (INSPECT-PRESENT) and the driver version file
    (DRIVER_VERSION <content>), then waits (exiting at once on SIGTERM)."""
    return (f"env | grep ^ACCEL_ | sort; "
            f"for d in /dev/accel-sim* {node.dir}/dev/accel-sim*; do [ -c \"$d\" ] && "
            f"echo \"DEVNODE $d $(stat -c %t:%T \"$d\")\"; done; "
            f"[ -e {INSPECT_PATH} ] && echo INSPECT-PRESENT; "
            f"[ -f {DRIVER_VERSION_PATH} ] && echo \"DRIVER_VERSION $(cat {DRIVER_VERSION_PATH})\"; "
            f"echo ACCEL_VARS=$(env | grep -c ^ACCEL_); echo PROBE-DONE{tag}; "
            f"trap 'exit 0' TERM; sleep 3600 & wait")


def container(node: Node, name: str, claims: tuple[str, ...] = ()) -> dict:
    c: dict[str, Any] = {"name": name, "image": IMAGE, "imagePullPolicy": "Never",
                         "command": ["sh", "-c", probe(node)]}
    if claims:
        c["resources"] = {"claims": [{"name": x} for x in claims]}
    return c


def pod(name: str, containers: list[dict], claims: dict[str, dict]) -> str:
    """A Pod manifest (JSON is YAML). claims: pod claim name -> {"resourceClaimTemplateName": ..}
    or {"resourceClaimName": ..}."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": containers,
                 "resourceClaims": [{"name": k, **v} for k, v in claims.items()]}})


def template(name: str, count: int = 1) -> str:
    return json.dumps({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [
            {"name": "accel", "exactly": {"deviceClassName": DRIVER, "count": count}}]}}}})


def claim(name: str) -> str:
    return json.dumps({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": name},
        "spec": {"devices": {"requests": [{"name": "accel", "exactly": {"deviceClassName": DRIVER}}]}}})


def describe(kubectl: Kubectl, ns: str, name: str) -> str:
    return kubectl("describe", "pod", name, "-n", ns, check=False).stdout[-3000:]


def wait_running(kubectl: Kubectl, node: Node, ns: str, name: str,
                 timeout: float = POD_TIMEOUT) -> dict:
    """Waits for the pod's phase Running with every container ready; fails with the pod's
    description and the plugin/kubelet log tails."""
    def ok():
        p = kubectl.json("get", "pod", name, "-n", ns)
        st = p["status"]
        if st.get("phase") == "Running" and all(c.get("ready") for c in st.get("containerStatuses", [])):
            return p
        if st.get("phase") in ("Failed", "Succeeded"):
            raise AssertionError(f"pod {ns}/{name} ended: {st.get('phase')}")
        return None
    try:
        return wait_for(ok, timeout, f"pod {ns}/{name} Running")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- kubectl describe ---\n{describe(kubectl, ns, name)}"
                             f"\n--- plugin log ---\n{tail(node.log('plugin'), 20)}"
                             f"\n--- kubelet log ---\n{tail(node.log('kubelet'), 20)}") from None


def logs(kubectl: Kubectl, ns: str, name: str, ctr: str, timeout: float = 30) -> list[str]:
    """The container's output once its probe has finished printing."""
    out = wait_for(lambda: (o := kubectl("logs", name, "-n", ns, "-c", ctr).stdout)
                   and "PROBE-DONE" in o and o, timeout, f"the output of {ns}/{name}/{ctr}")
    return out.splitlines()


def env_of(lines: list[str]) -> dict[str, str]:
    return dict(x.split("=", 1) for x in lines if x.startswith("ACCEL_") and "=" in x)


def visible_devices(env: dict[str, str]) -> Optional[str]:
    """The visible-devices list of a container holding one claim of the driver: the value of its
    one ACCEL_VISIBLE_DEVICES_<CLAIM> variable (None without one). The driver sets one such
    variable per claim and no plain ACCEL_VISIBLE_DEVICES, so two claims never collide."""
    assert "ACCEL_VISIBLE_DEVICES" not in env, env
    values = [v for k, v in env.items() if k.startswith("ACCEL_VISIBLE_DEVICES_")]
    assert len(values) <= 1, f"the visible devices of more than one claim: {env}"
    return values[0] if values else None


def visible_devices_var(claim_uid: str) -> str:
    """The claim's variable: ACCEL_VISIBLE_DEVICES_ + its UID upper-cased, '-' as '_'."""
    return "ACCEL_VISIBLE_DEVICES_" + "".join(c if c.isalnum() else "_" for c in claim_uid.upper())


def driver_version_of(lines: list[str]) -> Optional[str]:
    """What the container read from the driver version file, None when it had none."""
    got = [x.split(" ", 1)[1] if " " in x else "" for x in lines if x.startswith("DRIVER_VERSION")]
    return got[0] if got else None


def devnodes_of(lines: list[str]) -> list[str]:
    return [x.split(" ", 1)[1] for x in lines if x.startswith("DEVNODE ")]


def env_key(device: str) -> str:
    return "ACCEL_DEVICE_" + "".join(c if c.isalnum() else "_" for c in device.upper())


def pod_claim(kubectl: Kubectl, ns: str, pod_name: str, claim_ref: str = "accel") -> dict:
    p = kubectl.json("get", "pod", pod_name, "-n", ns)
    for s in p["status"].get("resourceClaimStatuses", []):
        if s["name"] == claim_ref:
            return kubectl.json("get", "resourceclaim", s["resourceClaimName"], "-n", ns)
    for c in p["spec"].get("resourceClaims", []):
        if c["name"] == claim_ref and c.get("resourceClaimName"):
            return kubectl.json("get", "resourceclaim", c["resourceClaimName"], "-n", ns)
    raise AssertionError(f"pod {ns}/{pod_name} has no claim {claim_ref}")


def allocated_devices(c: dict) -> list[str]:
    return [r["device"] for r in (c.get("status", {}).get("allocation") or {})
            .get("devices", {}).get("results", [])]


def container_state(kubectl: Kubectl, ns: str, name: str) -> dict[str, tuple[str, int]]:
    """container name -> (containerID, restartCount)."""
    p = kubectl.json("get", "pod", name, "-n", ns)
    return {c["name"]: (c.get("containerID", ""), c.get("restartCount", 0))
            for c in p["status"].get("containerStatuses", [])}


# --- teardown checks -----------------------------------------------------------------------------

def cgroup_mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split(" ")[0] in ("cgroup", "cgroup2"):
            out.append(pre.split(" ")[4])
    return sorted(set(out))


def mounts_under(run_dir: Path) -> list[str]:
    d = str(run_dir)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        m = line.split(" ")[4].encode().decode("unicode_escape")
        if m == d or m.startswith(d + "/"):
            out.append(m)
    return out


def shim_sockets(run_dir: Path) -> list[str]:
    """The shim sockets (containerd 2.x puts them in /run/containerd/s) of the node's running tasks:
    from each task's bootstrap.json/address file, and recomputed from each shim's command line."""
    out = set()
    tasks = run_dir / "containerd" / "state" / "io.containerd.runtime.v2.task"
    for f in tasks.glob("*/*/bootstrap.json"):
        try:
            out.add(json.loads(f.read_text())["address"].removeprefix("unix://"))
        except (OSError, ValueError, KeyError):
            pass
    for f in tasks.glob("*/*/address"):
        out.add(f.read_text().strip().removeprefix("unix://"))
    address = str(run_dir / "containerd" / "containerd.sock")
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not args or not args[0].endswith("containerd-shim-runc-v2") or address not in args:
            continue
        opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
        if "-namespace" in opt and "-id" in opt:
            key = f"{address}/{opt['-namespace']}/{opt['-id']}"
            out.add("/run/containerd/s/" + hashlib.sha256(key.encode()).hexdigest())
    return sorted(out)


def leftovers(run_dir: Path, extra_sockets: tuple[str, ...] = ()) -> list[str]:
    """What is left of a run after down.sh: processes that mention the run dir or sit in its
    cgroups, its cgroups, mounts under it, socket files (under it, in /proc/net/unix, or the
    given shim sockets)."""
    d = str(run_dir)
    problems = []
    me = os.getpid()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == me:
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if d + "/" in cmd or cmd.rstrip().endswith(d):
            problems.append(f"process {p.name}: {cmd[:200]}")
    cg = cgroup_root_of(run_dir)
    for m in cgroup_mounts():
        c = Path(m + cg)
        if c.exists():
            procs = []
            for f in c.rglob("cgroup.procs"):
                try:
                    procs += f.read_text().split()
                except OSError:
                    pass
            problems.append(f"cgroup {c} still exists" + (f" with processes {procs}" if procs else ""))
    problems += [f"mount {m}" for m in mounts_under(run_dir)]
    if run_dir.exists():
        for f in run_dir.rglob("*"):
            try:
                if f.is_socket():
                    problems.append(f"socket file {f}")
            except OSError:
                pass
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and (parts[7].startswith(d + "/") or parts[7] in extra_sockets):
            problems.append(f"listening/bound unix socket {parts[7]}")
    problems += [f"shim socket {s}" for s in extra_sockets if os.path.exists(s)]
    # kubelet's device-plugin socket lives at a fixed host path; stale once no kubelet runs.
    dp = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
    if dp.exists() and subprocess.run(["pgrep", "-x", "kubelet"], capture_output=True).returncode != 0:
        problems.append(f"stale kubelet socket {dp}")
    return problems
