"""Operating accel-dra-plugin (docs/operations.md), against the real apiserver and scheduler with
the kubelet stand-in (accel-dra-kubelet-sim):

* metrics: after N prepares through the plugin's real gRPC server a scrape of /metrics shows those
  counts, the errors by reason and the histogram buckets; apiserver, checkpoint, slice and device
  metrics are there;
* /readyz turns ready only after kubelet's registration and the first publish;
* --log-format=json: one JSON object per line; prepare/unprepare lines carry the claim;
* the admission webhook (`accel-dra-plugin webhook`, TLS, a ValidatingWebhookConfiguration with
  clientConfig.url on 127.0.0.1): an invalid accel-dra.dev DeviceConfig is rejected at creation
  with prepare's message, a valid one admitted; with the webhook down the documented
  failurePolicy (Ignore) admits, and Fail would reject.

The claims come from test_kubelet_plugin.py's module fixture `bed` (allocated by kube-scheduler).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import kubelet_sim as sim
from conftest import KEEP, wait_for
from kubelet_sim import DRIVER, EXIT_OK, EXIT_REJECTED, PluginDirs
from plugin_proc import PluginProcess, run_plugin  # noqa: F401 - fixture
from test_kubelet_plugin import bed, kp  # noqa: F401 - fixtures

N_PREPARES = 5


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _sample(scrape: str, name: str, labels: str = "") -> float | None:
    """The value of one sample (`name{labels}`, labels in the exposition's sorted order)."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in scrape.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


# ---- metrics and readiness ---------------------------------------------------------------------

def test_readyz_only_after_registration_and_first_publish(bed, kp):
    port = sim.free_port()
    p = kp(f"--metrics-port={port}", wait=False)
    # Before the first publish and registration: not ready, and it says why.
    status, body = wait_for(lambda: _get(port, "/readyz"), 15, "the metrics endpoint")
    assert status == 503 and "kubelet has not registered the plugin" in body, body
    assert _get(port, "/healthz")[0] == 200
    kp.dirs.wait_serving(p)
    # Published (the slices exist, so the first reconcile is in sync) but not registered.
    wait_for(lambda: _sample(_get(port, "/metrics")[1], "accel_dra_resourceslices_published") == 1,
             15, "the first publish")
    status, body = _get(port, "/readyz")
    assert status == 503, body
    assert body.strip() == "not ready: kubelet has not registered the plugin", body
    assert _sample(_get(port, "/metrics")[1], "accel_dra_kubelet_registered") == 0
    # kubelet registers the plugin (GetInfo, then NotifyRegistrationStatus(true)).
    r = sim.register(kp.dirs.registrar)
    assert r.rc == EXIT_OK, str(r)
    assert _get(port, "/readyz") == (200, "ok\n")
    assert _sample(_get(port, "/metrics")[1], "accel_dra_kubelet_registered") == 1
    # A kubelet socket that disappears makes /healthz fail (liveness restarts the pod).
    kp.dirs.dra_socket().unlink()
    status, body = _get(port, "/healthz")
    assert status == 503 and "dra.sock is gone" in body, body
    assert p.alive()


def test_metrics_after_n_prepares(bed, kp):
    port = sim.free_port()
    kp(f"--metrics-port={port}")
    socket = kp.dirs.dra_socket()
    for _ in range(N_PREPARES):  # the first prepares, the others are answered from the checkpoint
        r = sim.prepare(socket, bed.ref("plain"))
        assert r.rc == EXIT_OK and r.claim_error(bed.uid("plain")) == "", str(r)
    r = sim.prepare(socket, bed.ref("bad-strategy"))
    assert r.rc == EXIT_REJECTED and "Turbo" in r.claim_error(bed.uid("bad-strategy")), str(r)
    r = sim.prepare(socket, bed.ref("other-node"))
    assert r.rc == EXIT_REJECTED, str(r)
    r = sim.unprepare(socket, bed.ref("plain"))
    assert r.rc == EXIT_OK, str(r)

    status, m = _get(port, "/metrics")
    assert status == 200
    total = N_PREPARES + 2
    assert _sample(m, "accel_dra_prepare_requests_total") == total, m
    assert _sample(m, "accel_dra_prepare_errors_total", 'reason="invalid_config"') == 1, m
    assert _sample(m, "accel_dra_prepare_errors_total", 'reason="allocation_mismatch"') == 1, m
    assert _sample(m, "accel_dra_prepare_duration_seconds_count") == total
    assert _sample(m, "accel_dra_prepare_duration_seconds_bucket", 'le="+Inf"') == total
    buckets = [float(v) for v in re.findall(
        r'^accel_dra_prepare_duration_seconds_bucket\{le="[0-9.]+"\} (\S+)$', m, re.M)]
    assert len(buckets) == 14 and buckets == sorted(buckets), buckets
    assert _sample(m, "accel_dra_unprepare_requests_total") == 1
    assert _sample(m, "accel_dra_unprepare_duration_seconds_count") == 1
    # Every prepare read its claim from the apiserver (the first and the failed ones) ...
    assert _sample(m, "accel_dra_apiserver_request_duration_seconds_count",
                   'code="200",verb="GET"') >= 3, m
    # ... and wrote the checkpoint (PrepareStarted, PrepareCompleted, the unprepare).
    assert _sample(m, "accel_dra_checkpoint_write_duration_seconds_count") >= 3, m
    assert _sample(m, "accel_dra_published_devices", 'health="Healthy",type="gpu"') == 8, m
    assert re.search(r'^accel_dra_build_info\{driver="accel-dra.dev",version="[^"]+"\} 1$', m,
                     re.M), m


def test_slice_write_metrics(bed, run_plugin, tmp_path, kubectl):
    """A node of its own: the first publish creates its slice; the counter says so."""
    node = f"ops-{secrets.token_hex(3)}"
    port = sim.free_port()
    p = run_plugin(node, "--simulate=2", f"--metrics-port={port}", "--delete-slices-on-exit")
    try:
        wait_for(lambda: _sample(_get(port, "/metrics")[1], "accel_dra_resourceslice_writes_total",
                                 'operation="create"') == 1, 20, "the slice create")
        m = _get(port, "/metrics")[1]
        assert _sample(m, "accel_dra_resourceslice_write_errors_total",
                       'operation="create"') is None, m
        assert _sample(m, "accel_dra_apiserver_request_duration_seconds_count",
                       'code="201",verb="POST"') >= 1, m
    finally:
        assert p.stop() == 0


# ---- logs --------------------------------------------------------------------------------------

def test_json_logs_carry_the_claim(bed, kp):
    p = kp("--log-format=json", "-v=1")
    socket = kp.dirs.dra_socket()
    ns, name, uid = bed.ref("plain")
    assert sim.prepare(socket, bed.ref("plain")).rc == EXIT_OK
    assert sim.prepare(socket, bed.ref("bad-strategy")).rc == EXIT_REJECTED
    assert sim.unprepare(socket, bed.ref("plain")).rc == EXIT_OK
    p.stop()
    lines = [ln for ln in p.log().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert all({"ts", "level", "msg"} <= r.keys() for r in records), lines
    claim_lines = [r for r in records
                   if re.match(r"(prepared|unprepared|prepare of|unprepare of) ", r["msg"])]
    by_msg = {r["msg"].split(" ResourceClaim")[0]: r for r in claim_lines}
    assert {"prepared", "unprepared", "prepare of"} <= by_msg.keys(), claim_lines
    for key in ("prepared", "unprepared"):
        assert by_msg[key]["claim"] == f"{ns}/{name}" and by_msg[key]["claimUID"] == uid
    bad_ns, bad_name, bad_uid = bed.ref("bad-strategy")
    assert by_msg["prepare of"]["claim"] == f"{bad_ns}/{bad_name}"
    assert by_msg["prepare of"]["claimUID"] == bad_uid
    assert by_msg["prepare of"]["level"] == "warning"
    for r in claim_lines:  # every prepare/unprepare line names a claim
        assert r.get("claim") and r.get("claimUID"), r


# ---- admission webhook -------------------------------------------------------------------------

def _certs(d: Path) -> tuple[Path, Path, str]:
    """A CA and a serving certificate for 127.0.0.1 made with openssl: (cert, key, CA base64)."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d, timeout=60)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=accel-dra-webhook",
        "-keyout", "tls.key", "-out", "tls.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    ssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", "ext.cnf", "-out", "tls.crt")
    return d / "tls.crt", d / "tls.key", base64.b64encode((d / "ca.crt").read_bytes()).decode()


def _webhook_config(name: str, port: int, ca: str, ns: str, policy: str) -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: resourceclaims.{DRIVER}
  clientConfig:
    url: https://127.0.0.1:{port}/validate
    caBundle: {ca}
  rules:
  - apiGroups: ["resource.k8s.io"]
    apiVersions: ["v1", "v1beta1", "v1beta2"]
    operations: ["CREATE", "UPDATE"]
    resources: ["resourceclaims", "resourceclaimtemplates"]
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: {policy}
  timeoutSeconds: 5
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {ns}
"""


def _claim(version: str, name: str, interval: str, kind: str = "ResourceClaim") -> str:
    request = ("exactly:\n          deviceClassName: c" if version != "v1beta1"
               else "deviceClassName: c")
    spec = f"""devices:
      requests:
      - name: gpu
        {request}
      config:
      - requests: ["gpu"]
        opaque:
          driver: {DRIVER}
          parameters:
            apiVersion: accel-dra.dev/v1alpha1
            kind: DeviceConfig
            sharing:
              strategy: TimeSlicing
              timeSlicing:
                interval: {interval}"""
    if kind == "ResourceClaimTemplate":
        spec = "spec:\n    " + spec.replace("\n", "\n  ")
    return f"""
apiVersion: resource.k8s.io/{version}
kind: {kind}
metadata:
  name: {name}
spec:
  {spec}
"""


def _create(kubectl, ns: str, manifest: str, dry_run: bool = True):
    args = ["create", "-n", ns, "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return kubectl(*args, input=manifest, check=False)


@pytest.fixture
def webhook_bed(bed, kubectl, tmp_path):
    """The webhook served by accel-dra-plugin on 127.0.0.1 and its configuration, scoped to a
    namespace of its own."""
    ns = f"wh-{secrets.token_hex(3)}"
    name = f"accel-dra-test-{ns}"
    cert, key, ca = _certs(tmp_path)
    port = sim.free_port()
    proc = PluginProcess(["webhook", "--webhook-address=127.0.0.1", f"--webhook-port={port}",
                          f"--tls-cert-file={cert}", f"--tls-private-key-file={key}"],
                         tmp_path / "webhook.log")
    kubectl("create", "namespace", ns)
    kubectl("apply", "-f", "-", input=_webhook_config(name, port, ca, ns, "Ignore"))
    served = [v for v in kubectl("api-versions").stdout.split() if v.startswith("resource.k8s.io/")]
    try:
        yield {"ns": ns, "name": name, "port": port, "ca": ca, "proc": proc,
               "versions": [v.split("/")[1] for v in served]}
    finally:
        proc.stop()
        if not KEEP:
            kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found",
                    check=False)
            kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def test_webhook_rejects_invalid_config_with_the_prepare_message(webhook_bed, bed, kubectl, kp):
    ns = webhook_bed["ns"]
    # The apiserver picks the configuration up within a moment.
    bad = wait_for(lambda: (lambda p: p if p.returncode != 0 else None)(
        _create(kubectl, ns, _claim("v1", "bad", "VeryLong"))), 30, "the webhook to be called")
    assert 'admission webhook "resourceclaims.accel-dra.dev" denied the request' in bad.stderr
    assert ('invalid config for driver accel-dra.dev in spec.devices.config[0] (requests: gpu): '
            'sharing.timeSlicing.interval: unknown value "VeryLong"') in bad.stderr, bad.stderr

    # The same parser message prepare gives for an invalid config (bed's bad-strategy claim).
    kp()
    r = sim.prepare(kp.dirs.dra_socket(), bed.ref("bad-strategy"))
    prepare_detail = r.claim_error(bed.uid("bad-strategy")).split("requests: all): ", 1)[1]
    turbo = _claim("v1", "turbo", "Default").replace(
        "strategy: TimeSlicing\n              timeSlicing:\n                interval: Default",
        "strategy: Turbo")
    p = _create(kubectl, ns, turbo.replace('      - requests: ["gpu"]\n        opaque:',
                                           "      - opaque:"))
    assert p.returncode != 0
    assert ("spec.devices.config[0] (requests: all): " + prepare_detail) in p.stderr, \
        (prepare_detail, p.stderr)

    # Every served version, claims and templates.
    versions = [v for v in ("v1", "v1beta1", "v1beta2") if v in webhook_bed["versions"]]
    assert "v1" in versions
    for version in versions:
        for kind in ("ResourceClaim", "ResourceClaimTemplate"):
            p = _create(kubectl, ns, _claim(version, f"bad-{version}", "VeryLong", kind))
            assert p.returncode != 0 and 'unknown value "VeryLong"' in p.stderr, \
                (version, kind, p.stderr)
            p = _create(kubectl, ns, _claim(version, f"good-{version}", "Long", kind))
            assert p.returncode == 0, (version, kind, p.stderr)
    # A valid claim is really created.
    assert _create(kubectl, ns, _claim("v1", "good", "Long"), dry_run=False).returncode == 0
    assert "denied" in webhook_bed["proc"].log() and "VeryLong" in webhook_bed["proc"].log()


def test_webhook_down_follows_failure_policy(webhook_bed, kubectl):
    ns = webhook_bed["ns"]
    wait_for(lambda: _create(kubectl, ns, _claim("v1", "bad", "VeryLong")).returncode != 0, 30,
             "the webhook to be called")
    assert webhook_bed["proc"].stop() == 0
    # failurePolicy Ignore (the documented default): the claim is admitted; prepare still
    # reports the invalid config when a pod uses it.
    t0 = time.monotonic()
    p = _create(kubectl, ns, _claim("v1", "bad", "VeryLong"), dry_run=False)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 10
    # failurePolicy Fail: nothing this webhook matches can be created while it is down.
    kubectl("apply", "-f", "-", input=_webhook_config(
        webhook_bed["name"], webhook_bed["port"], webhook_bed["ca"], ns, "Fail"))
    p = wait_for(lambda: (lambda q: q if q.returncode != 0 else None)(
        _create(kubectl, ns, _claim("v1", "good", "Long"))), 30, "failurePolicy Fail to apply")
    assert 'failed calling webhook "resourceclaims.accel-dra.dev"' in p.stderr, p.stderr
