"""accel-dra-probe against the real node with simulated devices: it passes every check (gpu_sharing
partial: the simulated time slice is advisory) with evidence that opens with the test environment
and says "simulated", in its own and the upstream suite's layout; it fails the
right check with a message naming the cause (plugin stopped, isolation broken by
--testing-expose-all-devices, published driver version different from what containers see), and
leaves nothing behind after success, failure and SIGINT.

The plugin is restarted here with other profiles and flags; the module fixture restores the plugin
other e2e tests expect (e2e_lib.DEVICES default devices) afterwards."""

from __future__ import annotations

import json
import os
import signal
import xml.etree.ElementTree as ET
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from e2e_lib import DEVICES, IMAGE, LOCAL_CLUSTER, PluginHandle, run, wait_for

BUILD = Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")).resolve()
PROBE = Path(os.environ.get("ACCEL_DRA_PROBE") or BUILD / "src/cmd/probe/accel-dra-probe")
INSPECT = BUILD / "src/cmd/inspect/accel-dra-inspect"
LABEL = "accel-dra.dev/probe"
# A full run takes ~30-60 s on this node; a failing check is bounded by its --timeout.
RUN_TIMEOUT = 240


def probe_cmd(cluster, *args: str, out: Path | None = None, timeout: int = 45) -> list[str]:
    assert PROBE.is_file(), f"{PROBE} is missing (cmake --build build --target accel-dra-probe)"
    cmd = [str(PROBE), "run", "--kubeconfig", str(cluster.dir / "kubeconfig"), "--image", IMAGE,
           "--image-pull-policy", "Never", "--timeout", str(timeout), "--namespace", "e2e-probe"]
    if out is not None:
        cmd += ["--output", str(out)]
    return cmd + list(args)


def run_probe(cluster, *args: str, out: Path | None = None, timeout: int = 45):
    start = time.monotonic()
    p = subprocess.run(probe_cmd(cluster, *args, out=out, timeout=timeout), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - start
    print(f"accel-dra-probe {' '.join(args)}: exit {p.returncode} in {elapsed:.1f} s\n{p.stdout}")
    return p, elapsed


def check_line(stdout: str, check: str) -> str:
    lines = [x for x in stdout.splitlines() if x.strip().split("  ", 1)[-1].startswith(check + " (")]
    assert lines, f"no summary line for {check}:\n{stdout}"
    return lines[-1]


def leftovers(kubectl) -> list[str]:
    """Objects of any probe run that still exist."""
    out = []
    for ns in kubectl.json("get", "namespaces")["items"]:
        name = ns["metadata"]["name"]
        if name.startswith("e2e-probe-") or LABEL in ns["metadata"].get("labels", {}):
            out.append(f"namespace {name} ({ns['status'].get('phase')})")
    for kind in ("deviceclasses", "resourceclaims", "resourceclaimtemplates", "pods"):
        args = ["get", kind, "-l", LABEL]
        if kind != "deviceclasses":
            args.append("--all-namespaces")
        for item in kubectl.json(*args)["items"]:
            out.append(f"{kind} {item['metadata'].get('namespace', '')}/{item['metadata']['name']}")
    return out


def start_plugin(node, profile: str | None = None, extra: tuple[str, ...] = ()):
    """Restarts the plugin with `profile` (YAML text, @RUN_DIR@ allowed) or DEVICES default
    devices, the inspect tool, and extra plugin flags."""
    cmd = [LOCAL_CLUSTER / "plugin-up.sh", "--dir", node.dir, "--plugin",
           os.environ.get("ACCEL_DRA_PLUGIN") or BUILD / "src/cmd/plugin/accel-dra-plugin",
           "--restart", "--inspect-tool", INSPECT]
    if profile is not None:
        f = node.dir / "probe-profile.yaml"
        f.write_text(profile)
        cmd += ["--profile", f]
    else:
        cmd += ["--devices", str(DEVICES)]
    if extra:
        cmd += ["--", *extra]
    p = run(cmd, timeout=120)
    assert p.returncode == 0, f"plugin-up.sh failed (exit {p.returncode}):\n{p.stdout}"


@pytest.fixture(scope="module")
def probe_plugin(node, plugin, kubectl):
    """The plugin with the inspect tool and DEVICES devices; restored afterwards for the other
    e2e tests (plugin fixture state: DEVICES default devices, all slices published)."""
    start_plugin(node)
    wait_for(lambda: len(node.slice_devices()) == DEVICES, 30, "the plugin's slices")
    yield node
    PluginHandle(node).start(restart=True)
    wait_for(lambda: len(node.slice_devices()) == DEVICES, 60,
             f"{DEVICES} devices of node {node.name} in ResourceSlices after restoring the plugin")


def check_environment_section(md: str, cluster, node_name: str) -> None:
    """evidence.md opens with the test environment of the real node and says "simulated"."""
    assert md.startswith("# accel-dra-probe evidence\n\n## Test environment\n\n"
                         "**Devices: simulated.**"), md[:600]
    env_section = md[:md.index("\n## Run\n")]
    version = "v" + cluster.env["K8S_VERSION"]
    assert f"| Kubernetes server | {version}" in env_section, env_section
    node_row = next(x for x in env_section.splitlines() if x.startswith(f"| Node `{node_name}` |"))
    assert f"kubelet {version}" in node_row and "kernel " in node_row, node_row
    assert "container runtime containerd://" in node_row, node_row
    device_rows = [x for x in env_section.splitlines() if x.startswith(f"| `{node_name}` |")]
    assert device_rows and all(x.endswith("| **simulated** |") for x in device_rows), env_section


def check_upstream_layout(out: Path) -> None:
    """results.json (test2json events), junit.xml (gotestsum's fields), e2e.log (go test -v)."""
    events = [json.loads(line) for line in (out / "results.json").read_text().splitlines()]
    assert events[0]["Action"] == "start" and events[-1]["Action"] == "pass", events[-1]
    assert all(e["Package"] == "accel-dra.dev/probe" for e in events)
    verdicts = {e["Test"]: e["Action"] for e in events
                if "Test" in e and e["Action"] in ("pass", "fail", "skip")}
    assert verdicts == {"TestAccelDraDraSupport": "pass",
                        "TestAccelDraDriverRuntimeManagement": "pass",
                        "TestAccelDraGpuSharing": "skip",  # partial
                        "TestAccelDraSecureAcceleratorAccess": "pass"}, verdicts
    log = (out / "e2e.log").read_text()
    assert "RESULT: SIMULATED_DEVICES=true" in log and "RESULT: STATUS=PARTIAL" in log, log[:2000]
    assert "--- PASS: TestAccelDraSecureAcceleratorAccess" in log
    root = ET.parse(out / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite.get("name") == "accel-dra.dev/probe"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["simulated"] == "true" and "Node " in props["environment"], props
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["TestAccelDraGpuSharing"].find("skipped").get("message").startswith("partial: ")


def test_probe_passes_every_check_and_writes_evidence(cluster, kubectl, node, probe_plugin,
                                                      tmp_path):
    out = tmp_path / "out"
    p, elapsed = run_probe(cluster, out=out, timeout=60)
    assert p.returncode == 0, p.stdout
    for check in ("dra_support", "driver_runtime_management", "secure_accelerator_access"):
        assert "PASS  " in check_line(p.stdout, check), p.stdout
    # The simulated devices' time slice is advisory (TIMESLICE_ENFORCED=false): partial, not pass.
    line = check_line(p.stdout, "gpu_sharing")
    assert "PARTIAL  " in line and "TIMESLICE_ENFORCED=false" in line, line
    assert "result: PARTIAL (3 passed, 1 partial, 0 failed, 0 skipped)" in p.stdout
    print(f"MEASURED: full probe run {elapsed:.1f} s")

    # Progress lines as it went, the environment first.
    assert "created namespace e2e-probe-" in p.stdout and "waiting for pod" in p.stdout
    assert "environment: Devices: simulated" in p.stdout, p.stdout

    md = (out / "evidence.md").read_text()
    check_environment_section(md, cluster, node.name)
    for check in ("dra_support", "driver_runtime_management", "gpu_sharing",
                  "secure_accelerator_access"):
        assert f"\n## {check}\n" in md, md[:2000]
    assert "### What was run" in md and "### What was seen" in md
    assert 'device.driver == "accel-dra.dev"' in md  # the CEL used
    assert "driverVersion.compareTo(semver(" in md
    assert "kind: ResourceClaimTemplate" in md and "kind: Pod" in md
    assert "TimeSlicing" in md and "stays Pending" in md
    assert "no privileged mode, no hostPath volumes used" in md
    assert "| Result | **PARTIAL** |" in md
    # Raw outputs a reviewer can re-run, beside each verdict.
    assert md.count("### Raw outputs") == 4
    assert "`kubectl get resourceslices --field-selector spec.driver=accel-dra.dev -o json`" in md
    assert "Command: `kubectl logs -n e2e-probe-" in md and "RESULT: DONE=true" in md
    assert "Command: `kubectl get resourceclaim time-sliced -n e2e-probe-" in md
    assert "--only gpu_sharing`" in md

    junit = (out / "junit.xml").read_text()
    assert 'tests="4" failures="0"' in junit and "<failure" not in junit, junit
    assert junit.count("<testcase ") == 4
    check_upstream_layout(out)

    minor = "v" + ".".join(cluster.env["K8S_VERSION"].split(".")[:2])  # e.g. v1.37
    report = json.loads((out / "report.json").read_text())
    assert report["result"] == "partial" and report["passed"] is False
    assert report["kubernetesVersion"].startswith(minor)
    assert report["environment"]["simulated"] is True

    product = yaml.safe_load((out / "PRODUCT.yaml").read_text())
    assert product["metadata"]["kubernetesVersion"] == minor
    entries = {e["id"]: e for cat in product["spec"].values() for e in cat}
    expected = {"driver_runtime_management", "gpu_sharing", "secure_accelerator_access"}
    if tuple(int(x) for x in minor[1:].split(".")) <= (1, 35):
        expected.add("dra_support")  # left the checklist in 1.36
        assert entries["dra_support"]["level"] == "MUST"
    assert set(entries) == expected
    assert entries["driver_runtime_management"]["level"] == "SHOULD"
    assert entries["gpu_sharing"]["level"] == "SHOULD"
    assert entries["secure_accelerator_access"]["level"] == "MUST"
    for e in entries.values():
        want = "Partially Implemented" if e["id"] == "gpu_sharing" else "Implemented"
        assert e["status"] == want, e
        assert e["evidence"][0] == f"evidence.md#{e['id']}"
        assert e["evidence"][1].startswith("junit.xml#TestAccelDra"), e
        assert "on simulated devices" in e["notes"], e
    assert "secure_accelerator_access" in product["spec"]["security"][0]["id"]

    assert leftovers(kubectl) == []


def test_probe_fails_when_the_plugin_is_stopped(cluster, kubectl, node, probe_plugin):
    pid = PluginHandle(node).pid()
    assert pid
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the plugin to stop")
    try:
        p, _ = run_probe(cluster, "--only", "dra_support", timeout=20)
        assert p.returncode == 1, p.stdout
        line = check_line(p.stdout, "dra_support")
        assert "FAIL  " in line, line
        # Either the slices are gone, or the kubelet cannot reach the driver to prepare the claim.
        assert ("no ResourceSlices of driver accel-dra.dev" in line
                or "could not prepare its claim" in line
                or "no complete ResourceSlice pool" in line), line
        assert leftovers(kubectl) == []
    finally:
        start_plugin(node)


def test_probe_fails_when_claims_expose_all_devices(cluster, kubectl, node, probe_plugin):
    start_plugin(node, extra=("--testing-expose-all-devices",))
    try:
        p, _ = run_probe(cluster, "--only", "secure_accelerator_access", timeout=30)
        assert p.returncode == 1, p.stdout
        line = check_line(p.stdout, "secure_accelerator_access")
        assert "FAIL  " in line and "extra device" in line, line
        assert "gpu-0" in line or "gpu-1" in line or "accel-sim" in line, line
        assert leftovers(kubectl) == []
    finally:
        start_plugin(node)


def test_probe_fails_when_published_driver_version_differs(cluster, kubectl, node, probe_plugin):
    (node.dir / "probe-driver-version").write_text("2.0.0\n")
    # An explicit driverVersion beats the file's content for what the devices publish.
    profile = ("driverVersionFile: @RUN_DIR@/probe-driver-version\n"
               f"devices:\n- count: {DEVICES}\n  driverVersion: 1.0.0\n"
               "  deviceNode: @RUN_DIR@/dev/accel-sim{index}\n")
    start_plugin(node, profile=profile)
    try:
        p, _ = run_probe(cluster, "--only", "driver_runtime_management", timeout=30)
        assert p.returncode == 1, p.stdout
        line = check_line(p.stdout, "driver_runtime_management")
        assert "FAIL  " in line, line
        assert "publishes driverVersion 1.0.0" in line and "sees driver version 2.0.0" in line, line
        assert leftovers(kubectl) == []
    finally:
        start_plugin(node)


def test_probe_cleans_up_after_sigint(cluster, kubectl, probe_plugin):
    proc = subprocess.Popen(probe_cmd(cluster, timeout=60), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "waiting for pod" in line:  # objects exist and a pod is starting
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(seen) + rest
    print(out)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert "cleanup: deleted namespace e2e-probe-" in out, out
    assert leftovers(kubectl) == []
