"""--device-taints on a cluster where the DRADeviceTaints feature gate is off (alpha and off by
default up to Kubernetes 1.35, beta in 1.36, GA in 1.37 but still switchable): the apiserver drops
the taints. Runs on its own control plane with the gate off (CTest fixture "cluster-taints-off");
test_device_taints.py shows the taints through the real scheduler on the default cluster."""

from __future__ import annotations

import time

from host_tree import HostCopy
from test_hotplug import plugin_args
from plugin_proc import run_plugin  # noqa: F401 - fixture


def test_device_taints_without_the_feature_gate_are_reported_once(
        cluster, kubectl, make_node, run_plugin, tmp_path, wait_for):
    """This cluster runs with DRADeviceTaints off: the apiserver drops the field. The plugin says
    so once and does not rewrite its slices over and over."""
    assert "DRADeviceTaints=false" in cluster.env.get("FEATURE_GATES", ""), cluster.env
    host = HostCopy("h100x8", tmp_path / "host")
    node = make_node("taints-nogate")
    p = run_plugin(node, *plugin_args(host, "--device-taints"))
    wait_for(lambda: "published pool" in p.log(), 20, "first publish")
    host.hide("dev/nvidia3")
    wait_for(lambda: "dropped the device taints" in p.log(), 10, "the feature-gate error")
    time.sleep(2)
    published = p.log().count("published pool")
    host.show("dev/nvidia3")
    host.hide("dev/nvidia4")
    time.sleep(2)
    log = p.log()
    assert log.count("dropped the device taints") == 1, log[-3000:]
    # At most one more publish per real change, no rewrite loop.
    assert log.count("published pool") <= published + 2, log[-3000:]
    items = kubectl.json("get", "resourceslices", f"--field-selector=spec.nodeName={node}")["items"]
    assert all("taints" not in d for s in items for d in s["spec"]["devices"])
