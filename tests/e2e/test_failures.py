"""Failure reporting of the local-cluster scripts (each failing component is named and its log
tail shown) and teardown: after down.sh nothing of a run is left (process, cgroup, mount, socket).
Uses its own run dirs next to the e2e cluster's (<build>/e2e-fail-*), not the shared cluster."""

import os
import secrets
from pathlib import Path

import pytest

from e2e_lib import (LOCAL_CLUSTER, IMAGE, leftovers, plugin_binary, run, shim_sockets,
                     wait_for)

BUILD = Path(os.environ.get("ACCEL_DRA_BUILD_DIR", "build")).resolve()
BAD_GATE = "AccelDraNoSuchGate=true"


@pytest.fixture
def run_dir():
    d = BUILD / f"e2e-fail-{secrets.token_hex(3)}"
    yield d
    run([LOCAL_CLUSTER / "down.sh", "--dir", d, "--quiet"], timeout=120)


def up(d: Path, **env) -> "subprocess.CompletedProcess":  # noqa: F821
    return run([LOCAL_CLUSTER / "up.sh", "--dir", d, "--name", "e2e-fail"], env=env)


def assert_reported(p, component: str, log_name: str, needle: str):
    assert p.returncode != 0, p.stdout
    assert f"error: {component}" in p.stdout or f"while starting {component}" in p.stdout, p.stdout
    assert f"--- last" in p.stdout and f"logs/{log_name}.log ---" in p.stdout, p.stdout
    tail = p.stdout.split(f"logs/{log_name}.log ---", 1)[1]
    assert needle in tail, f"the log tail does not show the cause ({needle}):\n{p.stdout}"


def test_apiserver_failure_is_reported_and_cleaned_up(run_dir):
    p = up(run_dir, ACCEL_DRA_FEATURE_GATES=BAD_GATE)
    assert_reported(p, "kube-apiserver", "kube-apiserver", "AccelDraNoSuchGate")
    assert leftovers(run_dir) == []


def test_node_and_plugin_failures_then_clean_teardown(run_dir, tmp_path):
    p = up(run_dir)
    assert p.returncode == 0, p.stdout
    node_up = [LOCAL_CLUSTER / "node-up.sh", "--dir", run_dir]

    # kubelet with a broken flag (an unknown feature gate): named, with its log tail; the partial
    # node is torn down (node-up.sh can run again).
    p = run(node_up, env={"ACCEL_DRA_FEATURE_GATES": BAD_GATE})
    assert_reported(p, "kubelet", "kubelet", "AccelDraNoSuchGate")
    assert not (run_dir / "node.env").exists()

    # containerd that cannot listen (its socket path is a non-empty directory).
    sock = run_dir / "containerd" / "containerd.sock"
    (sock / "blocker").mkdir(parents=True)
    p = run(node_up)
    assert_reported(p, "containerd", "containerd", "containerd.sock")
    (sock / "blocker").rmdir()
    sock.rmdir()

    # A working node, then the plugin with a broken profile: named, with its log tail.
    p = run(node_up)
    assert p.returncode == 0, p.stdout
    bad = tmp_path / "bad-profile.yaml"
    bad.write_text("devices:\n- count: 1\n  noSuchKey: 1\n")
    plugin_up = [LOCAL_CLUSTER / "plugin-up.sh", "--dir", run_dir, "--plugin", plugin_binary()]
    p = run([*plugin_up, "--profile", bad])
    assert p.returncode != 0 and "error: accel-dra-plugin" in p.stdout, p.stdout
    assert "logs/plugin.log ---" in p.stdout and "noSuchKey" in p.stdout.split("logs/plugin.log ---")[1], p.stdout

    # A working plugin and a pod with a claim, so teardown has containers, mounts, sockets.
    p = run([*plugin_up, "--devices", "1"])
    assert p.returncode == 0, p.stdout
    kc = ["bash", "-c", '. "$0/env" && exec "$KUBECTL" --kubeconfig "$0/kubeconfig" "$@"', run_dir]
    manifest = f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: accel-dra.dev}}
spec: {{selectors: [{{cel: {{expression: 'device.driver == "accel-dra.dev"'}}}}]}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: t, namespace: default}}
spec: {{spec: {{devices: {{requests: [{{name: a, exactly: {{deviceClassName: accel-dra.dev}}}}]}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: default}}
spec:
  resourceClaims: [{{name: a, resourceClaimTemplateName: t}}]
  containers:
  - {{name: c, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, "3600"],
     resources: {{claims: [{{name: a}}]}}}}
"""
    import subprocess
    subprocess.run([*map(str, kc), "apply", "-f", "-"], input=manifest, text=True, check=True,
                   capture_output=True, timeout=60)
    wait_for(lambda: subprocess.run([*map(str, kc), "get", "pod", "p", "-o",
                                     "jsonpath={.status.phase}"], capture_output=True, text=True,
                                    timeout=30).stdout == "Running", 90, "pod p Running")
    shims = tuple(shim_sockets(run_dir))
    assert shims, "expected shim sockets of the running pod"

    # down.sh --keep stops everything but keeps the dir, so the check can look inside it too.
    p = run([LOCAL_CLUSTER / "down.sh", "--dir", run_dir, "--keep"], timeout=120)
    assert p.returncode == 0, p.stdout
    left = leftovers(run_dir, shims)
    assert left == [], "\n".join(left)
