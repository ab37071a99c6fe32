"""The demo scenario on the real node, then accel-dra-probe right after it (issue 15).

hack/demo-scenario.sh is what hack/demo.sh runs once its cluster is up: it helm-installs accel-dra
from the image (CTest image_build, imported into the node's containerd) with the simulated devices
of demo/devices.yaml, applies demo/*.yaml and prints what each container saw, then deletes the demo
pods and runs the probe. Checked here: the node publishes one driver version, the demo pods are
gone and every device is free, the probe passes (no check failed; gpu_sharing is partial on these
simulated devices), and its evidence opens with the test environment and says "simulated".

The plugin plugin-up.sh started for the other tests is stopped first; the release and the demo
namespace are removed afterwards (the next test file's fixture starts plugin-up.sh's plugin)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from e2e_lib import DRIVER, run, wait_for
from test_helm import ARCHIVE, NODE_LABEL, REPO, TAG, Helm, stop_test_plugin

SOURCE = Path(os.environ.get("ACCEL_DRA_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")).resolve()
PROBE = BUILD / "src/cmd/probe/accel-dra-probe"
RELEASE = NAMESPACE = "accel-dra"  # as hack/demo-scenario.sh installs it
DEMO_NS = "accel-demo"
# The image in ARCHIVE (CTest image_build tags it localhost/accel-dra:e2e; a run by hand may point
# ACCEL_DRA_IMAGE_ARCHIVE at the demo's archive and this at localhost/accel-dra:demo).
IMAGE_REF = os.environ.get("ACCEL_DRA_IMAGE_REF") or f"{REPO}:{TAG}"


@pytest.fixture(scope="module")
def scenario(node, kubectl):
    assert ARCHIVE.is_file(), f"{ARCHIVE} is missing: the CTest image_build makes it (hack/image.sh)"
    assert PROBE.is_file(), f"{PROBE} is missing (cmake --build build --target accel-dra-probe)"
    ctr = [run(["bash", "-c", f'. {node.dir}/env && echo "$CTR"']).stdout.strip(),
           "--address", node.env["CONTAINERD_ADDRESS"], "-n", "k8s.io"]
    p = run([*ctr, "images", "import", "--no-unpack=false", ARCHIVE], timeout=300)
    assert p.returncode == 0, p.stdout
    stop_test_plugin(node)
    for dc in (DRIVER, f"gpu.{DRIVER}", f"accelerator.{DRIVER}"):  # the chart brings its own
        kubectl("delete", "deviceclass", dc, "--ignore-not-found")
    t0 = time.monotonic()
    p = run([SOURCE / "hack/demo-scenario.sh", "--dir", node.dir, "--image", IMAGE_REF,
             "--probe", PROBE], timeout=780)
    print(p.stdout)
    print(f"MEASURED: demo scenario and probe {time.monotonic() - t0:.1f} s (exit {p.returncode})")
    yield p
    Helm(node)("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s",
               timeout=180)
    kubectl("delete", "namespace", DEMO_NS, "--ignore-not-found", "--wait=true", "--timeout=120s",
            check=False, timeout=180)
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
    kubectl("label", "node", node.name, f"{NODE_LABEL}-", check=False)


def test_demo_scenario_then_probe_passes(scenario, node, kubectl):
    out = scenario.stdout
    assert scenario.returncode == 0, out[-6000:]
    # What the demo showed (the scenario ran), with one driver version for the node.
    assert "container app saw:" in out and "time-slicing configured" in out, out[-6000:]
    assert f"Driver versions published on node {node.name}: 1.2.0 (one" in out, out[-6000:]
    versions = {d["attributes"]["driverVersion"]["version"]
                for s in node.slices() for d in s["spec"].get("devices", [])}
    assert versions == {"1.2.0"}, versions
    # The demo left its devices free: no pod, no allocated claim in its namespace.
    assert kubectl.json("get", "pods", "-n", DEMO_NS)["items"] == []
    assert kubectl.json("get", "resourceclaims", "-n", DEMO_NS)["items"] == []
    # The probe passed (gpu_sharing partial: the simulated time slice is advisory).
    assert "result: PARTIAL (3 passed, 1 partial, 0 failed, 0 skipped)" in out, out[-6000:]
    evidence = node.dir / "evidence"
    assert f"== Evidence of accel-dra-probe (exit 0: 0 = no check failed) in {evidence}/:" in out
    for f in ("evidence.md", "report.json", "junit.xml", "results.json", "e2e.log",
              "PRODUCT.yaml"):
        assert f"   {evidence}/{f}" in out, f
        assert (evidence / f).is_file(), f
    md = (evidence / "evidence.md").read_text()
    assert md.startswith("# accel-dra-probe evidence\n\n## Test environment\n\n"
                         "**Devices: simulated.**"), md[:600]
    env_section = md[:md.index("\n## Run\n")]
    # Both demo models, one driver version, all simulated.
    for model in ("Simulated Accelerator 80GB", "Simulated Accelerator 40GB"):
        rows = [x for x in env_section.splitlines() if f"| {model} |" in x]
        assert len(rows) == 1 and "| 1.2.0 |" in rows[0] and rows[0].endswith(
            "| **simulated** |"), env_section
    report = json.loads((evidence / "report.json").read_text())
    assert report["result"] == "partial" and report["environment"]["simulated"] is True
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {"dra_support": "pass", "driver_runtime_management": "pass",
                        "gpu_sharing": "partial", "secure_accelerator_access": "pass"}, statuses
    wait_for(lambda: kubectl.json("get", "namespaces", "-l", "accel-dra.dev/probe")["items"] == [],
             60, "the probe's namespace to be gone")
