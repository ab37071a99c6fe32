"""A real kube-scheduler allocates our published devices through CEL selectors (issue 2)."""

from __future__ import annotations

from plugin_proc import run_plugin  # noqa: F401 - fixture

DRIVER = "accel-dra.dev"


def claim_template(name: str, device_class: str) -> str:
    return f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: {name}
spec:
  spec:
    devices:
      requests:
      - name: accel
        exactly:
          deviceClassName: {device_class}
"""


def pod(name: str, template: str, node: str) -> str:
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
  - name: accel
    resourceClaimTemplateName: {template}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: accel
"""


def device_class(name: str, expression: str) -> str:
    return f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: {name}
spec:
  selectors:
  - cel:
      expression: '{expression}'
"""


def claim_of(kubectl, ns, pod_name):
    p = kubectl.json("get", "pod", pod_name, "-n", ns)
    statuses = p.get("status", {}).get("resourceClaimStatuses", [])
    if not statuses or not statuses[0].get("resourceClaimName"):
        return None
    return kubectl.json("get", "resourceclaim", statuses[0]["resourceClaimName"], "-n", ns)


def test_scheduler_allocates_by_driver_version(kubectl, make_node, run_plugin, apply, namespace,
                                               wait_for, tmp_path):
    node = make_node("sched-ok")
    profile = tmp_path / "p.yaml"
    profile.write_text("devices:\n- count: 2\n  driverVersion: 1.2.0\n")
    run_plugin(node, f"--simulate-profile={profile}")
    wait_for(lambda: kubectl.json("get", "resourceslices",
                                  f"--field-selector=spec.nodeName={node}")["items"], 10, "slices")
    cls = f"{namespace}-new-driver"
    apply(device_class(cls, f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"]'
                            f'.driverVersion.isGreaterThan(semver("1.0.0"))'))
    apply(claim_template("t", cls))
    apply(pod("p", "t", node))
    claim = wait_for(lambda: (c := claim_of(kubectl, namespace, "p")) and
                     c.get("status", {}).get("allocation") and c, 30, "an allocated claim")
    results = claim["status"]["allocation"]["devices"]["results"]
    assert len(results) == 1
    r = results[0]
    assert r["driver"] == DRIVER and r["pool"] == node and r["device"] in ("gpu-0", "gpu-1")
    assert r["request"] == "accel"
    assert claim["status"]["reservedFor"][0]["name"] == "p"
    bound = wait_for(lambda: kubectl.json("get", "pod", "p", "-n", namespace)["spec"].get("nodeName"),
                     30, "the pod to be bound")
    assert bound == node


def test_selector_matching_nothing_leaves_pod_unschedulable(kubectl, make_node, run_plugin, apply,
                                                            namespace, wait_for):
    node = make_node("sched-none")
    run_plugin(node, "--simulate=2")  # driverVersion 1.0.0
    wait_for(lambda: kubectl.json("get", "resourceslices",
                                  f"--field-selector=spec.nodeName={node}")["items"], 10, "slices")
    cls = f"{namespace}-too-new"
    apply(device_class(cls, f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"]'
                            f'.driverVersion.isGreaterThan(semver("9.0.0"))'))
    apply(claim_template("t", cls))
    apply(pod("p", "t", node))

    def unschedulable():
        p = kubectl.json("get", "pod", "p", "-n", namespace)
        for c in p.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                return c
        return None

    cond = wait_for(unschedulable, 30, "PodScheduled=False/Unschedulable")
    assert "cannot allocate all claims" in cond.get("message", "") or "resourceclaim" in cond.get("message", "").lower(), cond
    assert not kubectl.json("get", "pod", "p", "-n", namespace)["spec"].get("nodeName")
