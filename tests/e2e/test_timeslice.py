"""TimeSlicing on a device whose time slice nvidia-smi controls, on the real node: the plugin runs
with a simulated profile whose devices say `timeSliceControl: nvidia-smi` and a fake `nvidia-smi`
first on its PATH that records its arguments. A pod with a TimeSlicing claim makes the plugin set
the interval; deleting the pod (the last user) resets it."""

import json
import os

from e2e_lib import (DRIVER, POD_TIMEOUT, DEVICES, allocated_devices, container, env_key, env_of,
                     logs, pod, pod_claim, wait_for, wait_running)


def timesliced_template(name: str, interval: str) -> str:
    return json.dumps({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {
            "requests": [{"name": "accel", "exactly": {"deviceClassName": DRIVER}}],
            "config": [{"requests": ["accel"], "opaque": {"driver": DRIVER, "parameters": {
                "apiVersion": "accel-dra.dev/v1alpha1", "kind": "DeviceConfig",
                "sharing": {"strategy": "TimeSlicing", "timeSlicing": {"interval": interval}}}}}],
        }}}})


def test_timeslicing_is_applied_with_nvidia_smi_and_reset_after_the_last_claim(
        node, plugin, kubectl, ns):
    smi_dir = node.dir / "e2e-fake-nvidia-smi"
    smi_dir.mkdir(exist_ok=True)
    calls = smi_dir / "calls"
    calls.write_text("")
    smi = smi_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\necho "Set compute policy"\n')
    smi.chmod(0o755)
    profile = smi_dir / "profile.yaml"
    profile.write_text(
        "driverVersionFile: @RUN_DIR@/sim-driver/version\n"
        f"devices:\n- count: {DEVICES}\n  deviceNode: \"@RUN_DIR@/dev/accel-sim{{index}}\"\n"
        "  timeSliceControl: nvidia-smi\n")
    plugin.start(restart=True, profile=profile,
                 env={"PATH": f"{smi_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    try:
        kubectl("apply", "-n", ns, "-f", "-", input=timesliced_template("ts-long", "Long"))
        kubectl("apply", "-n", ns, "-f", "-", input=pod(
            "ts", [container(node, "c", ("accel",))],
            {"accel": {"resourceClaimTemplateName": "ts-long"}}))
        wait_running(kubectl, node, ns, "ts")
        dev = allocated_devices(pod_claim(kubectl, ns, "ts"))[0]
        uuid = [d for s in node.slices() for d in s["spec"]["devices"]
                if d["name"] == dev][0]["attributes"]["uuid"]["string"]
        assert calls.read_text().splitlines() == [f"compute-policy -i {uuid} --set-timeslice 3"], \
            calls.read_text()
        env = env_of(logs(kubectl, ns, "ts", "c"))
        assert env.get(f"{env_key(dev)}_TIMESLICE_INTERVAL") == "Long", env
        assert env.get(f"{env_key(dev)}_TIMESLICE_ENFORCED") == "true", env

        # The last (only) claim on the device goes: the default is restored.
        kubectl("delete", "pod", "ts", "-n", ns, "--wait=true", f"--timeout={POD_TIMEOUT}s",
                timeout=POD_TIMEOUT + 10)
        wait_for(lambda: calls.read_text().splitlines()[-1:] ==
                 [f"compute-policy -i {uuid} --set-timeslice 0"], 30,
                 f"nvidia-smi called to reset the time slice of {uuid}; calls: {calls}")
        assert len(calls.read_text().splitlines()) == 2, calls.read_text()
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
        plugin.start(restart=True)
