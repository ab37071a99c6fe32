"""Fixtures for accel-dra's end-to-end tests: a real node (kubelet 1.37 + containerd 2.x, started by
hack/local-cluster/node-up.sh) on the local control plane, and accel-dra-plugin with simulated
devices that have real device nodes (hack/local-cluster/plugin-up.sh). Every test checks what the
containers printed (`kubectl logs`).

Through CTest (starts a cluster + node in <build>/e2e-cluster, runs the tests, stops it; root):
    cd build && ctest -L e2e --output-on-failure

By hand, from the repository root:
    hack/local-cluster/up.sh --dir /tmp/e2e && hack/local-cluster/node-up.sh --dir /tmp/e2e
    ACCEL_DRA_CLUSTER_DIR=/tmp/e2e ACCEL_DRA_BUILD_DIR=build python3 -m pytest -q tests/e2e
    hack/local-cluster/down.sh --dir /tmp/e2e

Reuses the integration fixtures (cluster, kubectl, wait_for) from tests/integration/conftest.py.
Fixtures here: node (Node), plugin (PluginHandle: the plugin with DEVICES simulated devices),
ns (a namespace whose pods are deleted gracefully afterwards), and helpers in e2e_lib.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "integration"))

# The integration conftest under another module name (both files are called conftest.py).
_spec = importlib.util.spec_from_file_location("accel_dra_integration_conftest",
                                               HERE.parent / "integration" / "conftest.py")
_it = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _it
_spec.loader.exec_module(_it)

cluster = _it.cluster  # noqa: F401 - fixtures re-exported for the e2e tests
kubectl = _it.kubectl
wait_for_fixture = _it.wait_for_fixture

import e2e_lib  # noqa: E402

DEVICES = e2e_lib.DEVICES


@pytest.fixture(scope="session")
def node(cluster):
    return e2e_lib.Node.load(cluster)


@pytest.fixture(scope="session")
def plugin(node, kubectl):
    """The plugin, (re)started once per test file with DEVICES simulated devices; DeviceClass
    accel-dra.dev applied. It stays up afterwards (down.sh stops it)."""
    p = e2e_lib.PluginHandle(node)
    p.start(restart=True)
    kubectl("apply", "-f", "-", input=e2e_lib.DEVICE_CLASS)
    e2e_lib.wait_for(lambda: len(node.slice_devices()) == DEVICES, 30,
                     f"{DEVICES} devices of node {node.name} in ResourceSlices")
    return p


@pytest.fixture
def ns(node, kubectl, request):
    """A fresh namespace; afterwards its pods are deleted gracefully (so kubelet unprepares their
    claims before the next test) and the namespace is removed."""
    name = _it._unique("e2e-", request)
    kubectl("create", "namespace", name)
    e2e_lib.wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", name,
                                     check=False).returncode == 0,
                     30, f"the default ServiceAccount in namespace {name}")
    yield name
    if _it.KEEP:
        return
    kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False,
            timeout=90)
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
