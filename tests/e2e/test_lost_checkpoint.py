"""A corrupt checkpoint on the real node (issue 11): one flipped byte in the plugin's checkpoint
while a pod runs, the plugin restarted. The plugin moves the file aside and rebuilds the claims
from their CDI specs instead of deleting the specs, so a killed container of the running pod
restarts with its devices (before, containerd refused it: "unresolvable CDI devices"), and
kubelet's unprepare of the rebuilt claims still cleans up. The pod's one container holds two
claims, which also shows that their spec-level variables do not collide."""

import os
import signal
from pathlib import Path

from e2e_lib import (DEVICES, DRIVER, POD_TIMEOUT, allocated_devices, container, container_state,
                     devnodes_of, env_of, logs, pod, pod_claim, template, visible_devices_var,
                     wait_for, wait_running)


def stop_plugin(plugin):
    pid = plugin.pid()
    assert pid, "the plugin is not running"
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, f"the plugin (PID {pid}) to stop")


def seen(kubectl, node, ns, uids, devices):
    """The container's output: each claim's variable names its device, and both nodes are there."""
    out = logs(kubectl, ns, "victim", "c")
    env = env_of(out)
    for ref in ("a", "b"):
        assert env.get(visible_devices_var(uids[ref])) == devices[ref], out
    assert "ACCEL_VISIBLE_DEVICES" not in env, out
    assert sorted(devnodes_of(out)) == sorted(f"{node.ctr_devnode(d)} 1:3"
                                              for d in devices.values()), out


def test_corrupt_checkpoint_keeps_the_specs_of_running_pods(node, plugin, kubectl, ns):
    assert DEVICES == 2
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "victim", [container(node, "c", ("a", "b"))],
        {"a": {"resourceClaimTemplateName": "one-accel"},
         "b": {"resourceClaimTemplateName": "one-accel"}}))
    wait_running(kubectl, node, ns, "victim")
    claims = {ref: pod_claim(kubectl, ns, "victim", ref) for ref in ("a", "b")}
    uids = {ref: c["metadata"]["uid"] for ref, c in claims.items()}
    devices = {ref: allocated_devices(c)[0] for ref, c in claims.items()}
    seen(kubectl, node, ns, uids, devices)
    specs = {ref: node.cdi_spec(uid).read_bytes() for ref, uid in uids.items()}

    # One flipped bit in the checkpoint while the plugin is down, then a normal start.
    data_dir = Path(node.env["KUBELET_PLUGINS_DIR"]) / DRIVER
    checkpoint = data_dir / "checkpoint.json"
    stop_plugin(plugin)
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    start = len(plugin.log())
    plugin.start()
    log = plugin.log()[start:]
    moved = list(data_dir.glob("checkpoint.json.corrupt-*"))
    try:
        assert len(moved) == 1 and moved[0].read_bytes() == bytes(data), moved
        assert f"moved aside to {moved[0]}" in log, log[-4000:]
        assert "rebuilt 2 prepared claim(s) from their CDI specs" in log, log[-4000:]
        assert "0 orphaned CDI specs removed" in log, log[-4000:]
        for ref, uid in uids.items():
            assert node.cdi_spec(uid).read_bytes() == specs[ref], f"spec of claim {ref} changed"

        # Kill the container (its shell exits on SIGTERM): it restarts, with both devices.
        before = container_state(kubectl, ns, "victim")["c"]
        kubectl("exec", "-n", ns, "victim", "-c", "c", "--", "kill", "1")
        wait_for(lambda: container_state(kubectl, ns, "victim")["c"][1] > before[1], POD_TIMEOUT,
                 "the killed container to be restarted")
        wait_running(kubectl, node, ns, "victim")
        assert container_state(kubectl, ns, "victim")["c"][0] != before[0]
        seen(kubectl, node, ns, uids, devices)

        # kubelet's unprepare of the rebuilt claims removes their specs.
        kubectl("delete", "pod", "victim", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
                timeout=POD_TIMEOUT + 10)
        for ref, uid in uids.items():
            wait_for(lambda: not node.cdi_spec(uid).exists(), 30,
                     f"the CDI spec of claim {ref} ({uid}) removed by the unprepare")
    finally:
        for m in moved:
            m.unlink(missing_ok=True)
