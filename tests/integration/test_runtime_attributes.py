"""Node-level attributes through the real apiserver and scheduler (issue 5, KAR-0001): the
container runtime from each Node's status.nodeInfo.containerRuntimeVersion, cdiEnabled and
sharingMode on every device; a DeviceClass on driverVersion AND containerRuntime allocates only
devices of the matching node; a Node change updates the slices, an idle plugin writes nothing."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import SOURCE_DIR, device_class
from plugin_proc import plugin_binary, run_plugin  # noqa: F401 - fixture

DRIVER = "accel-dra.dev"
SHARING = "Exclusive,TimeSlicing,SpacePartitioning"


def attrs(d: dict) -> dict:
    return {k: next(iter(v.values())) for k, v in d.get("attributes", {}).items()}


def node_slices(kubectl, node):
    return kubectl.json("get", "resourceslices",
                        f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]


def node_devices(kubectl, node):
    return [d for s in node_slices(kubectl, node) for d in s["spec"].get("devices", [])]


def set_runtime(kubectl, node: str, runtime_version: str):
    """Sets status.nodeInfo.containerRuntimeVersion through the status subresource (as kubelet
    would)."""
    patch = {"status": {"nodeInfo": {"containerRuntimeVersion": runtime_version}}}
    kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(patch))


def wait_attrs(kubectl, wait_for, node, want: dict, count: int, timeout=15, absent=()):
    """Waits until all `count` devices of `node` carry the attribute values in `want` and none of
    the names in `absent`; returns the devices."""
    def ok():
        devs = node_devices(kubectl, node)
        if len(devs) != count:
            return None
        for d in devs:
            a = attrs(d)
            if any(a.get(k) != v for k, v in want.items()) or any(k in a for k in absent):
                return None
        return devs
    return wait_for(ok, timeout, f"{node}: {count} devices with {want}, without {list(absent)}")


def profile(tmp_path, name: str, version: str, count: int = 2) -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"devices:\n- count: {count}\n  driverVersion: \"{version}\"\n")
    return str(p)


def test_discover_has_sharing_mode_but_no_runtime():
    p = subprocess.run([plugin_binary(), "discover", "-o", "json", "--node-name=n",
                        "--simulate=1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    a = attrs(json.loads(p.stdout)["items"][0]["spec"]["devices"][0])
    assert a["sharingMode"] == SHARING
    assert not {"containerRuntime", "containerRuntimeVersion", "cdiEnabled"} & set(a), a


def test_driver_and_runtime_select_only_matching_node(
        kubectl, make_node, run_plugin, apply, namespace, wait_for, tmp_path):
    a, b, c = make_node("rt-a"), make_node("rt-b"), make_node("rt-c")
    set_runtime(kubectl, a, "containerd://2.2.9")
    set_runtime(kubectl, b, "containerd://2.1.4")
    set_runtime(kubectl, c, "cri-o://1.31.2")
    # B's containerd config turns CDI off; A and C have none (defaults apply).
    off = tmp_path / "containerd-off.toml"
    off.write_text("version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = false\n")
    none = str(tmp_path / "no-such-config.toml")
    run_plugin(a, f"--simulate-profile={profile(tmp_path, 'a', '560.35.03')}",
               f"--containerd-config={none}")
    run_plugin(b, f"--simulate-profile={profile(tmp_path, 'b', '535.104.05')}",
               f"--containerd-config={off}")
    run_plugin(c, f"--simulate-profile={profile(tmp_path, 'c', '570.86.10')}",
               f"--containerd-config={none}")
    wait_attrs(kubectl, wait_for, a, {
        "containerRuntime": "containerd", "containerRuntimeVersion": "2.2.9", "cdiEnabled": True,
        "sharingMode": SHARING, "driverVersion": "560.35.3", "driverVersionRaw": "560.35.03"}, 2,
        absent=("containerRuntimeVersionRaw",))
    wait_attrs(kubectl, wait_for, b, {
        "containerRuntime": "containerd", "containerRuntimeVersion": "2.1.4", "cdiEnabled": False,
        "driverVersion": "535.104.5"}, 2)
    wait_attrs(kubectl, wait_for, c, {
        "containerRuntime": "cri-o", "containerRuntimeVersion": "1.31.2", "cdiEnabled": True,
        "driverVersion": "570.86.10"}, 2, absent=("driverVersionRaw",))

    cls = f"{namespace}-drv550-containerd"
    apply(device_class(cls, f"""
device.driver == "{DRIVER}" &&
device.attributes["{DRIVER}"].driverVersion.compareTo(semver("550.0.0")) >= 0 &&
device.attributes["{DRIVER}"].containerRuntime == "containerd" &&
"cdiEnabled" in device.attributes["{DRIVER}"] &&
device.attributes["{DRIVER}"].cdiEnabled &&
device.attributes["{DRIVER}"].sharingMode.contains("TimeSlicing")
"""))
    # Three claims, each used by a pod the scheduler may place on any node: only A has devices
    # that match, and only two of them.
    for i in range(3):
        apply(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: c{i}
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: {cls}
---
apiVersion: v1
kind: Pod
metadata:
  name: p{i}
spec:
  tolerations:
  - operator: Exists
  resourceClaims:
  - name: gpu
    resourceClaimName: c{i}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: gpu
""")

    def allocations():
        out = {}
        for i in range(3):
            st = kubectl.json("get", "resourceclaim", f"c{i}", "-n", namespace).get("status", {})
            if st.get("allocation"):
                r = st["allocation"]["devices"]["results"][0]
                out[f"c{i}"] = (r["pool"], r["device"])
        return out

    got = wait_for(lambda: len(a2 := allocations()) >= 2 and a2, 30, "two claims allocated")
    assert {pool for pool, _ in got.values()} == {a}, got
    assert len({dev for _, dev in got.values()}) == 2, got
    time.sleep(5)  # the scheduler keeps retrying the third pod: it must stay unallocated
    final = allocations()
    assert len(final) == 2 and final == got, final
    pending = [p for p in range(3) if f"c{p}" not in final]
    pod = kubectl.json("get", "pod", f"p{pending[0]}", "-n", namespace)
    assert not pod["spec"].get("nodeName"), pod["spec"]


def test_node_change_updates_attributes_and_idle_plugin_writes_nothing(
        kubectl, make_node, run_plugin, wait_for):
    node = make_node("rt-change")  # node.sh reports containerd://2.1.4
    p = run_plugin(node, "--simulate=2", "--rediscover-interval=0.1", "--containerd-config=")
    wait_attrs(kubectl, wait_for, node, {"containerRuntime": "containerd",
                                         "containerRuntimeVersion": "2.1.4", "cdiEnabled": True,
                                         "sharingMode": SHARING}, 2)
    versions = lambda: {s["metadata"]["name"]: s["metadata"]["resourceVersion"]  # noqa: E731
                        for s in node_slices(kubectl, node)}
    before = versions()
    # Node updates that do not touch the runtime (kubelet's status heartbeats, labels) and plain
    # idling cause no slice writes.
    kubectl("label", "node", node, "accel-dra.dev/idle-check=1", "--overwrite")
    kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"nodeInfo": {"kubeletVersion": "v1.35.4-idle"}}}))
    time.sleep(3)
    assert versions() == before, "slices were rewritten although the runtime did not change"

    t0 = time.monotonic()
    set_runtime(kubectl, node, "containerd://2.2.9")
    wait_attrs(kubectl, wait_for, node, {"containerRuntimeVersion": "2.2.9"}, 2)
    print(f"runtime version change published after {time.monotonic() - t0:.2f} s")

    set_runtime(kubectl, node, "cri-o://1.31.02")
    wait_attrs(kubectl, wait_for, node, {"containerRuntime": "cri-o",
                                         "containerRuntimeVersion": "1.31.2",
                                         "containerRuntimeVersionRaw": "1.31.02",
                                         "cdiEnabled": True}, 2)

    # Not a version: the raw string only, cdiEnabled unknown, logged once, still running.
    set_runtime(kubectl, node, "containerd://nightly")
    wait_attrs(kubectl, wait_for, node, {"containerRuntime": "containerd",
                                         "containerRuntimeVersionRaw": "nightly"}, 2,
               absent=("containerRuntimeVersion", "cdiEnabled"))
    kubectl("label", "node", node, "accel-dra.dev/idle-check=2", "--overwrite")
    time.sleep(1)
    assert p.log().count('"nightly" is not a version') == 1, p.log()

    # No runtime information at all: only sharingMode is left.
    set_runtime(kubectl, node, "")
    wait_attrs(kubectl, wait_for, node, {"sharingMode": SHARING}, 2,
               absent=("containerRuntime", "containerRuntimeVersion",
                       "containerRuntimeVersionRaw", "cdiEnabled"))
    assert p.alive()


def test_missing_node_publishes_without_runtime_and_recovers(
        kubectl, make_node, run_plugin, wait_for, request):
    node = "rt-late"
    kubectl("delete", "node", node, "--ignore-not-found", check=False)
    p = run_plugin(node, "--simulate=1", "--containerd-config=", "--delete-slices-on-exit")
    devs = wait_attrs(kubectl, wait_for, node, {"sharingMode": SHARING}, 1,
                      absent=("containerRuntime",))
    assert devs and p.alive()
    assert p.log().count(f"Node {node} does not exist") == 1, p.log()
    make_node(node)  # the Node appears later: the plugin picks it up (capped backoff)
    wait_attrs(kubectl, wait_for, node, {"containerRuntime": "containerd",
                                         "containerRuntimeVersion": "2.1.4"}, 1, timeout=45)
