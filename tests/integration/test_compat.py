"""The compatibility job: accel-dra-plugin against the kube-apiserver and kube-scheduler of one
Kubernetes version (1.34-1.37; CTest runs this file once per version, each on its own control
plane built by `hack/local-cluster/build.sh compat`, see tests/integration/CMakeLists.txt).

For the version under test it shows, with the real apiserver and scheduler:
  * the plugin's ResourceSlices are published and accepted (and which resource.k8s.io version the
    plugin chose from the served ones);
  * a claim whose DeviceClass selects with CEL on our attributes and capacity is allocated by the
    scheduler to one of those devices;
  * that claim is prepared and unprepared through the kubelet stand-in on both kubelet gRPC
    versions (dra v1 and v1beta1), with the CDI spec written and removed;
and records which DRA API fields this apiserver keeps with its default feature gates (a server-
side dry run: a field the apiserver drops is a feature that is off or absent).

The row is written to $ACCEL_DRA_COMPAT_RESULTS/<version>.json; hack/compat-table.py turns the
rows into the table of docs/compatibility.md (CTest compat_table checks the doc is current).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

import kubelet_sim as sim
from conftest import KEEP, LOCAL_CLUSTER
from kubelet_sim import DRIVER, EXIT_OK, PluginDirs
from plugin_proc import run_plugin  # noqa: F401 - fixture

DEVICE_COUNT = 4
# CEL on our attributes and capacity: only devices of type gpu with index 2 and >= 8Gi.
CEL = (f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "gpu" && '
       f'device.attributes["{DRIVER}"].index == 2 && '
       f'device.capacity["{DRIVER}"].memory.compareTo(quantity("8Gi")) >= 0')


def _results_dir() -> Path:
    d = Path(os.environ.get("ACCEL_DRA_COMPAT_RESULTS")
             or Path(os.environ.get("ACCEL_DRA_BUILD_DIR", ".")) / "compat-results")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _slices(kubectl, node: str) -> list[dict]:
    return kubectl.json("get", "resourceslices",
                        f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]


def _kept(kubectl, manifest: dict, path: list[str]) -> bool:
    """Whether a server-side dry run of `manifest` keeps the field at `path` (a feature whose gate
    is off, or that the version lacks, is dropped or refused)."""
    p = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                input=json.dumps(manifest), check=False)
    if p.returncode != 0:
        return False
    obj = json.loads(p.stdout)
    for key in path:
        if isinstance(obj, list):
            obj = obj[int(key)] if len(obj) > int(key) else None
        elif isinstance(obj, dict):
            obj = obj.get(key)
        if obj is None:
            return False
    return True


def _features(kubectl, ns: str, node: str) -> dict[str, bool]:
    req = {"name": "r", "exactly": {"deviceClassName": "x"}}
    claim = lambda spec: {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",  # noqa: E731
                          "metadata": {"generateName": "dry-", "namespace": ns}, "spec": spec}
    slice_ = lambda spec: {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",  # noqa: E731
                           "metadata": {"generateName": "dry-"},
                           "spec": {"driver": DRIVER, "nodeName": node,
                                    "pool": {"name": node, "generation": 1,
                                             "resourceSliceCount": 1}, **spec}}
    return {
        # KEP-4816: a request with firstAvailable subrequests.
        "prioritizedList": _kept(kubectl, claim({"devices": {"requests": [
            {"name": "r", "firstAvailable": [{"name": "a", "deviceClassName": "x"}]}]}}),
            ["spec", "devices", "requests", "0", "firstAvailable"]),
        # KEP-5018: adminAccess (the namespace carries the admin-access label).
        "adminAccess": _kept(kubectl, claim({"devices": {"requests": [
            {"name": "r", "exactly": {"deviceClassName": "x", "adminAccess": True}}]}}),
            ["spec", "devices", "requests", "0", "exactly", "adminAccess"]),
        # KEP-5004: DeviceClass.spec.extendedResourceName.
        "extendedResource": _kept(kubectl, {
            "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"generateName": "dry-"},
            "spec": {"extendedResourceName": f"{DRIVER}/dry"}}, ["spec", "extendedResourceName"]),
        # KEP-5055: device taints in a slice.
        "deviceTaints": _kept(kubectl, slice_({"devices": [
            {"name": "d", "taints": [{"key": f"{DRIVER}/t", "effect": "NoSchedule"}]}]}),
            ["spec", "devices", "0", "taints"]),
        # KEP-4815: shared counters (partitionable devices), in a slice of their own (since
        # resource.k8s.io/v1 a slice holds either sharedCounters or devices).
        "partitionableDevices": _kept(kubectl, slice_({"sharedCounters": [
            {"name": "c", "counters": {"mem": {"value": "1Gi"}}}]}),
            ["spec", "sharedCounters"]),
        # KEP-5075: consumable capacity (allowMultipleAllocations).
        "consumableCapacity": _kept(kubectl, slice_({"devices": [
            {"name": "d", "allowMultipleAllocations": True}]}),
            ["spec", "devices", "0", "allowMultipleAllocations"]),
    }


def test_compat(cluster, kubectl, run_plugin, tmp_path, wait_for):
    status, info = cluster.request("/version")
    assert status == 200, info
    version = info["gitVersion"]
    status, group = cluster.request("/apis/resource.k8s.io")
    assert status == 200, group
    served = [v["version"] for v in group["versions"]]
    row: dict = {"kubernetes": version, "servedResourceVersions": served, "checks": {}}
    checks = row["checks"]

    suffix = secrets.token_hex(3)
    ns = node = cls = f"compat-{suffix}"
    p = subprocess.run([str(LOCAL_CLUSTER / "node.sh"), node, "--dir", str(cluster.dir)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"node.sh {node}: {p.stderr}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "resource.kubernetes.io/admin-access=true")
    if not cluster.env.get("KCM_PID"):  # up.sh --no-controller-manager: no ServiceAccount controller
        kubectl("create", "serviceaccount", "default", "-n", ns)
    try:
        profile = tmp_path / "profile.yaml"
        profile.write_text(f"devices:\n- count: {DEVICE_COUNT}\n  type: gpu\n  memory: 16Gi\n"
                           "  deviceNode: /dev/accel-sim{index}\n")
        dirs = PluginDirs.under(tmp_path / "dirs")
        plugin = run_plugin(node, f"--simulate-profile={profile}", *dirs.args())
        dirs.wait_serving(plugin)

        # 1. Slices published and accepted.
        wait_for(lambda: sum(len(s["spec"].get("devices", [])) for s in _slices(kubectl, node))
                 == DEVICE_COUNT, 20, "the plugin's ResourceSlices")
        chosen = [line.split("resource.k8s.io/", 1)[1].split()[0]
                  for line in plugin.log().splitlines() if " resource.k8s.io/" in line
                  and "accel-dra-plugin" in line]
        assert chosen, plugin.log()[-2000:]
        row["pluginResourceVersion"] = chosen[0]
        checks["slicesPublished"] = True

        # 2. The scheduler allocates with CEL on our attributes and capacity.
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": cls},
            "spec": {"selectors": [{"cel": {"expression": CEL}}]}}))
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                "items": [
            {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "c"},
             "spec": {"devices": {"requests": [{"name": "accel",
                                                "exactly": {"deviceClassName": cls}}]}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
             "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                      "tolerations": [{"operator": "Exists"}],
                      "resourceClaims": [{"name": "accel", "resourceClaimName": "c"}],
                      "containers": [{"name": "c", "image": "localhost/busybox:local",
                                      "resources": {"claims": [{"name": "accel"}]}}]}}]}))
        wait_for(lambda: kubectl.json("get", "resourceclaim", "c", "-n", ns)
                 .get("status", {}).get("allocation"), 60, "kube-scheduler to allocate the claim")
        claim = kubectl.json("get", "resourceclaim", "c", "-n", ns)
        results = claim["status"]["allocation"]["devices"]["results"]
        assert [(r["driver"], r["pool"], r["device"]) for r in results] == [(DRIVER, node, "gpu-2")]
        checks["celAllocation"] = True

        # 3. Prepare / unprepare on both kubelet gRPC versions.
        ref = (ns, "c", claim["metadata"]["uid"])
        for api in ("v1", "v1beta1"):
            r = sim.prepare(dirs.dra_socket(), ref, api=api)
            assert r.rc == EXIT_OK and r.claim_error(ref[2]) == "", str(r)
            assert [d["device_name"] for d in r.devices(ref[2])] == ["gpu-2"], str(r)
            assert dirs.spec_path(ref[2]).is_file()
            u = sim.unprepare(dirs.dra_socket(), ref, api=api)
            assert u.rc == EXIT_OK and u.claim_error(ref[2]) == "", str(u)
            assert not dirs.spec_path(ref[2]).exists()
            checks[f"kubelet{api.capitalize()}"] = True
        assert plugin.alive()

        row["features"] = _features(kubectl, ns, node)
    finally:
        (_results_dir() / f"{version}.json").write_text(
            json.dumps(row, indent=2, sort_keys=True) + "\n")
        if not KEEP:
            kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
            kubectl("delete", "deviceclass", cls, "--ignore-not-found", "--wait=false", check=False)
            kubectl("delete", "node", node, "--ignore-not-found", "--wait=false", check=False)
