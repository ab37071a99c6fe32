"""The ResourceSlice publisher against a real kube-apiserver (issue 2)."""

from __future__ import annotations

import signal
import time

from plugin_proc import run_plugin  # noqa: F401 - fixture

DRIVER = "accel-dra.dev"


def node_slices(kubectl, node):
    out = kubectl.json("get", "resourceslices",
                       f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")
    return out["items"]


def pool_state(slices):
    """(generation, resourceSliceCount, device names) when the pool is complete, else None."""
    if not slices:
        return None
    gens = {s["spec"]["pool"]["generation"] for s in slices}
    counts = {s["spec"]["pool"]["resourceSliceCount"] for s in slices}
    if len(gens) != 1 or len(counts) != 1 or counts != {len(slices)}:
        return None
    names = sorted(d["name"] for s in slices for d in s["spec"].get("devices", []))
    return gens.pop(), counts.pop(), names


def test_slices_pass_validation_and_show_in_kubectl(kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-basic")
    p = run_plugin(node, "--simulate=4")
    state = wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "4 published devices")
    gen, count, names = state
    assert count == 1 and names == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    s = node_slices(kubectl, node)[0]
    assert s["metadata"]["name"].startswith(f"{node}-{DRIVER}-")  # apiserver-generated name
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert s["spec"]["pool"]["name"] == node
    dev = s["spec"]["devices"][0]
    assert dev["attributes"]["vendor"] == {"string": "simulated"}
    assert dev["attributes"]["driverVersion"] == {"version": "1.0.0"}
    assert dev["capacity"]["memory"]["value"] == "80Gi"
    table = kubectl("get", "resourceslices", f"--field-selector=spec.nodeName={node}").stdout
    assert node in table and DRIVER in table, table
    assert "first ResourceSlices published" in wait_for(
        lambda: "first ResourceSlices published" in p.log() and p.log(), 5, "start-up log line")


def test_no_writes_while_nothing_changes(kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-idle")
    run_plugin(node, "--simulate=8", "--rediscover-interval=0.1")
    wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "published pool")
    before = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in node_slices(kubectl, node)}
    time.sleep(3)
    after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in node_slices(kubectl, node)}
    assert before == after, "slices were rewritten although nothing changed"


def test_profile_change_updates_slices_within_2s(kubectl, make_node, run_plugin, wait_for, tmp_path):
    node = make_node("pub-change")
    profile = tmp_path / "profile.yaml"
    profile.write_text("devices:\n- count: 2\n  driverVersion: 1.0.0\n")
    run_plugin(node, f"--simulate-profile={profile}")
    gen1, _, names = wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "first pool")
    assert names == ["gpu-0", "gpu-1"]

    profile.write_text("devices:\n- count: 3\n  driverVersion: 1.1.0\n- count: 1\n  type: npu\n")
    t0 = time.monotonic()
    state = wait_for(lambda: (s := pool_state(node_slices(kubectl, node))) and len(s[2]) == 4 and s,
                     2, "the changed device set to be published")
    elapsed = time.monotonic() - t0
    gen2, _, names = state
    assert names == ["gpu-0", "gpu-1", "gpu-2", "npu-0"]
    assert gen2 > gen1
    versions = {d["attributes"]["driverVersion"]["version"]
                for s in node_slices(kubectl, node) for d in s["spec"]["devices"]}
    assert versions == {"1.1.0", "1.0.0"}  # npu group keeps the default
    print(f"slices updated {elapsed * 1000:.0f} ms after the profile changed")


def test_removed_attribute_is_unpublished(kubectl, make_node, run_plugin, wait_for, tmp_path):
    """An attribute that goes away is removed from the slice too (the diff compares a device's
    attribute and capacity names exactly, not as a subset)."""
    node = make_node("pub-remove")
    profile = tmp_path / "profile.yaml"
    profile.write_text('devices:\n- count: 1\n  driverVersion: "560.35.03"\n')
    run_plugin(node, f"--simulate-profile={profile}")

    def attributes():
        devs = [d for s in node_slices(kubectl, node) for d in s["spec"].get("devices", [])]
        return devs[0]["attributes"] if len(devs) == 1 else None
    a = wait_for(lambda: (a := attributes()) and "driverVersionRaw" in a and a, 10, "Raw published")
    assert a["driverVersion"] == {"version": "560.35.3"}
    profile.write_text('devices:\n- count: 1\n  driverVersion: "560.35.3"\n')
    a = wait_for(lambda: (a := attributes()) and "driverVersionRaw" not in a and a, 5,
                 "driverVersionRaw removed")
    assert a["driverVersion"] == {"version": "560.35.3"}


def test_deleted_slices_are_republished(kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-delete")
    run_plugin(node, "--simulate=3")
    gen1, _, _ = wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "published pool")
    # What kubelet does when it starts: delete every slice of the node.
    kubectl("delete", "resourceslices", f"--field-selector=spec.nodeName={node}")
    gen2, _, names = wait_for(
        lambda: (s := pool_state(node_slices(kubectl, node))) and s[0] > gen1 and s, 5,
        "republication with a higher generation")
    assert names == ["gpu-0", "gpu-1", "gpu-2"]


def test_300_devices_three_slices_one_pool(kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-300")
    run_plugin(node, "--simulate=300")
    gen, count, names = wait_for(lambda: pool_state(node_slices(kubectl, node)), 15, "300 devices")
    slices = node_slices(kubectl, node)
    assert count == 3 and len(slices) == 3
    assert sorted(len(s["spec"]["devices"]) for s in slices) == [44, 128, 128]
    assert len(set(names)) == 300
    assert {s["spec"]["pool"]["name"] for s in slices} == {node}


def test_delete_slices_on_exit(kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-exit")
    p = run_plugin(node, "--simulate=2", "--delete-slices-on-exit")
    wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "published pool")
    assert p.stop(signal.SIGTERM) == 0
    assert node_slices(kubectl, node) == []

    # Without the flag, slices stay (kubelet or the next plugin instance owns them).
    p = run_plugin(node, "--simulate=2")
    wait_for(lambda: pool_state(node_slices(kubectl, node)), 10, "published pool")
    assert p.stop(signal.SIGINT) == 0
    assert len(node_slices(kubectl, node)) == 1


def test_forbidden_is_reported_and_retried(cluster, kubectl, make_node, run_plugin, wait_for):
    node = make_node("pub-forbidden")
    p = run_plugin(node, "--simulate=1", kubeconfig=cluster.kubeconfig_unprivileged)
    log = wait_for(lambda: "forbidden" in p.log().lower() and p.log(), 10, "a 403 in the log")
    assert "403" in log and "resourceslices" in log, log[-2000:]
    assert p.alive(), "a forbidden apiserver answer must not stop the plugin"
