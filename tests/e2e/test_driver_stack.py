"""KAR-0001 on the real node without hardware (docs/driver-stack.md): simulated NVIDIA-like
devices whose driver stack comes from a fixture driver root (--driver-root). A plain busybox pod
holding one runs the injected tools (accel-dra-smi from --smi-tool, and the driver root's
nvidia-smi, here accel-dra-smi under that name) and sees exactly the driver and runtime versions
the ResourceSlice publishes, with the stack's libraries at their soname paths; a container
without a claim sees none of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from e2e_lib import (DEVICE_CLASS, IMAGE, PluginHandle, allocated_devices, logs, pod,
                     pod_claim, template, wait_for, wait_running)

DRIVER_VERSION = "570.86.15"
RUNTIME_VERSION = "12.8.0"
LIB_DIR = "/usr/lib/x86_64-linux-gnu"


def smi_binary() -> Path:
    p = Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")) / "src/cmd/smi/accel-dra-smi"
    assert p.is_file(), f"accel-dra-smi not built at {p} (cmake --build build --target accel-dra-smi)"
    return p.resolve()


def make_driver_root(root: Path) -> None:
    """A fixture NVIDIA driver root: the two required libraries of the driver's version (files
    whose names carry it; busybox never loads them), an older libnvidia-cfg that must NOT be
    there (so only the matching one is), and nvidia-smi = accel-dra-smi under that name."""
    shutil.rmtree(root, ignore_errors=True)
    lib = root / LIB_DIR.lstrip("/")
    lib.mkdir(parents=True)
    for name in ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"):
        (lib / f"{name}.{DRIVER_VERSION}").write_text(f"fixture {name} {DRIVER_VERSION}\n")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(smi_binary(), root / "usr/bin/nvidia-smi")


# What each container prints: the tools' answers, the libraries and version files it can see.
SCRIPT = (
    "echo SMI $(accel-dra-smi --result 2>&1 | tr '\\n' ' '); "
    "q=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader,nounits 2>/dev/null); "
    "echo NVSMI_RC=$? NVSMI_DRIVER=$q; "
    "echo NVSMI_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\\([0-9][0-9.]*\\).*/\\1/p'); "
    f"for f in {LIB_DIR}/lib*; do [ -f \"$f\" ] && echo LIB $(basename $f); done; "
    "for f in /run/accel-dra/driver/*; do [ -f \"$f\" ] && echo FILE $(basename $f) $(cat $f); done; "
    "echo PROBE-DONE; trap 'exit 0' TERM; sleep 3600 & wait")


def ctr(name: str, claims: tuple[str, ...] = ()) -> dict:
    c = {"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", SCRIPT]}
    if claims:
        c["resources"] = {"claims": [{"name": x} for x in claims]}
    return c


def values(lines: list[str], key: str) -> list[str]:
    return [line.split(" ", 1)[1] if " " in line else "" for line in lines
            if line.split(" ", 1)[0] == key]


def field(lines: list[str], key: str) -> str:
    for line in lines:
        for tok in line.split():
            if tok.startswith(key + "="):
                return tok.split("=", 1)[1]
    return ""


@pytest.fixture(scope="module")
def stack_plugin(node, kubectl, tmp_path_factory):
    root = node.dir / "e2e-driver-root"
    make_driver_root(root)
    profile = tmp_path_factory.mktemp("stack") / "profile.yaml"
    profile.write_text(
        "devices:\n- count: 2\n"
        f"  driverVersion: {DRIVER_VERSION}\n  runtimeVersion: {RUNTIME_VERSION}\n"
        "  driverStack: nvidia\n  deviceNode: @RUN_DIR@/dev/accel-sim{index}\n")
    p = PluginHandle(node)
    p.start(restart=True, profile=profile,
            extra=(f"--driver-root={root}", f"--smi-tool={smi_binary()}"))
    kubectl("apply", "-f", "-", input=DEVICE_CLASS)
    wait_for(lambda: len(node.slice_devices()) == 2, 30, "2 NVIDIA-like simulated devices")
    yield p
    # The next test file's plugin fixture restarts the plugin with its default devices.


def test_busybox_sees_exactly_the_published_versions(node, stack_plugin, kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-gpu"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "kar", [ctr("with-claim", ("accel",)), ctr("without-claim")],
        {"accel": {"resourceClaimTemplateName": "one-gpu"}}))
    wait_running(kubectl, node, ns, "kar")
    dev = allocated_devices(pod_claim(kubectl, ns, "kar"))[0]
    published = [d for s in node.slices() for d in s["spec"]["devices"] if d["name"] == dev][0]
    driver = published["attributes"]["driverVersion"]["version"]
    runtime = published["attributes"]["runtimeVersion"]["version"]
    assert (driver, runtime) == (DRIVER_VERSION, RUNTIME_VERSION), published["attributes"]

    out = logs(kubectl, ns, "kar", "with-claim")
    # accel-dra-smi (--smi-tool) and the driver root's nvidia-smi report the published pair.
    assert values(out, "SMI") == [f"RESULT: DRIVER_VERSION={driver} RESULT: RUNTIME_VERSION={runtime}"], out
    assert field(out, "NVSMI_RC") == "0" and field(out, "NVSMI_DRIVER") == driver, out
    assert field(out, "NVSMI_CUDA") == runtime, out
    # The stack's libraries of the driver's version, at their soname paths (and nothing else).
    assert sorted(values(out, "LIB")) == ["libcuda.so.1", "libnvidia-ml.so.1",
                                          "libnvidia-ptxjitcompiler.so.1"], out
    assert sorted(values(out, "FILE")) == [f"driver-version {driver}",
                                           f"runtime-version {runtime}"], out

    # Without a claim: no tool, no library, no version file.
    out2 = logs(kubectl, ns, "kar", "without-claim")
    assert "DRIVER_VERSION" not in " ".join(values(out2, "SMI")), out2
    assert field(out2, "NVSMI_RC") != "0" and field(out2, "NVSMI_DRIVER") == "", out2
    assert field(out2, "NVSMI_CUDA") == "", out2
    assert values(out2, "LIB") == [] and values(out2, "FILE") == [], out2


def test_a_mismatched_stack_is_a_clear_prepare_error(node, stack_plugin, kubectl, ns,
                                                     tmp_path_factory):
    """The driver root's libraries of another version than the driver's: the devices are still
    published, but kubelet's prepare fails with the reason (the pod's event), and nothing of the
    stack reaches a container."""
    root = node.dir / "e2e-driver-root-old"
    make_driver_root(root)
    lib = root / LIB_DIR.lstrip("/")
    (lib / f"libcuda.so.{DRIVER_VERSION}").rename(lib / "libcuda.so.550.54.15")
    profile = node.dir / "sim-profile.yaml"  # the running plugin's (plugin-up.sh keeps it)
    kept = tmp_path_factory.mktemp("mismatch") / "profile.yaml"
    kept.write_text(profile.read_text())
    stack_plugin.start(restart=True, profile=kept,
                       extra=(f"--driver-root={root}", f"--smi-tool={smi_binary()}"))
    wait_for(lambda: len(node.slice_devices()) == 2, 30, "the 2 devices still published")
    kubectl("apply", "-n", ns, "-f", "-", input=template("one-gpu"))
    kubectl("apply", "-n", ns, "-f", "-", input=pod(
        "old", [ctr("with-claim", ("accel",))], {"accel": {"resourceClaimTemplateName": "one-gpu"}}))

    def failed():
        events = kubectl.json("get", "events", "-n", ns)["items"]
        return [e["message"] for e in events
                if e.get("reason") == "FailedPrepareDynamicResources"]
    messages = wait_for(failed, 60, "a FailedPrepareDynamicResources event")
    assert any("cannot be given its driver stack" in m and
               f"libcuda.so.550.54.15 is another version than the driver's {DRIVER_VERSION}" in m
               for m in messages), messages
    p = kubectl.json("get", "pod", "old", "-n", ns)
    assert p["status"].get("phase") == "Pending", p["status"]
    assert "libcuda.so.550.54.15" in stack_plugin.log().split("plugin-up.sh")[-1]
