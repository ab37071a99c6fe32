"""The DRA features of Kubernetes 1.37 on the real node (kubelet + containerd), with the plugin of
plugin-up.sh (DEVICES simulated devices):

1. device health in the pod's status (KEP-4680): a device whose node disappears shows Unhealthy in
   status.containerStatuses[].allocatedResourcesStatus of the pod using it, Healthy again after it
   returns (kubelet watches the plugin's dra-health stream);
2. device metadata (KEP-5304): the container finds its claim's DeviceMetadata file at the path the
   KEP gives, naming its device with the published attributes;
3. extended resources backed by DRA (KEP-5004): a pod asking `accel-dra.dev/gpu: 1` in its limits,
   with no claim, gets exactly one device (a container without the limit none, another pod
   another device);
4. prioritized list (KEP-4816): the first subrequest cannot be met, the second is allocated and
   prepared, with the opaque config that targets the subrequest;
5. admin access (KEP-5018): an admin-access claim for every device is prepared while an exclusive
   claim holds one, and does not block a later exclusive claim;
6. device taints (GA in 1.37): the unhealthy device of (1) is tainted NoSchedule in its slice
   (the default) and the taint goes 30 s after the device is back (--device-taint-settle);
   with --device-taint-effect=NoExecute, kube-controller-manager evicts the pod using a device
   that goes unhealthy.
"""

import contextlib
import json
import time
from pathlib import Path

from e2e_lib import (DEVICES, DRIVER, POD_TIMEOUT, allocated_devices, container, env_key,
                     env_of, logs, pod, pod_claim, template, visible_devices, wait_for,
                     wait_running)

METADATA_DIR = "/var/run/kubernetes.io/dra-device-attributes"


def _resource_health(kubectl, ns: str, name: str, ctr: str) -> dict[str, str]:
    """resourceID -> health from the container's allocatedResourcesStatus."""
    p = kubectl.json("get", "pod", name, "-n", ns)
    out = {}
    for cs in p["status"].get("containerStatuses", []):
        if cs["name"] != ctr:
            continue
        for entry in cs.get("allocatedResourcesStatus") or []:
            assert entry["name"].startswith("claim:accel"), entry
            for r in entry.get("resources") or []:
                out[r["resourceID"]] = r.get("health", "")
    return out


def test_device_health_shows_in_the_pod_status(node, plugin, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("health"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "h", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "health"}}))
    wait_running(kubectl, node, ns, "h")
    dev = allocated_devices(pod_claim(kubectl, ns, "h"))[0]
    wait_for(lambda: set(_resource_health(kubectl, ns, "h", "c").values()) == {"Healthy"}, 60,
             f"{dev} Healthy in the pod's allocatedResourcesStatus")
    with _hidden(node, dev):
        wait_for(lambda: set(_resource_health(kubectl, ns, "h", "c").values()) == {"Unhealthy"},
                 60, f"{dev} Unhealthy in the pod's status after its device node went away")
        wait_for(lambda: _taints(node, dev) == [("NoSchedule", "DeviceNodeMissing")], 30,
                 f"{dev} tainted NoSchedule in its slice")
        assert kubectl.json("get", "pod", "h", "-n", ns)["status"]["phase"] == "Running"
    back = time.monotonic()
    wait_for(lambda: set(_resource_health(kubectl, ns, "h", "c").values()) == {"Healthy"}, 60,
             f"{dev} Healthy again after its device node came back")
    assert _taints(node, dev), "the taint stays for the settle time"
    wait_for(lambda: _taints(node, dev) == [], 60, f"{dev}'s taint removed after 30 s healthy")
    took = time.monotonic() - back
    assert took >= 29, f"the taint went {took:.1f} s after recovery"
    print(f"\n{dev}: taint removed {took:.1f} s after its device node came back")


@contextlib.contextmanager
def _hidden(node, dev: str):
    """The simulated device's node renamed away (the device unhealthy), then back."""
    devnode = Path(node.devnode(dev))
    hidden = devnode.with_name(devnode.name + ".hidden")
    devnode.rename(hidden)
    try:
        yield
    finally:
        hidden.rename(devnode)


def _taints(node, dev: str) -> list[tuple[str, str]]:
    """(effect, value) of our taints on the device in the node's slices."""
    return [(t["effect"], t["value"]) for s in node.slices() for d in s["spec"].get("devices", [])
            if d["name"] == dev for t in d.get("taints", [])
            if t["key"] == f"{DRIVER}/unhealthy"]


def test_no_execute_taint_evicts_the_pod(node, plugin, kubectl, ns):
    plugin.start(restart=True, extra=("--device-taint-effect=NoExecute",
                                      "--device-taint-settle=1"))
    wait_for(lambda: len(node.slice_devices()) == DEVICES, 30, "the plugin's slices")
    try:
        kubectl("apply", "-n", ns, "-f", "-", input=template("evict"))
        kubectl("apply", "-n", ns, "-f", "-", input=pod(
            "ev", [container(node, "c", ("accel",))],
            {"accel": {"resourceClaimTemplateName": "evict"}}))
        wait_running(kubectl, node, ns, "ev")
        uid = kubectl.json("get", "pod", "ev", "-n", ns)["metadata"]["uid"]
        dev = allocated_devices(pod_claim(kubectl, ns, "ev"))[0]

        def evicted():
            p = kubectl("get", "pod", "ev", "-n", ns, "-o", "json", check=False)
            if p.returncode != 0:
                return "deleted"
            obj = json.loads(p.stdout)
            if obj["metadata"]["uid"] != uid:
                return "deleted"
            conds = [c for c in obj["status"].get("conditions", [])
                     if c["type"] == "DisruptionTarget" and c["status"] == "True"]
            return (conds[0].get("reason") or "DisruptionTarget") if conds else None

        with _hidden(node, dev):
            wait_for(lambda: _taints(node, dev) == [("NoExecute", "DeviceNodeMissing")], 30,
                     f"{dev} tainted NoExecute")
            how = wait_for(evicted, 60, "kube-controller-manager to evict the pod")
            print(f"\npod using {dev} evicted: {how}")
        wait_for(lambda: _taints(node, dev) == [], 30, f"{dev}'s taint removed")
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
                check=False, timeout=POD_TIMEOUT + 10)
        plugin.start(restart=True)
        wait_for(lambda: len(node.slice_devices()) == DEVICES, 30, "the plugin's slices")


def test_device_metadata_file_in_the_container(node, plugin, kubectl, ns):
    """With --device-metadata (the chart's default; off in plugin-up.sh's plugin)."""
    plugin.start(restart=True, extra=("--device-metadata",))
    wait_for(lambda: len(node.slice_devices()) == DEVICES, 30, "the plugin's slices")
    try:
        _check_metadata(node, kubectl, ns)
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
                check=False, timeout=POD_TIMEOUT + 10)
        plugin.start(restart=True)
        wait_for(lambda: len(node.slice_devices()) == DEVICES, 30, "the plugin's slices")


def _check_metadata(node, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("meta"))
    path = f"{METADATA_DIR}/resourceclaimtemplates/accel/accel/{DRIVER}-metadata.json"
    c = container(node, "c", ("accel",))
    c["command"] = ["sh", "-c", f"cat {path}; echo; echo PROBE-DONE; "
                                "trap 'exit 0' TERM; sleep 3600 & wait"]
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "m", [c], {"accel": {"resourceClaimTemplateName": "meta"}}))
    wait_running(kubectl, node, ns, "m")
    claim = pod_claim(kubectl, ns, "m")
    dev = allocated_devices(claim)[0]
    out = "\n".join(logs(kubectl, ns, "m", "c"))
    assert "PROBE-DONE" in out, out
    first = json.JSONDecoder().raw_decode(out.strip())[0]  # a stream: newest version first
    assert first["kind"] == "DeviceMetadata", first
    assert first["apiVersion"] == "metadata.resource.k8s.io/v1beta1", first
    assert first["metadata"]["uid"] == claim["metadata"]["uid"], first
    assert first.get("podClaimName") == "accel", first
    [req] = first["requests"]
    assert req["name"] == "accel", req
    [d] = req["devices"]
    assert (d["driver"], d["pool"], d["name"]) == (DRIVER, node.name, dev), d
    published = [x for s in node.slices() for x in s["spec"]["devices"] if x["name"] == dev][0]
    for key in ("driverVersion", "type", "index"):
        assert d["attributes"].get(key) == published["attributes"][key], (key, d, published)


def test_extended_resource_without_a_claim(node, plugin, kubectl, ns):
    cls = f"{ns}-ext"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": cls},
        "spec": {"extendedResourceName": f"{DRIVER}/gpu",
                 "selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]}}))
    try:
        def ext_pod(name: str) -> str:
            c = container(node, "with-limit")
            c["resources"] = {"limits": {f"{DRIVER}/gpu": "1"}}
            return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                               "spec": {"terminationGracePeriodSeconds": 1,
                                        "containers": [c, container(node, "without")]}})
        seen = []
        for name in ("e1", "e2"):
            kubectl("apply", "-n", ns, "-f", "-", input=ext_pod(name))
            p = wait_running(kubectl, node, ns, name)
            st = p["status"].get("extendedResourceClaimStatus")
            assert st and st["resourceClaimName"].startswith(f"{name}-extended-resources-"), \
                p["status"]
            c = kubectl.json("get", "resourceclaim", st["resourceClaimName"], "-n", ns)
            assert c["metadata"]["annotations"].get(
                "resource.kubernetes.io/extended-resource-claim") == "true", c["metadata"]
            [dev] = allocated_devices(c)
            env = env_of(logs(kubectl, ns, name, "with-limit"))
            assert visible_devices(env) == dev and env.get(env_key(dev)) == dev, env
            assert "ACCEL_VARS=0" in logs(kubectl, ns, name, "without"), \
                "no ACCEL_* without the limit"
            seen.append(dev)
        assert len(set(seen)) == 2, f"two pods, two devices: {seen}"
        # Every device is taken: a third pod stays Pending.
        kubectl("apply", "-n", ns, "-f", "-", input=ext_pod("e3"))
        wait_for(lambda: any(c.get("reason") == "Unschedulable" for c in kubectl.json(
            "get", "pod", "e3", "-n", ns)["status"].get("conditions", [])), 60,
            "the third pod to be unschedulable")
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
                check=False, timeout=POD_TIMEOUT + 10)
        kubectl("delete", "deviceclass", cls, "--ignore-not-found", "--wait=false", check=False)


def test_prioritized_list_prepares_the_subrequest(node, plugin, kubectl, ns):
    t = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
         "metadata": {"name": "prio"},
         "spec": {"spec": {"devices": {
             "requests": [{"name": "accel", "firstAvailable": [
                 {"name": "many", "deviceClassName": DRIVER, "count": DEVICES + 1},
                 {"name": "one", "deviceClassName": DRIVER}]}],
             "config": [{"requests": ["accel/one"], "opaque": {
                 "driver": DRIVER, "parameters": {
                     "apiVersion": "accel-dra.dev/v1alpha1", "kind": "DeviceConfig",
                     "sharing": {"strategy": "TimeSlicing",
                                 "timeSlicing": {"interval": "Short"}}}}}]}}}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(t))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "pl", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "prio"}}))
    wait_running(kubectl, node, ns, "pl")
    c = pod_claim(kubectl, ns, "pl")
    [r] = c["status"]["allocation"]["devices"]["results"]
    assert r["request"] == "accel/one", r
    env = env_of(logs(kubectl, ns, "pl", "c"))
    assert env.get(env_key(r["device"])) == r["device"], env
    assert env.get(f"{env_key(r['device'])}_SHARING_STRATEGY") == "TimeSlicing", env


def test_admin_access_is_not_exclusive(node, plugin, kubectl, ns):
    kubectl("label", "namespace", ns, "resource.kubernetes.io/admin-access=true")
    kubectl("apply", "-n", ns, "-f", "-", input=template("one"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "x1", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "one"}}))
    wait_running(kubectl, node, ns, "x1")
    held = allocated_devices(pod_claim(kubectl, ns, "x1"))[0]

    admin = json.loads(template("admin"))
    req = admin["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    req.pop("count", None)
    req.update({"allocationMode": "All", "adminAccess": True})
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(admin))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "adm", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "admin"}}))
    wait_running(kubectl, node, ns, "adm")
    ac = pod_claim(kubectl, ns, "adm")
    assert all(r.get("adminAccess") for r in ac["status"]["allocation"]["devices"]["results"]), ac
    devs = sorted(allocated_devices(ac))
    assert len(devs) == DEVICES and held in devs, devs
    assert sorted(visible_devices(env_of(logs(kubectl, ns, "adm", "c"))).split(",")) == devs

    # An exclusive claim after the admin one still gets the free device.
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "x2", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "one"}}))
    wait_running(kubectl, node, ns, "x2")
    other = allocated_devices(pod_claim(kubectl, ns, "x2"))[0]
    assert other != held and other in devs
    # Deleting the admin pod leaves the exclusive claims prepared.
    kubectl("delete", "pod", "adm", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
            timeout=POD_TIMEOUT + 10)
    for name in ("x1", "x2"):
        assert node.cdi_spec(pod_claim(kubectl, ns, name)["metadata"]["uid"]).is_file()
