"""DRA features against the real kube-apiserver and kube-scheduler (issue 13, points 4 and 6):

- the standard attributes resource.kubernetes.io/{pcieRoot,pciBusID,numaNode} are accepted in
  our slices and the scheduler allocates with CEL and matchAttribute on them;
- a prioritized list (firstAvailable) whose first subrequest cannot be satisfied: the scheduler
  allocates "<request>/<subrequest>", and prepare through the kubelet stand-in (v1 and v1beta1)
  answers the base request name and applies the config that targets the parent or the subrequest;
- admin access: an admin-access claim on a device an exclusive claim holds, and an exclusive claim
  on a device an admin-access claim holds, are both prepared; unpreparing the admin claim leaves
  the exclusive claim's state as it was; two exclusive claims still conflict.
"""

from __future__ import annotations

import json

import kubelet_sim as sim
from conftest import device_class, pod_with_claim as _pod, wait_for
from kubelet_sim import DRIVER, EXIT_OK, EXIT_REJECTED, PluginDirs
from plugin_proc import run_plugin  # noqa: F401 - fixture

STD = "resource.kubernetes.io"
DEVICES = 4  # simulated, numaNodes 2: gpu-0/gpu-2 on NUMA 0 (pci0000:00), gpu-1/gpu-3 on 1


def _start(run_plugin, node, tmp_path, kubectl):
    """A plugin for `node` with its own kubelet dirs, serving, its slices published."""
    profile = tmp_path / "p.yaml"
    profile.write_text(f"devices:\n- count: {DEVICES}\n  numaNodes: 2\n"
                       "  deviceNode: /dev/accel-sim{index}\n")
    dirs = PluginDirs.under(tmp_path / "k")
    p = run_plugin(node, f"--simulate-profile={profile}", *dirs.args())
    dirs.wait_serving(p)
    devices = wait_for(lambda: _published(kubectl, node), 20, "published ResourceSlices")
    return dirs, devices


def _published(kubectl, node):
    items = kubectl.json("get", "resourceslices",
                         f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]
    devs = {d["name"]: d for s in items for d in s["spec"].get("devices", [])}
    return devs if len(devs) == DEVICES else None


def _allocated(kubectl, ns, name, timeout=45):
    return wait_for(lambda: (c := kubectl.json("get", "resourceclaim", name, "-n", ns))
                    .get("status", {}).get("allocation") and c, timeout,
                    f"kube-scheduler to allocate ResourceClaim {name}")


def _ref(claim):
    m = claim["metadata"]
    return m["namespace"], m["name"], m["uid"]


def _spec_env(dirs, uid):
    spec = json.loads(dirs.spec_path(uid).read_text())
    env = {}
    for d in spec.get("devices", []):
        for e in d.get("containerEdits", {}).get("env", []):
            k, _, v = e.partition("=")
            env[k] = v
    return env


def _opaque(requests, sharing):
    return f"""
      - requests: {json.dumps(requests)}
        opaque:
          driver: {DRIVER}
          parameters:
            apiVersion: accel-dra.dev/v1alpha1
            kind: DeviceConfig
            sharing: {json.dumps(sharing)}"""


def test_standard_attributes_are_accepted_and_allocate(kubectl, make_node, run_plugin, apply,
                                                       namespace, tmp_path):
    node = make_node("std-attrs")
    _, devices = _start(run_plugin, node, tmp_path, kubectl)
    # As the apiserver stored them: the standard names beside ours, same values.
    for name, d in devices.items():
        a = d["attributes"]
        assert a[f"{STD}/numaNode"] == a["numaNode"], (name, a)
        assert a[f"{STD}/pciBusID"] == a["pciBusID"], (name, a)
        assert a[f"{STD}/pcieRoot"]["string"].startswith("pci"), (name, a)
    cls = f"{namespace}-numa1"
    apply(device_class(cls, f'device.driver == "{DRIVER}" && '
                            f'device.attributes["{STD}"].numaNode == 1'))
    apply(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: aligned
spec:
  devices:
    requests:
    - name: gpus
      exactly:
        deviceClassName: {cls}
        allocationMode: ExactCount
        count: 2
    constraints:
    - matchAttribute: {STD}/pcieRoot
""")
    apply(_pod("p", node, "aligned"))
    claim = _allocated(kubectl, namespace, "aligned")
    got = sorted(r["device"] for r in claim["status"]["allocation"]["devices"]["results"])
    assert got == ["gpu-1", "gpu-3"], claim["status"]
    assert {devices[g]["attributes"][f"{STD}/pcieRoot"]["string"] for g in got} == {"pci0000:80"}


def test_prioritized_list_prepares_the_chosen_subrequest(kubectl, make_node, run_plugin, apply,
                                                          namespace, tmp_path):
    node = make_node("prio-list")
    dirs, _ = _start(run_plugin, node, tmp_path, kubectl)
    cls = f"{namespace}-accel"
    apply(device_class(cls, f'device.driver == "{DRIVER}"'))
    never = f'device.attributes["{DRIVER}"].productName == "No Such Accelerator"'
    sub = f"""
      firstAvailable:
      - name: big
        deviceClassName: {cls}
        selectors:
        - cel:
            expression: '{never}'
      - name: small
        deviceClassName: {cls}"""
    apply(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: prio
spec:
  devices:
    requests:
    - name: a{sub}
    - name: b{sub}
    config:{_opaque(["a"], {"strategy": "TimeSlicing", "timeSlicing": {"interval": "Long"}})}
{_opaque(["b/big"], {"strategy": "TimeSlicing"})}
{_opaque(["b/small"], {"strategy": "SpacePartitioning", "spacePartitioning": {"partitionCount": 2}})}
""")
    apply(_pod("p", node, "prio"))
    claim = _allocated(kubectl, namespace, "prio")
    results = claim["status"]["allocation"]["devices"]["results"]
    by_request = {r["request"]: r["device"] for r in results}
    assert set(by_request) == {"a/small", "b/small"}, results
    ref = _ref(claim)
    for api in ("v1", "v1beta1"):
        r = sim.prepare(dirs.dra_socket(), ref, api=api)
        assert r.rc == EXIT_OK, r
        names = {d["device_name"]: d["request_names"] for d in r.devices(ref[2])}
        assert names == {by_request["a/small"]: ["a"], by_request["b/small"]: ["b"]}, (api, r)
        env = _spec_env(dirs, ref[2])
        var = {req: "ACCEL_DEVICE_" + dev.upper().replace("-", "_")
               for req, dev in by_request.items()}
        # "a" names the parent: it applies to a/small; "b/big" does not apply to b/small.
        assert env[var["a/small"] + "_SHARING_STRATEGY"] == "TimeSlicing", env
        assert env[var["a/small"] + "_TIMESLICE_INTERVAL"] == "Long", env
        assert env[var["b/small"] + "_SHARING_STRATEGY"] == "SpacePartitioning", env
        assert env[var["b/small"] + "_PARTITION_COUNT"] == "2", env
        # Idempotent: the same answer again, from the checkpoint.
        again = sim.prepare(dirs.dra_socket(), ref, api=api)
        assert again.rc == EXIT_OK and again.devices(ref[2]) == r.devices(ref[2]), again
        u = sim.unprepare(dirs.dra_socket(), ref, api=api)
        assert u.rc == EXIT_OK, u
        assert not dirs.spec_path(ref[2]).exists()


def _claim_on(name, cls, bdf="", admin=False):
    """A claim of one device of `cls`; with `bdf`, the device at that PCI address."""
    sel = (f"""
        selectors:
        - cel:
            expression: 'device.attributes["{DRIVER}"].pciBusID == "{bdf}"'""" if bdf else "")
    return f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: {name}
spec:
  devices:
    requests:
    - name: r
      exactly:
        deviceClassName: {cls}
        adminAccess: {"true" if admin else "false"}{sel}
"""


def test_admin_access_neither_takes_nor_is_blocked(kubectl, make_node, run_plugin, apply,
                                                   namespace, tmp_path):
    kubectl("label", "namespace", namespace, f"{STD}/admin-access=true")
    node = make_node("admin-access")
    dirs, devices = _start(run_plugin, node, tmp_path, kubectl)
    cls = f"{namespace}-accel"
    apply(device_class(cls, f'device.driver == "{DRIVER}"'))
    bdf = {n: d["attributes"]["pciBusID"]["string"] for n, d in devices.items()}
    # gpu-0: exclusive first, then admin. gpu-1: admin first, then exclusive.
    order = [("excl0", "gpu-0", False), ("admin0", "gpu-0", True),
             ("admin1", "gpu-1", True), ("excl1", "gpu-1", False)]
    claims = {}
    for name, dev, admin in order:
        apply(_claim_on(name, cls, bdf[dev], admin))
        apply(_pod(f"p-{name}", node, name))
        claims[name] = _allocated(kubectl, namespace, name)
        [res] = claims[name]["status"]["allocation"]["devices"]["results"]
        assert res["device"] == dev and bool(res.get("adminAccess")) == admin, res
    for name, _, _ in order:
        r = sim.prepare(dirs.dra_socket(), _ref(claims[name]))
        assert r.rc == EXIT_OK, (name, r)
    doc = json.loads(dirs.checkpoint.read_text())["data"]["claims"]
    assert doc[claims["admin0"]["metadata"]["uid"]]["devices"][0]["adminAccess"] is True
    before = {n: doc[claims[n]["metadata"]["uid"]] for n in ("excl0", "excl1")}
    specs = {n: dirs.spec_path(claims[n]["metadata"]["uid"]).read_text() for n in before}
    for name in ("admin0", "admin1"):
        u = sim.unprepare(dirs.dra_socket(), _ref(claims[name]))
        assert u.rc == EXIT_OK, (name, u)
    doc = json.loads(dirs.checkpoint.read_text())["data"]["claims"]
    for n in before:
        assert doc[claims[n]["metadata"]["uid"]] == before[n], n
        assert dirs.spec_path(claims[n]["metadata"]["uid"]).read_text() == specs[n], n

    # Two exclusive claims on one device still conflict (allocation written by hand, as a stale
    # allocation would look).
    apply(_claim_on("dup", cls))
    patch = {"status": {"allocation": {"devices": {"results": [
        {"request": "r", "driver": DRIVER, "pool": node, "device": "gpu-0"}]}}}}
    kubectl("patch", "resourceclaim", "dup", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(patch))
    dup = kubectl.json("get", "resourceclaim", "dup", "-n", namespace)
    r = sim.prepare(dirs.dra_socket(), _ref(dup))
    assert r.rc == EXIT_REJECTED, r
    assert "already in use by ResourceClaim " + namespace + "/excl0" in r.claim_error(
        dup["metadata"]["uid"]), r
