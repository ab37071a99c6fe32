"""One ResourceClaim shared by two pods on the real node, and what the scheduler does when every
device is taken."""

from e2e_lib import (DEVICES, allocated_devices, claim, container, devnodes_of, env_of, logs, pod,
                     pod_claim, template, visible_devices, wait_for, wait_running)


def test_shared_claim_and_unschedulable_when_devices_are_taken(node, plugin, kubectl, ns):
    assert DEVICES == 2
    kubectl("apply", "-n", ns, "-f", "-", input=claim("shared"))
    for name in ("a", "b"):
        kubectl("apply", "-n", ns, "-f", "-", input=pod(
            name, [container(node, "c", ("accel",))], {"accel": {"resourceClaimName": "shared"}}))
    pods = {name: wait_running(kubectl, node, ns, name) for name in ("a", "b")}

    c = kubectl.json("get", "resourceclaim", "shared", "-n", ns)
    devices = allocated_devices(c)
    assert len(devices) == 1, c["status"]
    dev = devices[0]
    assert sorted(r["uid"] for r in c["status"]["reservedFor"]) == \
        sorted(p["metadata"]["uid"] for p in pods.values())

    # Both containers saw the same device: same variables, same device node.
    outs = {name: logs(kubectl, ns, name, "c") for name in ("a", "b")}
    for name, out in outs.items():
        env = env_of(out)
        assert visible_devices(env) == dev, (name, out)
        assert any(k.endswith("_RESOURCE_CLAIM") and v == f"{ns}/shared" for k, v in env.items()), out
        assert devnodes_of(out) == [f"{node.ctr_devnode(dev)} 1:3"], (name, out)
    assert env_of(outs["a"]) == env_of(outs["b"])

    # Take the other device with a second pod.
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "filler", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "one-accel"}}))
    wait_running(kubectl, node, ns, "filler")
    other = allocated_devices(pod_claim(kubectl, ns, "filler"))
    assert len(other) == 1 and other[0] != dev
    assert visible_devices(env_of(logs(kubectl, ns, "filler", "c"))) == other[0]

    # Every device is taken: one more pod stays Pending with the scheduler's reason.
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "extra", [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "one-accel"}}))

    def unschedulable():
        p = kubectl.json("get", "pod", "extra", "-n", ns)
        for cond in p["status"].get("conditions", []):
            if cond["type"] == "PodScheduled" and cond["status"] == "False" \
                    and cond.get("reason") == "Unschedulable":
                return p, cond["message"]
        return None
    p, message = wait_for(unschedulable, 60, "pod extra to be reported Unschedulable")
    assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")
    assert "cannot allocate all claims" in message, message
    assert allocated_devices(pod_claim(kubectl, ns, "extra")) == []

    # Freeing a device lets the scheduler place it (the Pending state was about devices).
    kubectl("delete", "pod", "filler", "-n", ns, "--wait=true", "--timeout=60s", timeout=70)
    wait_running(kubectl, node, ns, "extra")
    assert visible_devices(env_of(logs(kubectl, ns, "extra", "c"))) == other[0]
