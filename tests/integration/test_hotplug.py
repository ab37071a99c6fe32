"""Hotplug and device health through the real plugin (issue 5): the plugin runs on a writable copy
of a fixture host; devices are added and removed, device nodes hidden and drivers unbound in that
tree; the inotify device-event source (the udev monitor's test seam) makes the plugin rescan at
once, and the ResourceSlice in the real apiserver follows. Device health goes to kubelet's
NodeWatchResources stream, v1 (kubelet 1.37) and v1alpha1 (1.34-1.36), read with
accel-dra-kubelet-sim watch-health."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import kubelet_sim as sim
from host_tree import PCI_IDS, HostCopy, SliceWatch, attr, slice_devices
from plugin_proc import run_plugin  # noqa: F401 - fixture

# The issue asks for the slice to follow a hotplug within 1 s. The test waits up to DEADLINE,
# prints the measured figure and fails above LIMIT (the requirement plus slack for a loaded
# CI machine; ACCEL_DRA_HOTPLUG_LIMIT overrides it).
DEADLINE = 10.0
LIMIT = float(os.environ.get("ACCEL_DRA_HOTPLUG_LIMIT", "1.5"))
# Device names come from PCI addresses: the h100x8 host's GPUs at 0000:28:00.0, 0000:38:00.0,
# 0000:48:00.0 (/dev/nvidia3) and 0000:98:00.0 (index 1 to 4).
GPU1, GPU2, GPU3, GPU4 = (f"gpu-0000-{bus}-00-0" for bus in ("28", "38", "48", "98"))


def plugin_args(host: HostCopy, *extra: str) -> list[str]:
    # Long polling intervals: what the test shows is the event path, not a periodic rescan.
    return [f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}", "--no-nvml",
            "--rediscover-interval=30", "--rescan-interval=300", *extra]


def bus_ids(obj: dict) -> list[str]:
    return sorted(attr(d, "pciBusID") for d in slice_devices(obj))


def test_hotplug_add_and_remove_updates_the_slice(cluster, kubectl, make_node, run_plugin,
                                                  tmp_path, wait_for):
    host = HostCopy("h100x8", tmp_path / "host")
    node = make_node("hotplug")
    watch = SliceWatch(cluster, node)
    try:
        p = run_plugin(node, *plugin_args(host, "--device-events=inotify"))
        t = watch.wait(lambda o: len(slice_devices(o)) == 8, 0, 20, "8 devices")
        wait_for(lambda: "device events: inotify" in p.log(), 5, "the inotify event source")
        time.sleep(0.5)  # let the first publish settle
        figures = {}

        t0 = time.monotonic()
        host.remove_device("0000:c8:00.0")
        t = watch.wait(lambda o: len(slice_devices(o)) == 7, t0, DEADLINE,
                       "7 devices after removing 0000:c8:00.0")
        figures["remove"] = t - t0
        time.sleep(0.5)

        t0 = time.monotonic()
        host.add_device_like("0000:b8:00.0", "0000:d8:00.0")
        t = watch.wait(lambda o: "0000:d8:00.0" in bus_ids(o), t0, DEADLINE,
                       "the hot-added 0000:d8:00.0")
        figures["add"] = t - t0
        time.sleep(0.5)

        figures = {k: round(v * 1000) for k, v in figures.items()}
        print(f"\nhotplug: file change -> ResourceSlice event in the apiserver: "
              f"remove {figures['remove']} ms, add {figures['add']} ms (limit {LIMIT * 1000:.0f} ms)")
        for what, ms in figures.items():
            assert ms <= LIMIT * 1000, (
                f"slice updated {ms} ms after the {what} (limit {LIMIT} s); plugin log:\n"
                f"{p.log()[-3000:]}")
        assert p.alive()
    finally:
        watch.close()


class HealthStream:
    """accel-dra-kubelet-sim watch-health on the plugin's DRA socket, in the background: every
    NodeWatchResources message (dra-health version `api`) as {device: health}, and the last
    message's {device: message}."""

    def __init__(self, socket_path, api: str = "v1"):
        self.messages: list[dict[str, str]] = []
        self.texts: dict[str, str] = {}
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sim.sim_binary(), "watch-health", "--socket", str(socket_path), "--count", "0",
             "--timeout-ms", "120000", "--api", api],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self._cond:
                self.messages.append({d["device_name"]: d["health"] for d in msg["devices"]})
                self.texts = {d["device_name"]: d.get("message", "") for d in msg["devices"]}
                self._cond.notify_all()

    def wait(self, pred, timeout: float, what: str) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.messages and pred(self.messages[-1]):
                    return self.messages[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"health stream: no message with {what} in {timeout}s; "
                                         f"last: {self.messages[-1:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_health_stream_reports_a_device_going_unhealthy_and_back(make_node, run_plugin, tmp_path):
    """Both dra-health versions at once (kubelet 1.37 watches v1, older kubelets v1alpha1): each
    stream sees the device node vanish (Unhealthy, with the reason as message) and come back."""
    host = HostCopy("h100x8", tmp_path / "host")
    dirs = sim.PluginDirs.under(tmp_path / "k")
    node = make_node("health")
    p = run_plugin(node, *dirs.args(), *plugin_args(host))
    dirs.wait_serving(p)
    reg = sim.register(dirs.registrar)
    assert reg.out["supported_versions"] == [
        "v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth",
        "v1alpha1.DRAResourceHealth"], reg

    streams = {api: HealthStream(dirs.dra_socket(), api) for api in ("v1", "v1alpha1")}
    try:
        for stream in streams.values():
            first = stream.wait(lambda m: len(m) == 8, 10, "8 devices")
            assert set(first.values()) == {"Healthy"}, first

        t0 = time.monotonic()
        host.hide("dev/nvidia3")  # GPU3's device node disappears
        for api, stream in streams.items():
            stream.wait(lambda m: m.get(GPU3) == "Unhealthy", 10, f"{GPU3} Unhealthy on {api}")
            assert stream.messages[-1][GPU2] == "Healthy"
            assert stream.texts[GPU3] == "device node /dev/nvidia3 is missing", stream.texts
        down = time.monotonic() - t0
        host.show("dev/nvidia3")
        for api, stream in streams.items():
            stream.wait(lambda m: m.get(GPU3) == "Healthy", 10, f"{GPU3} Healthy again on {api}")

        stream = streams["v1"]
        link = host.device_dir("0000:28:00.0") / "driver"  # GPU1's driver link
        target = os.readlink(link)
        link.unlink()  # unbind
        stream.wait(lambda m: m.get(GPU1) == "Unhealthy", 10, f"{GPU1} Unhealthy (unbound)")
        os.symlink(target, link)
        stream.wait(lambda m: set(m.values()) == {"Healthy"}, 10, "all Healthy after rebind")
        print(f"\nhealth: device node removed -> Unhealthy on both streams in {down * 1000:.0f} ms")
        assert f"device {GPU3} is unhealthy: device node /dev/nvidia3 is missing" in p.log()
        assert "PCI driver nvidia unbound" in p.log()
    finally:
        for stream in streams.values():
            stream.close()


def test_health_stream_reports_nvml_errors(make_node, run_plugin, tmp_path):
    """With NVML (the mock library), a GPU NVML can no longer get a handle for (GPU_IS_LOST) is
    Unhealthy, and Healthy again when NVML sees it again. NVML is not a file in the host tree, so
    this test relies on the periodic full rescan (--rescan-interval=1)."""
    from test_discovery import mock_nvml
    host = HostCopy("h100x8", tmp_path / "host")
    cfg = tmp_path / "nvml.conf"
    gpus = [f"gpu {i} GPU-{i:08d}-aaaa-bbbb-cccc-dddddddddddd {bus} {80 << 30} 9 0 9 NVIDIA H100"
            for i, bus in enumerate(sorted(os.listdir(host.root / "proc/driver/nvidia/gpus")))]
    cfg.write_text("\n".join(gpus) + "\n")
    dirs = sim.PluginDirs.under(tmp_path / "k")
    node = make_node("health-nvml")
    p = run_plugin(node, *dirs.args(), f"--host-root={host.root}", f"--pci-ids-file={PCI_IDS}",
                   f"--nvml-library={mock_nvml()}", "--rediscover-interval=30",
                   "--rescan-interval=1", env={"MOCK_NVML_CONFIG": str(cfg)})
    dirs.wait_serving(p)
    stream = HealthStream(dirs.dra_socket())
    try:
        stream.wait(lambda m: len(m) == 8 and set(m.values()) == {"Healthy"}, 10, "8 Healthy")
        cfg.write_text("\n".join(gpus) + "\nfail nvmlDeviceGetHandleByIndex_v2 15 4\n")
        m = stream.wait(lambda m: m.get(GPU4) == "Unhealthy", 10, f"{GPU4} Unhealthy")
        assert [d for d, h in m.items() if h != "Healthy"] == [GPU4], m
        cfg.write_text("\n".join(gpus) + "\n")
        stream.wait(lambda m: set(m.values()) == {"Healthy"}, 10, "all Healthy again")
        assert f"device {GPU4} is unhealthy: NVML cannot use this GPU" in p.log()
    finally:
        stream.close()
