#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/seed-*) from the repository's
fixtures and goldens, plus a few hand-written inputs per format. Run it again after changing a
fixture; it replaces only files named seed-*, so regression inputs (crash-*, named after what
they found) stay.

  tests/fuzz/make_corpus.py
"""
import hashlib
import json
import os
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIX = ROOT / "tests" / "fixtures"


def write(target, items):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for data in items:
        if isinstance(data, str):
            data = data.encode()
        (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def checkpoint():
    out = []
    for f in sorted((FIX / "checkpoint").glob("*.json")):
        b = f.read_bytes()
        out.append(b"\x00" + b)
        if b.startswith(b'{"version": 2,'):
            out.append(b"\x01" + b[47:-2])  # the payload, wrapped with a good checksum
    return out


CLAIM_BASE = {
    "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
    "metadata": {"name": "c", "namespace": "default",
                 "uid": "6f1c2d3e-0000-4000-8000-000000000001"},
    "spec": {"devices": {"requests": [{"name": "main", "exactly": {
        "deviceClassName": "accel.example.com", "allocationMode": "ExactCount", "count": 1}}]}},
}


def claim(results, config=None):
    c = json.loads(json.dumps(CLAIM_BASE))
    devices = {"results": results}
    if config is not None:
        devices["config"] = config
    c["status"] = {"allocation": {"devices": devices}}
    return c


def result(device, request="main", **extra):
    r = {"request": request, "driver": "accel-dra.dev", "pool": "node-a", "device": device}
    r.update(extra)
    return r


def params(sharing=None):
    p = {"apiVersion": "accel-dra.dev/v1alpha1", "kind": "DeviceConfig"}
    if sharing is not None:
        p["sharing"] = sharing
    return p


def opaque(source, requests, parameters, driver="accel-dra.dev"):
    return {"source": source, "requests": requests,
            "opaque": {"driver": driver, "parameters": parameters}}


SHARINGS = [
    None,
    {"strategy": "Exclusive"},
    {"strategy": "TimeSlicing", "timeSlicing": {"interval": "Long"}},
    {"strategy": "SpacePartitioning", "spacePartitioning": {"partitionCount": 4}},
]


def claims():
    out = [claim([result("gpu-1")])]
    out.append(claim([result("gpu-5")], [opaque("FromClaim", ["main"], params(SHARINGS[2]))]))
    out.append(claim([result("gpu-2"), result("gpu-3", "main/sub")],
                     [opaque("FromClass", [], params(SHARINGS[3])),
                      opaque("FromClaim", ["main/sub"], params(SHARINGS[1]))]))
    out.append(claim([result("gpu-0", adminAccess=True)]))
    out.append(claim([result("gpu-4", shareID="a1b2c3d4-0000-4000-8000-000000000001"),
                      result("gpu-4", shareID="a1b2c3d4-0000-4000-8000-000000000002")]))
    out.append(claim([result("gpu-0")]))  # held by the other claim: refused
    other = result("nic-0")
    other["driver"] = "net.example.com"
    out.append(claim([other, result("gpu-6", pool="node-b")]))
    return [json.dumps(c, indent=1) for c in out]


def device_configs():
    out = [json.dumps(params(s)) for s in SHARINGS]
    out.append(json.dumps({"apiVersion": "accel-dra.dev/v1alpha1", "kind": "DeviceConfig",
                           "sharing": {"strategy": "TimeSlicing",
                                       "spacePartitioning": {"partitionCount": 99}}}))
    for c in claims()[:3]:
        out.append(json.dumps(json.loads(c)["status"]["allocation"]["devices"]))
        cfg = json.loads(c)["status"]["allocation"]["devices"].get("config")
        if cfg:
            out.append(json.dumps(cfg))
    return out


def sim_profiles():
    return [
        "devices:\n- count: 4\n  type: gpu\n  productName: Simulated Accelerator 80GB\n"
        "  memory: 80Gi\n  driverVersion: 1.2.3\n  numaNodes: 2\n"
        "  deviceNode: /run/sim/dev/accel-sim{index}\n  timeSliceControl: none\n"
        "driverVersionFile: /run/sim/driver-version\n",
        "devices: [{count: 1, driverVersion: custom}]\n",
        "devices:\n- {count: 2, type: accelerator, memory: 1536Mi, timeSliceControl: nvidia-smi}\n"
        "- {count: 3, type: gpu, driverVersion: v550.54.15-beta+1}\n",
    ]


def kubeconfigs():
    base = ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
            "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n%s"
            "users:\n- name: u\n  user:\n%s")
    return [
        base % ("    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n",
                "    token: abc\n"),
        base % ("    insecure-skip-tls-verify: true\n", "    tokenFile: /var/run/token\n"),
        base % ("    certificate-authority: ca.crt\n",
                "    client-certificate: c.crt\n    client-key: c.key\n"),
        base % ("", "    exec: {command: x}\n"),
    ]


def cdi_specs():
    out = [f.read_bytes() for f in sorted((FIX / "checkpoint" / "v1-0.1.0-plugin.cdi").glob("*.json"))]
    out.append(json.dumps({"cdiVersion": "0.6.0", "kind": "k8s.accel-dra.dev/device",
                           "devices": [{"name": "d0", "containerEdits": {
                               "env": ["A=1"],
                               "deviceNodes": [{"path": "/dev/accel0", "type": "c",
                                                "permissions": "rw"}],
                               "mounts": [{"hostPath": "/a", "containerPath": "/b",
                                           "options": ["ro", "bind"]}],
                               "hooks": [{"hookName": "createContainer", "path": "/bin/true"}]}}],
                           "containerEdits": {"env": ["ACCEL_VISIBLE_DEVICES=d0"]}}))
    return out


def host_trees():
    out = []
    hosts = FIX / "hosts"
    for h in sorted(p for p in hosts.iterdir() if p.is_dir()):
        rec = bytearray()
        for dirpath, dirnames, filenames in os.walk(h, followlinks=False):
            for name in sorted(dirnames + filenames):
                p = pathlib.Path(dirpath) / name
                rel = str(p.relative_to(h)).encode()
                if p.is_symlink():
                    rec += b"l" + rel + b"\0" + os.readlink(p).encode() + b"\0"
                elif p.is_file():
                    rec += b"f" + rel + b"\0" + p.read_bytes() + b"\0"
                elif p.is_dir() and not any(p.iterdir()):
                    rec += b"d" + rel + b"\0\0"
        out.append(bytes(rec))
    return out


def versions():
    return ["550.54.15", "v1.2-beta", "535.104.05", "2.1.4~ubuntu1", "1.2.3.4", "560.35",
            "custom build", " V12.4.1+build.7 ", "1.0.0-rc.01", "00000000:3B:00.0",
            "0000:3b:00.0", "3b:00.0", "1" * 19 + ".0", "6.8.0-40-generic", "\x011.2.3"]


def results():
    ok = ("RESULT: INSPECT_VERSION=1\nRESULT: INSPECT_TOOL=binary\nRESULT: HOSTNAME=pod-1\n"
          "RESULT: DEVICE_NODE_COUNT=2\nRESULT: DEVICE_NODES=/dev/accel-sim0,/dev/null\n"
          "RESULT: ACCELERATOR_COUNT=1\nRESULT: ACCELERATOR_DEVICES=/dev/accel-sim0\n"
          "RESULT: ACCEL_ENV_COUNT=2\nRESULT: ENV_ACCEL_DEVICE_GPU_0=gpu-0\n"
          "RESULT: ENV_ACCEL_VISIBLE_DEVICES=gpu-0\nRESULT: DRIVER_VERSION=1.2.3\n"
          "RESULT: DRIVER_VERSION_SOURCE=/run/accel-dra/driver/version\nRESULT: DONE=true\n")
    return [ok, ok.replace("\n", "\r\n"), "some log line\n" + ok[:200],
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue\n",
            "RESULT: DRIVER_VERSION=3000000000.0.0\nRESULT: DONE=true\n"]


def reports():
    rnd = random.Random(11)
    return [bytes(rnd.randrange(256) for _ in range(n)) for n in (64, 256, 1024, 4096)]


def main():
    write("checkpoint_fuzz", checkpoint())
    write("claim_fuzz", claims())
    write("device_config_fuzz", device_configs())
    write("sim_profile_fuzz", sim_profiles())
    write("kubeconfig_fuzz", kubeconfigs())
    write("cdi_spec_fuzz", cdi_specs())
    write("pci_sysfs_fuzz", host_trees())
    write("version_fuzz", versions())
    write("probe_result_fuzz", results())
    write("probe_report_fuzz", reports())


if __name__ == "__main__":
    main()
