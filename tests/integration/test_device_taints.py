"""Device taints through the real apiserver and scheduler (issues 5 and 13): with the defaults an
unhealthy device (its /dev node removed in a fixture-host copy) is published with the taint
accel-dra.dev/unhealthy=DeviceNodeMissing:NoSchedule, the real scheduler does not allocate it
while a healthy device still allocates, and when the node comes back the taint stays for the
settle time (--device-taint-settle), then goes and the waiting claim is allocated. The effect is
configurable (--device-taint-effect=NoExecute). A DeviceTaintRule an administrator creates is
honoured by the scheduler (a claim tolerating it is allocated, one that does not waits), and the
plugin leaves it alone: its slices never carry the rule's taint.

DRADeviceTaints is GA (on by default) in Kubernetes 1.37, so this runs on the shared test cluster;
test_device_taints_off.py shows the plugin's behaviour on a cluster with the gate off."""

from __future__ import annotations

import time

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


def claim_and_pod(name: str, cls: str, node: str, index: int, toleration: str = "") -> str:
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
            expression: device.attributes["{DRIVER}"].index == {index}{toleration}
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
    settle = 4
    p = run_plugin(node, f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}", "--no-nvml",
                   f"--device-taint-settle={settle}")  # taints on, NoSchedule: the defaults
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

    # Healthy again: the taint stays for the settle time, then goes and the claim is allocated.
    host.show("dev/nvidia3")
    back = time.monotonic()
    time.sleep(settle / 2)
    assert taints(kubectl, node, GPU3) == [TAINT], "removed before the settle time"
    assert allocation("tainted") is None
    wait_for(lambda: taints(kubectl, node, GPU3) == [], 15, "the taint removed")
    took = time.monotonic() - back
    assert took >= settle - 0.6, f"the taint went {took:.1f} s after recovery (settle {settle} s)"
    print(f"taint removed {took:.1f} s after the device node came back (settle {settle} s)")
    alloc = wait_for(lambda: allocation("tainted"), 60, "allocation after the device recovered")
    assert alloc["devices"]["results"][0]["device"] == GPU3
    assert p.alive()


def test_taint_effect_is_configurable(kubectl, make_node, run_plugin, tmp_path, wait_for):
    host = HostCopy("h100x8", tmp_path / "host")
    node = make_node("taints-exec")
    run_plugin(node, f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}", "--no-nvml",
               "--device-taint-effect=NoExecute", "--device-taint-settle=0")
    wait_for(lambda: len(devices(kubectl, node)) == 8, 20, "8 devices published")
    host.hide("dev/nvidia3")
    wait_for(lambda: taints(kubectl, node, GPU3) == [dict(TAINT, effect="NoExecute")], 10,
             "a NoExecute taint")
    host.show("dev/nvidia3")  # settle 0: removed on the next health check
    wait_for(lambda: taints(kubectl, node, GPU3) == [], 10, "the taint removed at once")


def test_device_taint_rule_is_honoured_and_left_alone(kubectl, make_node, run_plugin, apply,
                                                       namespace, tmp_path, wait_for):
    host = HostCopy("h100x8", tmp_path / "host")
    node = make_node("taint-rule")
    run_plugin(node, f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}", "--no-nvml")
    wait_for(lambda: len(devices(kubectl, node)) == 8, 20, "8 devices published")
    rule = f"{namespace}-maintenance"
    apply(f"""
apiVersion: resource.k8s.io/v1
kind: DeviceTaintRule
metadata:
  name: {rule}
spec:
  deviceSelector:
    driver: {DRIVER}
    pool: {node}
    device: {GPU2}
  taint:
    key: example.com/maintenance
    value: planned
    effect: NoSchedule
""", namespace=None)
    try:
        cls = f"{namespace}-gpu"
        apply(device_class(cls, f"""
device.driver == "{DRIVER}"
"""), namespace=None)

        def allocation(name):
            c = kubectl.json("get", "resourceclaim", name, "-n", namespace)
            return c.get("status", {}).get("allocation")

        def unschedulable(name):
            pod = kubectl.json("get", "pod", name, "-n", namespace)
            return any(c["type"] == "PodScheduled" and c["status"] == "False"
                       for c in pod.get("status", {}).get("conditions", []))

        # Without a toleration the rule's taint keeps the device from the claim.
        apply(claim_and_pod("plain", cls, node, 2))
        wait_for(lambda: unschedulable("plain"), 30, "the pod unschedulable under the rule")
        assert allocation("plain") is None
        # The plugin never copies or removes the rule's taint: its slices have none.
        assert taints(kubectl, node, GPU2) == []
        kubectl("delete", "pod,resourceclaim", "plain", "-n", namespace, "--wait=false")
        # A claim tolerating it gets the device.
        tolerate = """
        tolerations:
        - key: example.com/maintenance
          operator: Exists
          effect: NoSchedule"""
        apply(claim_and_pod("tolerant", cls, node, 2, toleration=tolerate))
        alloc = wait_for(lambda: allocation("tolerant"), 30, "the tolerating claim allocated")
        assert alloc["devices"]["results"][0]["device"] == GPU2
        assert taints(kubectl, node, GPU2) == []
    finally:
        kubectl("delete", "devicetaintrule", rule, "--ignore-not-found", check=False)
