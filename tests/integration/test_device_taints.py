"""--device-taints through the real apiserver and scheduler (issue 5, health): an unhealthy device
(its /dev node removed in a fixture-host copy) is published with the taint
accel-dra.dev/unhealthy=DeviceNodeMissing:NoSchedule, the real scheduler does not allocate it
while a healthy device still allocates, and when the node comes back the taint goes and the
waiting claim is allocated.

DRADeviceTaints is GA (on by default) in Kubernetes 1.37, so this runs on the shared test cluster;
test_device_taints_off.py shows the plugin's behaviour on a cluster with the gate off."""

from __future__ import annotations

import pytest

from host_tree import PCI_IDS, HostCopy
from conftest import device_class
from plugin_proc import run_plugin  # noqa: F401 - fixture

DRIVER = "accel-dra.dev"
# Device names come from PCI addresses: the h100x8 host's GPUs at 0000:38:00.0 and 0000:48:00.0
# (index 2 and 3; /dev/nvidia2 and /dev/nvidia3).
GPU2, GPU3 = "gpu-0000-38-00-0", "gpu-0000-48-00-0"
TAINT = {"key": f"{DRIVER}/unhealthy", "value": "DeviceNodeMissing", "effect": "NoSchedule"}


def devices(kubectl, node) -> dict[str, dict]:
    items = kubectl.json("get", "resourceslices",
                         f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]
    return {d["name"]: d for s in items for d in s["spec"]["devices"]}


def taints(kubectl, node, device) -> list[dict]:
    return [{k: t.get(k) for k in ("key", "value", "effect")}
            for t in devices(kubectl, node).get(device, {}).get("taints", [])]


def claim_and_pod(name: str, cls: str, node: str, index: int) -> str:
    return f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: {name}
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: {cls}
        selectors:
        - cel:
            expression: device.attributes["{DRIVER}"].index == {index}
---
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
  - name: gpu
    resourceClaimName: {name}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: gpu
"""


def test_unhealthy_device_is_tainted_and_not_allocated(cluster, kubectl, make_node, run_plugin,
                                                        apply, namespace, tmp_path, wait_for):
    if "DRADeviceTaints=false" in cluster.env.get("FEATURE_GATES", ""):
        pytest.fail("this test needs a cluster with DRADeviceTaints on (the default from "
                    "Kubernetes 1.36)", pytrace=False)
    host = HostCopy("h100x8", tmp_path / "host")
    node = make_node("taints")
    p = run_plugin(node, f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}", "--no-nvml",
                   "--device-taints")
    wait_for(lambda: len(devices(kubectl, node)) == 8, 20, "8 devices published")
    assert all("taints" not in d for d in devices(kubectl, node).values())

    host.hide("dev/nvidia3")
    wait_for(lambda: taints(kubectl, node, GPU3) == [TAINT], 10,
             f"the unhealthy taint on {GPU3} in the apiserver")
    d3 = devices(kubectl, node)[GPU3]
    assert d3["taints"][0].get("timeAdded"), d3  # set by the apiserver
    assert all("taints" not in d for n, d in devices(kubectl, node).items() if n != GPU3)

    cls = f"{namespace}-gpu"
    apply(device_class(cls, f"""
device.driver == "{DRIVER}"
"""), namespace=None)
    apply(claim_and_pod("healthy", cls, node, 2) + "---" + claim_and_pod("tainted", cls, node, 3))

    def allocation(name):
        c = kubectl.json("get", "resourceclaim", name, "-n", namespace)
        return c.get("status", {}).get("allocation")

    alloc = wait_for(lambda: allocation("healthy"), 30, "allocation of the healthy device")
    assert alloc["devices"]["results"][0]["device"] == GPU2

    def unschedulable(name):
        pod = kubectl.json("get", "pod", name, "-n", namespace)
        for c in pod.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        return None

    cond = wait_for(lambda: unschedulable("tainted"), 30, "the tainted device's pod unschedulable")
    assert allocation("tainted") is None
    print(f"\ntainted device: pod {cond.get('reason')}: {cond.get('message')}")

    host.show("dev/nvidia3")  # healthy again: the taint goes, the waiting claim is allocated
    wait_for(lambda: taints(kubectl, node, GPU3) == [], 10, "the taint removed")
    alloc = wait_for(lambda: allocation("tainted"), 60, "allocation after the device recovered")
    assert alloc["devices"]["results"][0]["device"] == GPU3
    assert p.alive()
