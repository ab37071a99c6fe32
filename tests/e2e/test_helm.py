"""accel-dra installed the way a user installs it, on the real node: the image built from
deploy/Dockerfile (CTest image_build, an OCI archive) imported into the node's containerd, the
Helm chart installed with it; then a `helm upgrade` to another image tag while a claimed pod runs.

1. install: the DaemonSet pod becomes Ready (HTTP probes on /readyz and /healthz of the plugin's
   metrics endpoint), its per-pod sockets exist (short names when our deep kubelet root would
   exceed the unix socket limit), its slices are published, a pod with a ResourceClaimTemplate
   runs and sees its device, the prepare shows in /metrics, accel-dra-probe run passes.
2. upgrade: the new plugin pod runs beside the old one, the running pod keeps its device, a claim
   prepared during the roll-out succeeds (by the new pod), the old pod goes away, no prepare fails,
   and the new pod unprepares the claim the old one prepared.
3. webhook: the chart's admission webhook rejects an invalid DeviceConfig at creation with the
   prepare-time message and admits a valid one (the real apiserver calls it through its Service).

The plugin started by plugin-up.sh for the other e2e tests is stopped first; the release is
uninstalled afterwards (the next test file's fixture starts plugin-up.sh's plugin again)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import e2e_lib
from e2e_lib import DRIVER, run, wait_for

SOURCE = Path(os.environ.get("ACCEL_DRA_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")).resolve()
CHART = SOURCE / "deploy" / "helm" / "accel-dra"
ARCHIVE = Path(os.environ.get("ACCEL_DRA_IMAGE_ARCHIVE") or BUILD / "accel-dra-e2e.tar")
PROBE = BUILD / "src/cmd/probe/accel-dra-probe"
REPO = "localhost/accel-dra"
TAG, NEXT_TAG = "e2e", "e2e-next"
RELEASE, NAMESPACE = "accel-dra", "accel-dra-e2e"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=accel-dra"
WEBHOOK_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=accel-dra-webhook"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WEBHOOK_PORT = _free_port()
NODE_LABEL = "accel-dra.dev/accelerator-node"


def helm_path() -> str:
    out = subprocess.run(["bash", "-c", '. "$1/hack/lib.sh" && printf %s "$HELM"', "_",
                          str(SOURCE)], check=True, capture_output=True, text=True).stdout
    assert Path(out).is_file(), f"{out} is missing: hack/local-cluster/build.sh helm"
    return out


class Helm:
    def __init__(self, node):
        self.node = node
        self.bin = helm_path()

    def __call__(self, *args: str, timeout: float = 180) -> str:
        p = run([self.bin, "--kubeconfig", self.node.cluster.kubeconfig, *args], timeout=timeout)
        assert p.returncode == 0, f"helm {' '.join(args)} failed (exit {p.returncode}):\n{p.stdout}"
        return p.stdout


def node_values(node, tmp: Path) -> Path:
    """Values for the local node: its RUN_DIR paths, the apiserver on loopback (host network),
    DEVICES simulated devices whose device nodes are real char devices in RUN_DIR/dev."""
    d = node.dir
    (d / "sim-driver").mkdir(exist_ok=True)
    (d / "sim-driver" / "version").write_text("1.0.0\n")
    (d / "dev").mkdir(exist_ok=True)
    for i in range(e2e_lib.DEVICES):
        p = d / "dev" / f"accel-sim{i}"
        if not p.exists():
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    profile = (f"driverVersionFile: {d}/sim-driver/version\ndevices:\n"
               f"- count: {e2e_lib.DEVICES}\n  deviceNode: {d}/dev/accel-sim{{index}}\n")
    url = urlparse(node.cluster.apiserver_url)
    values = {
        "image": {"repository": REPO, "tag": TAG, "pullPolicy": "Never"},
        "hostNetwork": True,
        "apiServer": {"host": url.hostname, "port": str(url.port)},
        "kubeletPlugin": {"registrarDir": node.env["KUBELET_REGISTRAR_DIR"],
                          "pluginsDir": node.env["KUBELET_PLUGINS_DIR"]},
        "cdiRoot": node.env["CDI_ROOT"],
        "simulation": {"profile": profile, "hostPaths": [f"{d}/dev", f"{d}/sim-driver"]},
        "inspectTool": {"hostDir": f"{d}/accel-dra-bin"},
        "logLevel": 4,
        "metrics": {"enabled": True},
        # Host networking on a loopback node address: Endpoints cannot hold 127.0.0.1, so the
        # apiserver calls the webhook at its URL (webhook.url) instead of through the Service.
        "webhook": {"enabled": True, "port": WEBHOOK_PORT,
                    "url": f"https://127.0.0.1:{WEBHOOK_PORT}/validate"},
        # A window in which both plugin pods run during the upgrade.
        "minReadySeconds": 10,
        "terminationGracePeriodSeconds": 10,
    }
    f = tmp / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    return f


def socket_path(directory: str, prefix: str, pod_uid: str, suffix: str) -> Path:
    """The plugin's per-pod socket name (kubelet::ComputeSocketPaths): the pod UID, or the
    FNV-1a 64-bit hash of it in hex when the path would exceed the 107-byte unix socket limit
    (our node's kubelet root is deep under the build dir)."""
    full = Path(directory) / f"{prefix}{pod_uid}{suffix}"
    if len(str(full)) <= 107:
        return full
    h = 14695981039346656037
    for c in pod_uid.encode():
        h = ((h ^ c) * 1099511628211) % 2**64
    return Path(directory) / f"{prefix}{h:016x}{suffix}"


def reg_socket(node, pod: dict) -> Path:
    return socket_path(node.env["KUBELET_REGISTRAR_DIR"], f"{DRIVER}-", pod["metadata"]["uid"],
                       "-reg.sock")


def endpoint(pod: dict) -> str:
    """The plugin's HTTP endpoint, from its readiness probe (the port alternates by revision)."""
    port = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"]
    return f"http://{pod['status']['podIP']}:{port}"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(metrics: str, name: str) -> float:
    """The value of an unlabelled sample `name` in a Prometheus text exposition."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in the metrics:\n{metrics[:3000]}")


def plugin_pods(kubectl) -> list[dict]:
    return kubectl.json("get", "pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]


def ready(p: dict) -> bool:
    return p["status"].get("phase") == "Running" and all(
        c.get("ready") for c in p["status"].get("containerStatuses", []))


def image_tag(p: dict) -> str:
    return p["spec"]["containers"][0]["image"].rsplit(":", 1)[1]


def stop_test_plugin(node) -> None:
    """The plugin plugin-up.sh started for the other tests (its PID file in RUN_DIR/pids)."""
    pid = node.pid("plugin")
    if pid and Path(f"/proc/{pid}/cmdline").exists() and \
            str(node.dir) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"),
                 30, f"the plugin-up.sh plugin (PID {pid}) to stop")


@pytest.fixture(scope="module")
def release(node, kubectl, tmp_path_factory):
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing: the CTest image_build makes it (hack/image.sh)"
    ctr = [node.cluster.env.get("CTR") or run(["bash", "-c", f'. {node.dir}/env && echo "$CTR"']
                                              ).stdout.strip(),
           "--address", node.env["CONTAINERD_ADDRESS"], "-n", "k8s.io"]
    t0 = time.monotonic()
    p = run([*ctr, "images", "import", "--no-unpack=false", ARCHIVE], timeout=300)
    assert p.returncode == 0, p.stdout
    p = run([*ctr, "images", "tag", "--force", f"{REPO}:{TAG}", f"{REPO}:{NEXT_TAG}"])
    assert p.returncode == 0, p.stdout
    print(f"imported {ARCHIVE} into the node's containerd in {time.monotonic() - t0:.1f} s")

    stop_test_plugin(node)
    # DeviceClasses the other tests applied would clash with the chart's.
    for dc in (DRIVER, f"gpu.{DRIVER}", f"accelerator.{DRIVER}"):
        kubectl("delete", "deviceclass", dc, "--ignore-not-found")
    kubectl("label", "node", node.name, f"{NODE_LABEL}=true", "--overwrite")
    helm = Helm(node)
    values = node_values(node, tmp_path_factory.mktemp("helm"))
    t0 = time.monotonic()
    out = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
               "-f", str(values))
    print(out)
    yield helm, values, t0
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s",
         timeout=180)
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
    kubectl("label", "node", node.name, f"{NODE_LABEL}-", check=False)


def wait_plugin_ready(kubectl, node, tag: str, timeout: float = 120) -> dict:
    def one_ready():
        pods = plugin_pods(kubectl)
        return pods[0] if len(pods) == 1 and ready(pods[0]) and image_tag(pods[0]) == tag else None
    try:
        return wait_for(one_ready, timeout, f"one Ready plugin pod with image tag {tag}")
    except AssertionError:
        print(kubectl("describe", "pods", "-n", NAMESPACE, "-l", SELECTOR, check=False).stdout[-4000:])
        print(kubectl("logs", "-n", NAMESPACE, "-l", SELECTOR, "--tail=40", "--prefix",
                      check=False).stdout)
        print(e2e_lib.tail(node.log("kubelet"), 30))
        raise


def claimed_pod(kubectl, node, ns: str, name: str) -> tuple[dict, list[str]]:
    kubectl("apply", "-n", ns, "-f", "-", input=e2e_lib.template("one"))
    kubectl("apply", "-n", ns, "-f", "-", input=e2e_lib.pod(
        name, [e2e_lib.container(node, "c", ("accel",))],
        {"accel": {"resourceClaimTemplateName": "one"}}))
    e2e_lib.wait_running(kubectl, node, ns, name)
    lines = e2e_lib.logs(kubectl, ns, name, "c")
    claim = e2e_lib.pod_claim(kubectl, ns, name)
    return claim, lines


def test_install(node, kubectl, release, ns):
    helm, _, t0 = release
    pod = wait_plugin_ready(kubectl, node, TAG)
    print(f"plugin pod {pod['metadata']['name']} Ready {time.monotonic() - t0:.1f} s after "
          f"helm install")
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    reg = reg_socket(node, pod)
    assert reg.exists(), f"per-pod registration socket {reg} is missing"
    dra = socket_path(str(Path(node.env["KUBELET_PLUGINS_DIR"]) / DRIVER), "dra-",
                      pod["metadata"]["uid"], ".sock")
    assert dra.exists(), f"per-pod DRA socket {dra} is missing"
    print(f"plugin sockets: {reg} ({len(str(reg))} bytes), {dra} ({len(str(dra))} bytes)")
    # The probes' endpoint: ready (registered, published) and alive.
    url = endpoint(pod)
    assert http_get(url + "/readyz")[0] == 200 and http_get(url + "/healthz")[0] == 200
    prepares_before = sample(http_get(url + "/metrics")[1], "accel_dra_prepare_requests_total")
    wait_for(lambda: node.slice_devices() == [f"gpu-{i}" for i in range(e2e_lib.DEVICES)], 30,
             "the Helm-installed plugin's slices")
    classes = {d["metadata"]["name"] for d in kubectl.json("get", "deviceclasses")["items"]}
    assert {DRIVER, f"gpu.{DRIVER}", f"accelerator.{DRIVER}"} <= classes

    claim, lines = claimed_pod(kubectl, node, ns, "user")
    devs = e2e_lib.allocated_devices(claim)
    assert len(devs) == 1
    assert e2e_lib.devnodes_of(lines) == [f"{node.ctr_devnode(devs[0])} 1:3"], lines
    assert "INSPECT-PRESENT" in lines, lines
    assert "DRIVER_VERSION 1.0.0" in lines, lines
    kubectl("delete", "pod", "user", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    metrics = http_get(url + "/metrics")[1]
    assert sample(metrics, "accel_dra_prepare_requests_total") >= prepares_before + 1, metrics
    assert sample(metrics, "accel_dra_prepare_duration_seconds_count") >= 1, metrics
    assert 'accel_dra_build_info{' in metrics, metrics

    assert PROBE.is_file(), f"{PROBE} is missing"
    p = run([PROBE, "run", "--kubeconfig", node.cluster.kubeconfig, "--image", e2e_lib.IMAGE,
             "--image-pull-policy", "Never", "--timeout", "45", "--namespace", "e2e-probe-helm"],
            timeout=300)
    print(p.stdout[-3000:])
    assert p.returncode == 0, f"accel-dra-probe run against the Helm-installed driver failed:\n" \
                              f"{p.stdout[-3000:]}"


def test_upgrade_while_claimed(node, kubectl, release, ns):
    helm, values, _ = release
    old = wait_plugin_ready(kubectl, node, TAG)
    claim_a, lines_a = claimed_pod(kubectl, node, ns, "running")
    cdi_a = node.cdi_spec(claim_a["metadata"]["uid"])
    assert cdi_a.exists()
    state_a = e2e_lib.container_state(kubectl, ns, "running")

    t0 = time.monotonic()
    helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values),
         "--set", f"image.tag={NEXT_TAG}")

    def both_ready():
        pods = plugin_pods(kubectl)
        new = [p for p in pods if image_tag(p) == NEXT_TAG and ready(p)]
        olds = [p for p in pods if p["metadata"]["uid"] == old["metadata"]["uid"]]
        return (new[0], olds) if new else None
    new, olds = wait_for(both_ready, 120, "the new plugin pod to be Ready")
    assert olds, "the old plugin pod was gone before the new one was Ready"
    print(f"new plugin pod Ready beside the old one {time.monotonic() - t0:.1f} s after the upgrade")

    # A claim prepared during the roll-out: both pods run; kubelet uses the newest registration.
    kubectl("apply", "-n", ns, "-f", "-", input=e2e_lib.pod(
        "during", [e2e_lib.container(node, "c", ("accel",))],
        {"accel": {"resourceClaimTemplateName": "one"}}))
    e2e_lib.wait_running(kubectl, node, ns, "during")
    old_still_there = any(p["metadata"]["uid"] == old["metadata"]["uid"]
                          for p in plugin_pods(kubectl))
    assert old_still_there, "the old plugin pod stopped before the claim during the roll-out ran"
    claim_b = e2e_lib.pod_claim(kubectl, ns, "during")
    lines_b = e2e_lib.logs(kubectl, ns, "during", "c")
    assert e2e_lib.devnodes_of(lines_b), lines_b
    new_log = kubectl("logs", "-n", NAMESPACE, new["metadata"]["name"], "-c", "plugin").stdout
    assert claim_b["metadata"]["name"] in new_log, \
        f"the new plugin pod did not prepare {claim_b['metadata']['name']}:\n{new_log[-3000:]}"

    wait_plugin_ready(kubectl, node, NEXT_TAG)
    print(f"roll-out done {time.monotonic() - t0:.1f} s after the upgrade")
    assert not reg_socket(node, old).exists(), "the old pod's registration socket is still there"

    # The pod that ran across the upgrade: same container, same device, spec still in place.
    state = e2e_lib.container_state(kubectl, ns, "running")
    assert state == state_a, f"the running pod's container changed: {state_a} -> {state}"
    assert e2e_lib.wait_running(kubectl, node, ns, "running", timeout=5)
    assert e2e_lib.allocated_devices(e2e_lib.pod_claim(kubectl, ns, "running")) == \
        e2e_lib.allocated_devices(claim_a)
    assert cdi_a.exists(), "the running pod's CDI spec is gone after the upgrade"
    events = kubectl.json("get", "events", "-n", ns)["items"]
    failed = [e for e in events if e.get("reason") == "FailedPrepareDynamicResources"]
    assert not failed, f"prepare failed during the upgrade: {[e['message'] for e in failed]}"

    # The new pod unprepares what the old one prepared (shared checkpoint).
    kubectl("delete", "pod", "running", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    wait_for(lambda: not cdi_a.exists(), 30, f"{cdi_a} to be removed by the new plugin pod")


def claim_with_interval(name: str, interval: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": name},
        "spec": {"devices": {
            "requests": [{"name": "gpu", "exactly": {"deviceClassName": DRIVER}}],
            "config": [{"requests": ["gpu"], "opaque": {"driver": DRIVER, "parameters": {
                "apiVersion": "accel-dra.dev/v1alpha1", "kind": "DeviceConfig",
                "sharing": {"strategy": "TimeSlicing",
                            "timeSlicing": {"interval": interval}}}}}]}}})


def test_webhook(node, kubectl, release, ns):
    """The chart's admission webhook (Deployment + Service + ValidatingWebhookConfiguration with
    the chart's certificate), called by the real apiserver: an invalid DeviceConfig is rejected at
    creation with the prepare-time message; a valid one is admitted."""
    def webhook_ready():
        pods = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", WEBHOOK_SELECTOR)["items"]
        return pods if pods and all(ready(p) for p in pods) else None
    wait_for(webhook_ready, 60, "the webhook pod to be Ready")

    def rejected():
        p = kubectl("create", "-n", ns, "-f", "-", input=claim_with_interval("bad", "VeryLong"),
                    check=False)
        if p.returncode == 0:  # admitted: the apiserver has not called the webhook yet
            kubectl("delete", "resourceclaim", "bad", "-n", ns, "--wait=true")
            return None
        return p
    bad = wait_for(rejected, 30, "the webhook to reject an invalid DeviceConfig")
    assert 'admission webhook "resourceclaims.accel-dra.dev" denied the request' in bad.stderr, \
        bad.stderr
    assert 'sharing.timeSlicing.interval: unknown value "VeryLong"' in bad.stderr, bad.stderr
    kubectl("create", "-n", ns, "-f", "-", input=claim_with_interval("good", "Long"))
