"""Fixtures for accel-dra's integration tests, which run against a real local control plane
(etcd, kube-apiserver, kube-scheduler, kube-controller-manager; no kubelet) started by
hack/local-cluster/up.sh.

Through CTest (starts a cluster in <build>/test-cluster, runs the tests, stops it):
    cmake -S . -B build -G Ninja && cd build && ctest -L integration --output-on-failure

By hand, from the repository root:
    hack/local-cluster/build.sh                            # once: etcd + Kubernetes binaries
    hack/local-cluster/up.sh --dir /tmp/accel-dra-it       # about 10 s
    ACCEL_DRA_CLUSTER_DIR=/tmp/accel-dra-it python3 -m pytest -q tests/integration [-k name]
    hack/local-cluster/down.sh --dir /tmp/accel-dra-it
Without ACCEL_DRA_CLUSTER_DIR the tests use up.sh's default run dir (<repo>/.e2e/cluster-local,
i.e. plain `hack/local-cluster/up.sh`). The tests never start a cluster themselves: if none is
up they fail (they are never skipped).

Environment: ACCEL_DRA_CLUSTER_DIR (run dir), ACCEL_DRA_SOURCE_DIR, ACCEL_DRA_BUILD_DIR,
ACCEL_DRA_PLUGIN (plugin binary; CTest sets it once the accel-dra-plugin target exists),
ACCEL_DRA_KEEP_NAMESPACES=1 (keep test namespaces and objects for debugging).

Fixtures: cluster, kubectl(*args, input=None, check=True), kubectl.json(*args), wait_for(predicate,
timeout, what), make_node(name), apply(yaml_str), namespace (unique per test, deleted afterwards).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

SOURCE_DIR = Path(os.environ.get("ACCEL_DRA_SOURCE_DIR") or Path(__file__).resolve().parents[2])
LOCAL_CLUSTER = SOURCE_DIR / "hack" / "local-cluster"
KEEP = os.environ.get("ACCEL_DRA_KEEP_NAMESPACES") == "1"

# Keys of RUN_DIR/env that the fixtures read (see hack/local-cluster/up.sh).
ENV_KEYS = (
    "ACCEL_DRA_CLUSTER_NAME", "ACCEL_DRA_CLUSTER_DIR", "KUBECONFIG", "KUBECONFIG_UNPRIVILEGED",
    "KUBECTL", "K8S_BIN_DIR", "K8S_VERSION", "APISERVER_URL", "CA_CERT", "ADMIN_TOKEN",
    "UNPRIVILEGED_TOKEN", "NODE_NAME", "NODE_TOKEN", "NODE_KUBECONFIG", "NODE_NAMES",
    "RUNTIME_CONFIG", "FEATURE_GATES", "ETCD_PID", "APISERVER_PID", "SCHEDULER_PID", "KCM_PID",
)


def cluster_dir() -> Path:
    d = os.environ.get("ACCEL_DRA_CLUSTER_DIR")
    return Path(d) if d else SOURCE_DIR / ".e2e" / "cluster-local"


def read_env(path: Path) -> dict[str, str]:
    """Sources RUN_DIR/env in bash (it is shell-quoted) and returns the keys in ENV_KEYS."""
    script = '. "$1" && shift && for k in "$@"; do printf "%s=%s\\0" "$k" "${!k-}"; done'
    out = subprocess.run(["bash", "-c", script, "_", str(path), *ENV_KEYS],
                         check=True, capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split("\0") if kv)


@dataclass
class Cluster:
    """A running cluster from up.sh. `env` holds RUN_DIR/env."""

    dir: Path
    env: dict[str, str]
    source_dir: Path = SOURCE_DIR
    build_dir: Optional[Path] = field(
        default_factory=lambda: Path(os.environ["ACCEL_DRA_BUILD_DIR"])
        if os.environ.get("ACCEL_DRA_BUILD_DIR") else None)

    kubeconfig = property(lambda self: self.env["KUBECONFIG"])
    kubeconfig_unprivileged = property(lambda self: self.env["KUBECONFIG_UNPRIVILEGED"])
    kubectl_path = property(lambda self: self.env["KUBECTL"])
    apiserver_url = property(lambda self: self.env["APISERVER_URL"])
    ca_cert = property(lambda self: self.env["CA_CERT"])
    admin_token = property(lambda self: self.env["ADMIN_TOKEN"])
    unprivileged_token = property(lambda self: self.env["UNPRIVILEGED_TOKEN"])
    node_name = property(lambda self: self.env["NODE_NAME"])
    node_token = property(lambda self: self.env["NODE_TOKEN"])
    node_kubeconfig = property(lambda self: self.env["NODE_KUBECONFIG"])

    def request(self, path: str, token: Optional[str] = None, method: str = "GET",
                body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        """Raw HTTPS request to the apiserver (CA-verified) as the admin unless `token` is given.
        Returns (HTTP status, decoded JSON body or text)."""
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.apiserver_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


class KubectlError(AssertionError):
    pass


class Kubectl:
    """kubectl of the default Kubernetes version (hack/lib.sh) with the admin kubeconfig."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def __call__(self, *args: Any, input: Optional[str] = None, check: bool = True,
                 kubeconfig: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [self.cluster.kubectl_path, f"--kubeconfig={kubeconfig or self.cluster.kubeconfig}",
               *map(str, args)]
        try:
            p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise KubectlError(f"kubectl timed out after {timeout}s: {' '.join(cmd[2:])}") from e
        if check and p.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(cmd[2:])} failed (exit {p.returncode})\n"
                f"stderr: {p.stderr.strip()}\nstdout: {p.stdout.strip()[:2000]}"
                + (f"\ninput:\n{input}" if input else ""))
        return p

    def json(self, *args: Any, **kw: Any) -> Any:
        """kubectl ... -o json, decoded."""
        return json.loads(self(*args, "-o", "json", **kw).stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition",
             interval: float = 0.2) -> Any:
    """Polls predicate() until it returns something truthy and returns that. Exceptions count as
    "not yet". On timeout fails with `what`, the last result and the last exception."""
    deadline = time.monotonic() + timeout
    last: Any = None
    err: Optional[BaseException] = None
    while True:
        try:
            last = predicate()
            err = None
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            err = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout}s waiting for {what}; last result: {last!r}"
            if err is not None:
                msg += f"; last error: {type(err).__name__}: {err}"
            raise AssertionError(msg)
        time.sleep(interval)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    d = cluster_dir()
    hint = (f"start one with `hack/local-cluster/up.sh --dir {d}` and set ACCEL_DRA_CLUSTER_DIR, "
            "or run the tests through `ctest -L integration`")
    env_file = d / "env"
    if not env_file.is_file():
        pytest.fail(f"no cluster is up in {d} ({env_file} is missing): {hint}", pytrace=False)
    c = Cluster(dir=d, env=read_env(env_file))
    for key, comp in (("ETCD_PID", "etcd"), ("APISERVER_PID", "kube-apiserver"),
                      ("SCHEDULER_PID", "kube-scheduler"), ("KCM_PID", "kube-controller-manager")):
        if not Path(f"/proc/{c.env.get(key)}/cmdline").exists():
            pytest.fail(f"{comp} of the cluster in {d} is not running (PID {c.env.get(key)}); "
                        f"see {d}/logs/{comp}.log", pytrace=False)
    try:
        status, body = c.request("/readyz")
    except OSError as e:
        pytest.fail(f"the cluster in {d} does not answer at {c.apiserver_url}: {e}; {hint}",
                    pytrace=False)
    if status != 200:
        pytest.fail(f"the apiserver of the cluster in {d} is not ready: /readyz -> {status} {body}",
                    pytrace=False)
    return c


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    return Kubectl(cluster)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


def _unique(prefix: str, request: pytest.FixtureRequest, limit: int = 63) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    suffix = secrets.token_hex(3)
    return f"{prefix}{base[: limit - len(prefix) - len(suffix) - 1].rstrip('-')}-{suffix}"


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest):
    """A fresh namespace for this test (with its default ServiceAccount ready); deleted after."""
    ns = _unique("t-", request)
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "accel-dra.dev/test=true")
    wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
             30, f"the default ServiceAccount in namespace {ns}")
    yield ns
    if KEEP:
        return
    # No kubelet runs, so pods bound to a node would stay Terminating: delete them at once.
    kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", "--wait=false",
            check=False)
    kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def make_node(cluster: Cluster, kubectl: Kubectl):
    """make_node(name, cpu="8", memory="32Gi", pods="110", labels=None, cleanup=True) creates (or
    refreshes) a Ready static Node through hack/local-cluster/node.sh and returns its name."""
    created: list[str] = []

    def make(name: str, cpu: str = "8", memory: str = "32Gi", pods: str = "110",
             labels: Optional[dict[str, str]] = None, cleanup: bool = True) -> str:
        cmd = [str(LOCAL_CLUSTER / "node.sh"), name, "--dir", str(cluster.dir),
               "--cpu", str(cpu), "--memory", str(memory), "--pods", str(pods)]
        for k, v in (labels or {}).items():
            cmd += ["--label", f"{k}={v}"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"node.sh {name} failed (exit {p.returncode}): {p.stderr.strip()}")
        if cleanup and name not in created:
            created.append(name)
        return name

    yield make
    if not KEEP:
        for n in created:
            kubectl("delete", "node", n, "--ignore-not-found", "--wait=false", check=False)


def device_class(name: str, expression: str) -> str:
    """YAML of a resource.k8s.io/v1 DeviceClass with one CEL selector (`expression` may span
    lines; CEL treats newlines as blanks)."""
    body = "\n".join("        " + line.strip() for line in expression.strip().splitlines())
    return f"""apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: {name}
spec:
  selectors:
  - cel:
      expression: |-
{body}
"""


def pod_with_claim(name: str, node: str, claim: str = "", template: str = "") -> str:
    """YAML of a Pod pinned to `node` (tolerating everything) whose one container uses one
    ResourceClaim (`claim`) or one from a ResourceClaimTemplate (`template`), as pod claim `c`.
    Its image does not exist: without a kubelet it is only scheduled."""
    ref = f"resourceClaimTemplateName: {template}" if template else f"resourceClaimName: {claim}"
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  tolerations:
  - operator: Exists
  resourceClaims:
  - name: c
    {ref}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: c
"""


@pytest.fixture
def apply(kubectl: Kubectl, namespace: str):
    """apply(yaml_str, namespace=<the test's namespace>) runs kubectl apply and returns the applied
    objects (dicts). Cluster-scoped objects it creates are deleted after the test; namespaced ones
    go with the test namespace."""
    cluster_scoped: list[str] = []

    def do_apply(yaml_str: str, namespace: Optional[str] = namespace) -> list[dict]:
        args = ["apply", "-f", "-", "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        out = json.loads(kubectl(*args, input=yaml_str).stdout)
        items = out["items"] if out.get("kind") == "List" else [out]
        for o in items:
            if not o["metadata"].get("namespace"):
                ref = f"{o['kind'].lower()}.{o['apiVersion'].split('/')[0]}/{o['metadata']['name']}" \
                    if "/" in o["apiVersion"] else f"{o['kind'].lower()}/{o['metadata']['name']}"
                if ref not in cluster_scoped:
                    cluster_scoped.append(ref)
        return items

    yield do_apply
    if not KEEP:
        for ref in reversed(cluster_scoped):
            kubectl("delete", ref, "--ignore-not-found", "--wait=false", check=False)
