"""What accel-dra-probe relies on, on the real node: device nodes at their /dev path, the inspect
tool (--inspect-tool) and the simulated driver's version file bound read-only into containers that
hold a claim (and only those), and the test-only --testing-expose-all-devices breach."""

import subprocess
from pathlib import Path

from e2e_lib import (DEVICES, DRIVER_VERSION_PATH, INSPECT_PATH, allocated_devices, container,
                     devnodes_of, driver_version_of, env_of, logs, pod, pod_claim, probe, template,
                     visible_devices, wait_for, wait_running)

STUB_OUTPUT = "accel-dra-inspect stub says hello"


def static_stub(node) -> Path:
    """A tiny static executable standing in for the real inspect tool (any image can run it)."""
    d = node.dir / "e2e-inspect"
    d.mkdir(exist_ok=True)
    src, exe = d / "stub.c", d / "accel-dra-inspect"
    src.write_text('#include <stdio.h>\nint main(void) { puts("%s"); return 0; }\n' % STUB_OUTPUT)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_claim_pod(kubectl, node, ns, name: str, containers: list) -> list[str]:
    """Runs pod `name` whose containers use a one-device claim from a template; returns the
    output of its first container."""
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-accel"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        name, containers, {"accel": {"resourceClaimTemplateName": "one-accel"}}))
    wait_running(kubectl, node, ns, name)
    return logs(kubectl, ns, name, containers[0]["name"])


def slice_versions(node) -> dict[str, str]:
    return {d["name"]: d["attributes"].get("driverVersion", {}).get("version")
            for s in node.slices() for d in s["spec"].get("devices", [])}


def test_inspect_tool_is_mounted_read_only_into_claim_containers_only(node, plugin, kubectl, ns):
    stub = static_stub(node)
    plugin.start(restart=True, inspect_tool=stub)
    try:
        run_it = (f"{INSPECT_PATH}; echo INSPECT-RC=$?; "
                  f"(echo x > {INSPECT_PATH}) 2>/dev/null && echo INSPECT-WRITABLE || "
                  f"echo INSPECT-READONLY; ")
        with_claim = container(node, "with-claim", ("accel",))
        with_claim["command"] = ["sh", "-c", run_it + probe(node)]
        out = run_claim_pod(kubectl, node, ns, "p", [with_claim, container(node, "without-claim")])
        assert STUB_OUTPUT in out and "INSPECT-RC=0" in out, out
        assert "INSPECT-READONLY" in out and "INSPECT-PRESENT" in out, out
        out2 = logs(kubectl, ns, "p", "without-claim")
        assert "INSPECT-PRESENT" not in out2, out2
        # The spec names the host file; no hostPath volume or privilege in the pod.
        uid = pod_claim(kubectl, ns, "p")["metadata"]["uid"]
        assert str(stub) in node.cdi_spec(uid).read_text()
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
        plugin.start(restart=True)


def test_driver_version_file_is_published_and_seen_in_containers(node, plugin, kubectl, ns):
    vf = node.driver_version_file
    assert vf.read_text().strip() == "1.0.0"
    assert set(slice_versions(node).values()) == {"1.0.0"}
    try:
        # A new simulated driver version: re-read and published without a restart.
        vf.write_text("1.0.1\n")
        wait_for(lambda: set(slice_versions(node).values()) == {"1.0.1"}, 30,
                 "driverVersion 1.0.1 published after the version file changed")
        out = run_claim_pod(kubectl, node, ns, "v", [container(node, "c", ("accel",))])
        dev = allocated_devices(pod_claim(kubectl, ns, "v"))[0]
        assert driver_version_of(out) == slice_versions(node)[dev] == "1.0.1", out
        # Read-only in the container.
        r = kubectl("exec", "-n", ns, "v", "-c", "c", "--", "sh", "-c",
                    f"echo 9.9.9 > {DRIVER_VERSION_PATH}", check=False)
        assert r.returncode != 0, r
        assert vf.read_text().strip() == "1.0.1"
    finally:
        vf.write_text("1.0.0\n")
        wait_for(lambda: set(slice_versions(node).values()) == {"1.0.0"}, 30,
                 "driverVersion 1.0.0 published again")


def test_testing_expose_all_devices_breaks_isolation_on_purpose(node, plugin, kubectl, ns):
    assert DEVICES == 2
    start = len(plugin.log())
    plugin.start(restart=True, extra=("--testing-expose-all-devices",))
    try:
        assert "TESTING ONLY" in plugin.log()[start:]
        out = run_claim_pod(kubectl, node, ns, "leaky", [container(node, "c", ("accel",))])
        devices = allocated_devices(pod_claim(kubectl, ns, "leaky"))
        assert len(devices) == 1
        everything = ["gpu-0", "gpu-1"]
        assert sorted(visible_devices(env_of(out)).split(",")) == everything, out
        assert sorted(devnodes_of(out)) == [f"{node.ctr_devnode(d)} 1:3" for d in everything], out
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
        plugin.start(restart=True)
