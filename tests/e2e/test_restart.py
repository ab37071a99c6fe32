"""Restarts on the real node: the plugin while pods run (kubelet re-registers it), and kubelet
(which deletes the node's ResourceSlices at start; the plugin republishes them)."""

from e2e_lib import (DEVICES, POD_TIMEOUT, allocated_devices, container, container_state, env_of,
                     logs, pod, pod_claim, template, visible_devices, wait_for, wait_running)


def claim_pod(kubectl, node, ns, name):
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        name, [container(node, "c", ("accel",))], {"accel": {"resourceClaimTemplateName": "one-accel"}}))
    wait_running(kubectl, node, ns, name)
    dev = allocated_devices(pod_claim(kubectl, ns, name))
    assert visible_devices(env_of(logs(kubectl, ns, name, "c"))) == dev[0]
    return dev[0]


def test_plugin_restart_keeps_pods_and_reregisters(node, plugin, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    claim_pod(kubectl, node, ns, "before")
    uid = pod_claim(kubectl, ns, "before")["metadata"]["uid"]
    state = container_state(kubectl, ns, "before")
    old_pid = plugin.pid()
    registrations = plugin.log().count("kubelet registered DRA driver")

    # plugin-up.sh --restart: SIGTERM, start again, wait until kubelet registered the new one.
    new_pid = plugin.start(restart=True)
    assert new_pid != old_pid
    assert plugin.log().count("kubelet registered DRA driver") > registrations

    # The running pod is untouched: same container, no restart, still Running.
    p = kubectl.json("get", "pod", "before", "-n", ns)
    assert p["status"]["phase"] == "Running"
    assert container_state(kubectl, ns, "before") == state
    # A new pod is prepared by the new plugin.
    claim_pod(kubectl, node, ns, "after")
    assert "NodePrepareResources" in plugin.log().split("plugin-up.sh")[-1]
    # The new plugin unprepares a claim the old one prepared (from its checkpoint).
    kubectl("delete", "pod", "before", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
            timeout=POD_TIMEOUT + 10)
    wait_for(lambda: not node.cdi_spec(uid).exists(), 30,
             f"CDI spec of claim {uid} removed by the restarted plugin")
    assert any("NodeUnprepareResources" in line and uid in line
               for line in plugin.log().split("plugin-up.sh")[-1].splitlines())


def test_kubelet_restart_republishes_slices(node, plugin, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    claim_pod(kubectl, node, ns, "running")
    state = container_state(kubectl, ns, "running")
    old_uids = {s["metadata"]["uid"] for s in node.slices()}
    assert old_uids
    registrations = plugin.log().count("kubelet registered DRA driver")
    plugin_pid = plugin.pid()

    node.restart_kubelet()
    wait_for(node.ready, 60, f"Node {node.name} Ready after the kubelet restart")
    # kubelet deleted the node's slices at start; the plugin noticed and published new ones.
    wait_for(lambda: plugin.log().count("kubelet registered DRA driver") > registrations, 60,
             "kubelet to register the plugin again")

    def republished():
        slices = node.slices()
        uids = {s["metadata"]["uid"] for s in slices}
        devs = [d["name"] for s in slices for d in s["spec"].get("devices", [])]
        return uids and not (uids & old_uids) and len(devs) == DEVICES and uids
    wait_for(republished, 60, f"new ResourceSlices with {DEVICES} devices (old: {old_uids})")
    assert plugin.pid() == plugin_pid  # the same plugin, not restarted

    # Running containers survive the kubelet restart; new pods are still prepared.
    assert kubectl.json("get", "pod", "running", "-n", ns)["status"]["phase"] == "Running"
    assert container_state(kubectl, ns, "running") == state
    claim_pod(kubectl, node, ns, "after-kubelet-restart")
