"""A pod with a ResourceClaimTemplate on the real node: kubelet calls the plugin, containerd injects
the claim's CDI devices, and only the container that uses the claim sees them."""

import json

from e2e_lib import (DRIVER, POD_TIMEOUT, allocated_devices, container, devnodes_of,
                     driver_version_of, env_key, env_of, logs, pod, pod_claim, template,
                     visible_devices, visible_devices_var, wait_for, wait_running)


def test_claim_template_pod_gets_env_and_device_node(node, plugin, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "p", [container(node, "with-claim", ("accel",)), container(node, "without-claim")],
        {"accel": {"resourceClaimTemplateName": "one-accel"}}))
    p = wait_running(kubectl, node, ns, "p")
    assert p["spec"]["nodeName"] == node.name

    # The claim made from the template: allocated by the scheduler, reserved for the pod.
    c = pod_claim(kubectl, ns, "p")
    name, uid = c["metadata"]["name"], c["metadata"]["uid"]
    devices = allocated_devices(c)
    assert len(devices) == 1, c["status"]
    dev = devices[0]
    result = c["status"]["allocation"]["devices"]["results"][0]
    assert (result["driver"], result["pool"]) == (DRIVER, node.name)
    assert [r["uid"] for r in c["status"]["reservedFor"]] == [p["metadata"]["uid"]]
    state = kubectl("get", "resourceclaim", name, "-n", ns, "--no-headers").stdout.split()
    assert state[1] == "allocated,reserved", state

    # What the container with the claim printed: the CDI env and the device node (1:3 as made
    # by plugin-up.sh), and nothing of the other device.
    out = logs(kubectl, ns, "p", "with-claim")
    env = env_of(out)
    key = env_key(dev)
    assert env.get(key) == dev, out
    assert env.get(f"{key}_RESOURCE_CLAIM") == f"{ns}/{name}", out
    assert env.get(f"{key}_RESOURCE_CLAIM_UID") == uid, out
    assert env.get(f"{key}_SHARING_STRATEGY") == "Exclusive", out
    assert env.get(visible_devices_var(uid)) == dev, out
    assert visible_devices(env) == dev, out
    assert not any(k.startswith("ACCEL_DEVICE_") and not k.startswith(key) for k in env), out
    # The node is at /dev/accel-simN in the container (not at its host path under the run dir).
    assert devnodes_of(out) == [f"{node.ctr_devnode(dev)} 1:3"], out
    # The simulated driver's version file, read-only, with what the slice publishes.
    published = [d for s in node.slices() for d in s["spec"]["devices"] if d["name"] == dev]
    version = published[0]["attributes"]["driverVersion"]["version"]
    assert driver_version_of(out) == version == "1.0.0", out

    # The container without the claim: no ACCEL_* variable, no device node, no version file.
    out2 = logs(kubectl, ns, "p", "without-claim")
    assert "ACCEL_VARS=0" in out2 and devnodes_of(out2) == [], out2
    assert driver_version_of(out2) is None, out2

    # The claim's CDI spec exists while the pod runs; deleting the pod unprepares the claim
    # (kubelet -> NodeUnprepareResources) and the spec goes away.
    spec = node.cdi_spec(uid)
    assert spec.is_file(), sorted(p.name for p in node.cdi_root.iterdir())
    assert node.devnode(dev) in spec.read_text()
    kubectl("delete", "pod", "p", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
            timeout=POD_TIMEOUT + 10)
    wait_for(lambda: not spec.exists(), 30, f"CDI spec {spec} removed after the pod was deleted")
    wait_for(lambda: f"NodeUnprepareResources" in plugin.log() and
             any("NodeUnprepareResources" in line and uid in line and line.rstrip().endswith("ok")
                 for line in plugin.log().splitlines()),
             30, f"the plugin's log to show claim {uid} unprepared")
    # The resourceclaim controller deletes the generated claim with its pod.
    wait_for(lambda: kubectl("get", "resourceclaim", name, "-n", ns, "--ignore-not-found",
                             "-o", "name").stdout.strip() == "",
             30, f"ResourceClaim {ns}/{name} deleted with its pod")


def test_two_devices_in_one_pod(node, plugin, kubectl, ns):
    """A request for two devices: the container sees both, each with its own variables and node."""
    kubectl("apply", "-n", ns, "-f", "-", input=template("two-accels", count=2))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "p2", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "two-accels"}}))
    wait_running(kubectl, node, ns, "p2")
    devices = sorted(allocated_devices(pod_claim(kubectl, ns, "p2")))
    assert len(devices) == 2
    out = logs(kubectl, ns, "p2", "c")
    env = env_of(out)
    for d in devices:
        assert env.get(env_key(d)) == d, out
    assert sorted(visible_devices(env).split(",")) == devices, out
    assert sorted(devnodes_of(out)) == sorted(f"{node.ctr_devnode(d)} 1:3" for d in devices), out


def test_real_node_runtime_attributes_select_devices(node, plugin, kubectl, ns):
    """KAR-0001 on the real node: kubelet reports containerd's version in the Node status, every
    device carries it (and cdiEnabled), and a DeviceClass that requires containerd >= 2.0 with CDI
    enabled gets a pod running with its device injected through CDI."""
    rt = kubectl.json("get", "node", node.name)["status"]["nodeInfo"]["containerRuntimeVersion"]
    assert rt.startswith("containerd://"), rt
    devs = [d for s in node.slices() for d in s["spec"].get("devices", [])]
    assert devs
    for d in devs:
        a = d["attributes"]
        assert a["containerRuntime"] == {"string": "containerd"}, a
        assert a["containerRuntimeVersion"] == {"version": rt.split("://", 1)[1].lstrip("v")}, a
        assert a["cdiEnabled"] == {"bool": True}, a
    cls = f"{ns}-containerd-cdi"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": cls},
        "spec": {"selectors": [{"cel": {"expression": (
            f'device.driver == "{DRIVER}" && '
            f'device.attributes["{DRIVER}"].containerRuntime == "containerd" && '
            f'device.attributes["{DRIVER}"].containerRuntimeVersion'
            f'.compareTo(semver("2.0.0")) >= 0 && device.attributes["{DRIVER}"].cdiEnabled')}}]}}))
    try:
        t = json.loads(template("rt-accel"))
        t["spec"]["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] = cls
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(t))
        kubectl("apply", "-n", ns, "-f", "-", input=pod(
            "rt", [container(node, "c", ("accel",))],
            {"accel": {"resourceClaimTemplateName": "rt-accel"}}))
        wait_running(kubectl, node, ns, "rt")
        dev = allocated_devices(pod_claim(kubectl, ns, "rt"))[0]
        assert visible_devices(env_of(logs(kubectl, ns, "rt", "c"))) == dev
    finally:
        kubectl("delete", "deviceclass", cls, "--ignore-not-found", "--wait=false", check=False)
