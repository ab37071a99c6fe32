"""accel-dra-probe against the real node with simulated devices: it passes every check, fails the
right check with a message naming the cause (plugin stopped, isolation broken by
--testing-expose-all-devices, published driver version different from what containers see), and
leaves nothing behind after success, failure and SIGINT.

The plugin is restarted here with other profiles and flags; the module fixture restores the plugin
other e2e tests expect (e2e_lib.DEVICES default devices) afterwards."""

from __future__ import annotations

import os
import signal
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


def test_probe_passes_every_check_and_writes_evidence(cluster, kubectl, probe_plugin, tmp_path):
    out = tmp_path / "out"
    p, elapsed = run_probe(cluster, out=out, timeout=60)
    assert p.returncode == 0, p.stdout
    for check in ("dra_support", "driver_runtime_management", "gpu_sharing",
                  "secure_accelerator_access"):
        assert "PASS  " in check_line(p.stdout, check), p.stdout
    assert "result: PASS (4 passed, 0 failed, 0 skipped)" in p.stdout
    print(f"MEASURED: full probe run {elapsed:.1f} s")

    # Progress lines as it went.
    assert "created namespace e2e-probe-" in p.stdout and "waiting for pod" in p.stdout

    md = (out / "evidence.md").read_text()
    for check in ("dra_support", "driver_runtime_management", "gpu_sharing",
                  "secure_accelerator_access"):
        assert f"\n## {check}\n" in md, md[:2000]
    assert "### What was run" in md and "### What was seen" in md
    assert 'device.driver == "accel-dra.dev"' in md  # the CEL used
    assert "driverVersion.compareTo(semver(" in md
    assert "kind: ResourceClaimTemplate" in md and "kind: Pod" in md
    assert "TimeSlicing" in md and "stays Pending" in md
    assert "no privileged mode, no hostPath volumes used" in md
    assert "| Result | **PASS** |" in md

    junit = (out / "junit.xml").read_text()
    assert 'tests="4" failures="0"' in junit and "<failure" not in junit, junit
    assert junit.count("<testcase ") == 4

    minor = "v" + ".".join(cluster.env["K8S_VERSION"].split(".")[:2])  # e.g. v1.37
    report = __import__("json").loads((out / "report.json").read_text())
    assert report["passed"] is True and report["kubernetesVersion"].startswith(minor)

    product = yaml.safe_load((out / "PRODUCT.yaml").read_text())
    assert product["metadata"]["kubernetesVersion"] == minor
    entries = {e["id"]: e for cat in product["spec"].values() for e in cat}
    assert set(entries) == {"dra_support", "driver_runtime_management", "gpu_sharing",
                            "secure_accelerator_access"}
    assert entries["dra_support"]["level"] == "MUST"
    assert entries["driver_runtime_management"]["level"] == "SHOULD"
    assert entries["secure_accelerator_access"]["level"] == "MUST"
    for e in entries.values():
        assert e["status"] == "Implemented", e
        assert e["evidence"][0] == f"evidence.md#{e['id']}" and "junit.xml" in e["evidence"]
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
