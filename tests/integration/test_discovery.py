"""Hardware discovery through the real plugin (issue 5): fixture host trees under --host-root,
NVML through the mock libnvidia-ml.so.1 built by the tests, slices validated by the real
apiserver and allocated by the real scheduler with CEL on the discovered attributes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conftest import SOURCE_DIR, device_class
from plugin_proc import plugin_binary, run_plugin  # noqa: F401 - fixture

DRIVER = "accel-dra.dev"
HOSTS = SOURCE_DIR / "tests" / "fixtures" / "hosts"
PCI_IDS = HOSTS / "pci.ids"


def build_dir() -> Path:
    return Path(os.environ.get("ACCEL_DRA_BUILD_DIR", SOURCE_DIR / "build"))


def mock_nvml() -> Path:
    p = build_dir() / "tests" / "mocks" / "mock_nvml" / "libnvidia-ml.so.1"
    assert p.is_file(), f"mock NVML library not built at {p}"
    return p


def discover(host: str, *extra: str, env=None) -> tuple[list[dict], str]:
    p = subprocess.run([plugin_binary(), "discover", "-o", "json", "--node-name=n",
                        f"--host-root={HOSTS / host}", f"--pci-ids-file={PCI_IDS}", *extra],
                       capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})})
    assert p.returncode == 0, p.stderr
    items = json.loads(p.stdout)["items"]
    return [d for s in items for d in s["spec"]["devices"]], p.stderr


def attrs(d: dict) -> dict:
    return {k: next(iter(v.values())) for k, v in d.get("attributes", {}).items()}


def node_devices(kubectl, node):
    items = kubectl.json("get", "resourceslices",
                         f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]
    return [d for s in items for d in s["spec"]["devices"]]


def test_discover_fixture_hosts_without_nvml():
    devs, log = discover("h100x8", "--no-nvml")
    # Names from the PCI addresses, in bus order (the index attribute counts it).
    buses = ["18", "28", "38", "48", "98", "a8", "b8", "c8"]
    assert [d["name"] for d in devs] == [f"gpu-0000-{b}-00-0" for b in buses]
    assert [attrs(d)["index"] for d in devs] == list(range(8))
    a = attrs(devs[0])
    assert a["vendor"] == "nvidia" and a["driverVersion"] == "550.54.15"
    assert a["productName"] == "GH100 [H100 SXM5 80GB]"
    assert "uuid" not in a  # PCI alone knows no identity; none is invented
    devs, _ = discover("mixed", "--no-nvml")
    assert sorted(attrs(d)["vendor"] for d in devs) == ["amd", "intel", "nvidia"]
    devs, _ = discover("none", "--no-nvml")
    assert devs == []


def test_missing_nvml_falls_back_and_says_so_once(tmp_path):
    devs, log = discover("h100x8", f"--nvml-library={tmp_path}/libnvidia-ml.so.1")
    assert len(devs) == 8
    assert log.count("NVML not available") == 1, log


def test_nvml_enriches_pci_devices(tmp_path):
    cfg = tmp_path / "nvml.conf"
    lines = ["driver 550.54.15", "cuda 12040"]
    devs, _ = discover("h100x8", "--no-nvml")
    for i, d in enumerate(devs):
        bus = attrs(d)["pciBusID"]
        lines.append(f"gpu {i} GPU-{i:08d}-aaaa-bbbb-cccc-dddddddddddd {bus} {80 << 30} 9 0 9 "
                     f"NVIDIA H100 80GB HBM3")
    cfg.write_text("\n".join(lines) + "\n")
    devs, log = discover("h100x8", f"--nvml-library={mock_nvml()}",
                         env={"MOCK_NVML_CONFIG": str(cfg)})
    a = attrs(devs[3])
    assert a["uuid"] == "GPU-00000003-aaaa-bbbb-cccc-dddddddddddd", a
    assert a["cudaDriverVersion"] == "12.4.0" and a["computeCapability"] == "9.0.0", a
    # The runtime API version under the name every vendor uses (KAR-0001): CUDA's, from NVML.
    assert a["runtimeVersion"] == "12.4.0", a
    assert a["productName"] == "NVIDIA H100 80GB HBM3"
    assert devs[3]["capacity"]["memory"]["value"] == "80Gi"

    cfg.write_text("init_error 9\n")  # NVML present but the driver is not loaded
    devs, log = discover("h100x8", f"--nvml-library={mock_nvml()}",
                         env={"MOCK_NVML_CONFIG": str(cfg)})
    assert len(devs) == 8 and "uuid" not in attrs(devs[0])
    assert log.count("using PCI/sysfs data only") == 1, log


def test_fixture_host_slices_pass_validation_and_schedule_by_attributes(
        kubectl, make_node, run_plugin, apply, namespace, wait_for):
    node = make_node("disc-h100")
    run_plugin(node, f"--host-root={HOSTS / 'h100x8'}", f"--pci-ids-file={PCI_IDS}",
               "--no-nvml")
    devs = wait_for(lambda: len(node_devices(kubectl, node)) == 8 and node_devices(kubectl, node),
                    15, "8 discovered devices accepted by the apiserver")
    assert attrs(devs[0])["vendor"] == "nvidia"
    cls = f"{namespace}-nvidia-550"
    apply(device_class(cls, f"""
device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].vendor == "nvidia" &&
device.attributes["{DRIVER}"].driverVersion.compareTo(semver("550.0.0")) >= 0 &&
device.attributes["{DRIVER}"].numaNode == 1 &&
device.attributes["resource.kubernetes.io"].numaNode == 1 &&
device.attributes["resource.kubernetes.io"].pciBusID == device.attributes["{DRIVER}"].pciBusID
""") + f"""---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: c
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: {cls}
---
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  tolerations:
  - operator: Exists
  resourceClaims:
  - name: gpu
    resourceClaimName: c
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: gpu
""")
    claim = wait_for(lambda: (c := kubectl.json("get", "resourceclaim", "c", "-n", namespace))
                     .get("status", {}).get("allocation") and c, 30, "allocation")
    r = claim["status"]["allocation"]["devices"]["results"][0]
    numa = {d["name"]: attrs(d).get("numaNode") for d in devs}
    assert r["pool"] == node and numa[r["device"]] == 1, (r, numa)


def test_bad_host_still_publishes_what_is_known(kubectl, make_node, run_plugin, wait_for):
    node = make_node("disc-bad")
    p = run_plugin(node, f"--host-root={HOSTS / 'bad'}", f"--pci-ids-file={PCI_IDS}",
                   "--no-nvml", "--rediscover-interval=0.1")
    devs = wait_for(lambda: len(node_devices(kubectl, node)) == 4 and node_devices(kubectl, node),
                    15, "the 4 usable devices of the bad fixture")
    assert p.alive()
    # Names come from the PCI addresses (0000:01:00.0 ... 0000:04:00.0).
    gpu0, gpu1 = "gpu-0000-01-00-0", "gpu-0000-02-00-0"
    acc0, acc1 = "accelerator-0000-03-00-0", "accelerator-0000-04-00-0"
    assert {d["name"] for d in devs} == {gpu0, gpu1, acc0, acc1}
    by_name = {d["name"]: attrs(d) for d in devs}
    # A version that is not semver: the raw string only; a normalised one: both.
    assert "driverVersion" not in by_name[acc1], by_name[acc1]
    assert by_name[acc1]["driverVersionRaw"] == "custom build (unreleased)"
    assert by_name[acc0]["driverVersion"] == "1.2.0-beta"
    # Malformed numa_node and device id: published without them.
    assert "numaNode" not in by_name[gpu0] and "deviceID" not in by_name[gpu1]
    assert "resource.kubernetes.io/numaNode" not in by_name[gpu0], by_name[gpu0]
    assert by_name[gpu0]["resource.kubernetes.io/pciBusID"] == "0000:01:00.0"
    # Each problem is logged once, however often the plugin looks again.
    time.sleep(2)
    log = p.log()
    assert p.alive()
    for text in ("cannot be read as a semantic version", "unknown vendor 0x1e99",
                 'malformed numa_node "banana"', 'malformed device id "0xzzzz"',
                 'malformed vendor "not-a-number"'):
        assert log.count(text) == 1, f"{text!r} logged {log.count(text)} times:\n{log}"


def test_runtime_version_is_published_next_to_the_driver_version(
        kubectl, make_node, run_plugin, wait_for, tmp_path):
    """A simulated NVIDIA-like device with a fixture driver root (--driver-root): the apiserver
    accepts runtimeVersion next to driverVersion, and the stack's problem (none here) does not
    keep the device from being published."""
    root = tmp_path / "driver-root"
    lib = root / "usr" / "lib" / "x86_64-linux-gnu"
    lib.mkdir(parents=True)
    for name in ("libcuda.so", "libnvidia-ml.so"):
        (lib / f"{name}.570.86.15").write_text("fixture\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "nvidia-smi").write_text("#!/bin/sh\n")
    profile = tmp_path / "profile.yaml"
    profile.write_text("devices:\n- count: 2\n  driverVersion: 570.86.15\n"
                       "  runtimeVersion: 12.8.0\n  driverStack: nvidia\n"
                       "- count: 1\n  type: accel\n")
    node = make_node("disc-runtime")
    run_plugin(node, f"--simulate-profile={profile}", f"--driver-root={root}")
    devs = wait_for(lambda: len(node_devices(kubectl, node)) == 3 and node_devices(kubectl, node),
                    15, "3 simulated devices accepted by the apiserver")
    by_name = {d["name"]: d["attributes"] for d in devs}
    for name in ("gpu-0", "gpu-1"):
        assert by_name[name]["runtimeVersion"] == {"version": "12.8.0"}, by_name[name]
        assert by_name[name]["driverVersion"] == {"version": "570.86.15"}, by_name[name]
    # Every simulated profile sets one (default 1.0.0).
    assert by_name["accel-0"]["runtimeVersion"] == {"version": "1.0.0"}, by_name["accel-0"]
