"""The Helm chart deploy/helm/accel-dra against the real apiserver: what `helm template` renders
with the default and with non-default values (tests/deploy/values-full.yaml) is accepted by a
server-side dry run, and the chart's ValidatingAdmissionPolicy keeps the plugin's service account
to its own node's ResourceSlices, with a token bound to a pod on that node (TokenRequest with
boundObjectRef; the apiserver puts the node's name into the token: ServiceAccountTokenPodNodeInfo)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import SOURCE_DIR, wait_for

CHART = SOURCE_DIR / "deploy" / "helm" / "accel-dra"
VALUES_FULL = SOURCE_DIR / "tests" / "deploy" / "values-full.yaml"


def helm() -> str:
    out = subprocess.run(["bash", "-c", '. "$1/hack/lib.sh" && printf %s "$HELM"', "_",
                          str(SOURCE_DIR)], check=True, capture_output=True, text=True).stdout
    assert Path(out).is_file(), f"{out} is missing: hack/local-cluster/build.sh helm"
    return out


def template(namespace: str, *args: str, release: str = "accel-dra") -> str:
    p = subprocess.run([helm(), "template", release, str(CHART), "--namespace", namespace, *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"helm template failed: {p.stderr}"
    return p.stdout


def kinds(rendered: str) -> list[str]:
    return sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)


@pytest.mark.parametrize("values", [None, VALUES_FULL], ids=["default", "full"])
def test_server_side_dry_run(kubectl, namespace, values):
    rendered = template(namespace, *(["-f", str(values)] if values else []))
    # DeviceClasses: every device, then one per type (gpu, accelerator; values-full adds fpga).
    expected = ["ClusterRole", "ClusterRoleBinding", "DaemonSet", "DeviceClass", "DeviceClass",
                "DeviceClass", "ServiceAccount", "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"]
    if values:
        expected += ["ConfigMap", "DeviceClass", "Deployment", "Secret", "Service",
                     "ValidatingWebhookConfiguration"]
    assert kinds(rendered) == sorted(expected)
    p = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    lines = [x for x in p.stdout.splitlines() if "(server dry run)" in x]
    assert len(lines) == len(expected), p.stdout
    ds = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "DaemonSet")
    strategy = ds["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = {e["name"]: e for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    plugin = ds["spec"]["template"]["spec"]["containers"][0]
    # Probes on the plugin's HTTP endpoint, served on the pod's IP (kubelet probes that address).
    port = 9500 + 1 if values else 9400  # hostNetwork in values-full: +1 on revision 1
    assert "--metrics-address=$(POD_IP)" in plugin["args"]
    assert f"--metrics-port={port}" in plugin["args"]
    assert plugin["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert plugin["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert [p["containerPort"] for p in plugin["ports"]] == [port]
    if values:
        assert env["KUBERNETES_SERVICE_HOST"]["value"] == "127.0.0.1"


def test_webhook_objects_and_certificate(tmp_path):
    """webhook.enabled: Secret + Deployment + Service + ValidatingWebhookConfiguration; the
    chart's CA signs a serving certificate for the Service's DNS names, the caBundle is that CA,
    failurePolicy defaults to Ignore (docs/operations.md says why)."""
    rendered = template("ns1", "--set", "webhook.enabled=true", "--show-only",
                        "templates/webhook.yaml", release="r")
    objs = {d["kind"]: d for d in yaml.safe_load_all(rendered) if d}
    assert sorted(objs) == ["Deployment", "Secret", "Service", "ValidatingWebhookConfiguration"]
    secret, vwc = objs["Secret"], objs["ValidatingWebhookConfiguration"]
    hook = vwc["webhooks"][0]
    assert hook["name"] == "resourceclaims.accel-dra.dev"
    assert hook["failurePolicy"] == "Ignore"
    assert hook["clientConfig"]["service"] == {"name": "r-accel-dra-webhook", "namespace": "ns1",
                                               "path": "/validate", "port": 443}
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert hook["rules"][0]["resources"] == ["resourceclaims", "resourceclaimtemplates"]
    for k in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / k).write_bytes(base64.b64decode(secret["data"][k]))
    p = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "tls.crt"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                        tmp_path / "tls.crt"], capture_output=True, text=True, check=True)
    sans = re.findall(r"DNS:([^,\s]+)", p.stdout)  # openssl prints them on the line after the title
    for name in ("r-accel-dra-webhook", "r-accel-dra-webhook.ns1", "r-accel-dra-webhook.ns1.svc"):
        assert name in sans, p.stdout
    c = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:2] == ["webhook", "--driver-name=accel-dra.dev"]
    assert objs["Deployment"]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == \
        "r-accel-dra-webhook", "webhook pods must not match the DaemonSet's selector"


def slice_body(name: str, node: str, driver: str) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": "gpu-0"}]}}


def test_node_restriction(cluster, kubectl, namespace, make_node, request):
    """The plugin's service account, with a token bound to a pod on node A: create, update and
    delete of A's slice allowed; a slice of node B denied (create, and update/delete of one the
    admin made); a token not bound to a pod denied."""
    release = "nr-" + namespace[-6:]
    driver = f"{release}.accel-dra.dev"
    own = cluster.node_name
    other = make_node(f"{release}-other")
    rendered = template(namespace, "--set", f"driverName={driver}", "--show-only",
                        "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
                        "--show-only", "templates/node-restriction.yaml", release=release)
    objs = [d for d in yaml.safe_load_all(rendered) if d]
    try:
        kubectl("apply", "-f", "-", input=rendered)
        sa = next(o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plugin"},
               "spec": {"nodeName": own, "serviceAccountName": sa,
                        "containers": [{"name": "c", "image": "localhost/busybox:local"}]}}
        created = json.loads(kubectl("create", "-n", namespace, "-f", "-", "-o", "json",
                                     input=json.dumps(pod)).stdout)
        status, tr = cluster.request(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", method="POST",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 600, "boundObjectRef": {
                      "apiVersion": "v1", "kind": "Pod", "name": "plugin",
                      "uid": created["metadata"]["uid"]}}})
        assert status == 201, tr
        token = tr["status"]["token"]
        status, unbound = cluster.request(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", method="POST",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 600}})
        assert status == 201, unbound
        base = "/apis/resource.k8s.io/v1/resourceslices"

        # The policy takes effect once the apiserver has loaded it: wait for the first denial.
        def other_denied():
            s, body = cluster.request(base, token=token, method="POST",
                                      body=slice_body(f"{release}-other", other, driver))
            if s == 201:  # not enforced yet: remove it and retry
                cluster.request(f"{base}/{release}-other", method="DELETE")
                return None
            return (s, body)
        s, body = wait_for(other_denied, 30, "the node restriction policy to deny another node")
        assert s == 403, body
        assert f'may only write ResourceSlices of its own node, not of node "{other}"' in \
            body["message"], body

        s, body = cluster.request(base, token=token, method="POST",
                                  body=slice_body(f"{release}-own", own, driver))
        assert s == 201, body
        body["spec"]["devices"].append({"name": "gpu-1"})
        s, body = cluster.request(f"{base}/{release}-own", token=token, method="PUT", body=body)
        assert s == 200, body
        # Moving its own slice to another node is an update of the new object: denied.
        moved = dict(body, spec=dict(body["spec"], nodeName=other))
        s, denied = cluster.request(f"{base}/{release}-own", token=token, method="PUT", body=moved)
        assert s in (403, 422), denied

        # Another node's slice made by the admin: neither update nor delete.
        s, theirs = cluster.request(base, method="POST",
                                    body=slice_body(f"{release}-theirs", other, driver))
        assert s == 201, theirs
        theirs["spec"]["devices"].append({"name": "gpu-1"})
        s, denied = cluster.request(f"{base}/{release}-theirs", token=token, method="PUT",
                                    body=theirs)
        assert s == 403, denied
        s, denied = cluster.request(f"{base}/{release}-theirs", token=token, method="DELETE")
        assert s == 403, denied

        # A token that is not bound to a pod has no node: denied even for the own node.
        s, denied = cluster.request(base, token=unbound["status"]["token"], method="POST",
                                    body=slice_body(f"{release}-unbound", own, driver))
        assert s == 403 and "token bound to its pod" in denied["message"], denied

        s, body = cluster.request(f"{base}/{release}-own", token=token, method="DELETE")
        assert s == 200, body
    finally:
        for n in ("own", "theirs", "other", "unbound"):
            cluster.request(f"/apis/resource.k8s.io/v1/resourceslices/{release}-{n}",
                            method="DELETE")
        if not os.environ.get("ACCEL_DRA_KEEP_NAMESPACES"):
            for o in objs:
                if not o["metadata"].get("namespace"):
                    kubectl("delete", o["kind"].lower(), o["metadata"]["name"],
                            "--ignore-not-found", check=False)
