#!/usr/bin/env python3
"""accel-dra benchmarks against a real local control plane. Prints figures; asserts nothing.

    bench/run_bench.py [--build-dir build] [--cluster-dir DIR]

Starts a cluster with hack/local-cluster/up.sh (unless --cluster-dir names a running one) and
measures, for accel-dra-plugin with simulated devices:
  * start → first published slice (8 devices), and idle RSS with 8 devices;
  * apiserver writes to resourceslices while nothing changes (from apiserver /metrics);
  * 1,000 devices published (start → pool complete);
  * NodePrepareResources latency with 64 claims in flight, including the claim GET
    (accel-dra-prepare-bench, one claim per call as kubelet sends them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRIVER = "accel-dra.dev"


class Api:
    def __init__(self, env: dict[str, str]):
        self.url = env["APISERVER_URL"]
        self.token = env["ADMIN_TOKEN"]
        self.ctx = ssl.create_default_context(cafile=env["CA_CERT"])

    def call(self, method: str, path: str, body=None, ctype="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", ctype)
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def slice_writes(self) -> int:
        text = self.call("GET", "/metrics")
        total = 0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{") and 'resource="resourceslices"' in line \
                    and re.search(r'verb="(POST|PUT|PATCH|DELETE|DELETECOLLECTION)"', line):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def slices(self, node: str):
        q = f"spec.nodeName%3D{node}%2Cspec.driver%3D{DRIVER}"
        return self.call("GET", f"/apis/resource.k8s.io/v1/resourceslices?fieldSelector={q}")["items"]


def read_env(run_dir: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f'set -a; . "{run_dir}/env"; env -0'],
                         check=True, capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def memory(pid: int) -> str:
    """RSS, PSS and private (anonymous, dirty) memory: RSS counts every shared-library page the
    process touched (libgrpc, libcrypto, ...), PSS divides them among the processes sharing them."""
    f = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, v = line.split(":", 1)
        f[k] = int(v.split()[0])
    return (f"RSS {f['Rss'] / 1024:.1f} MiB (PSS {f['Pss'] / 1024:.1f} MiB, private dirty "
            f"{f['Private_Dirty'] / 1024:.1f} MiB, shared library pages {f['Shared_Clean'] / 1024:.1f} MiB)")


def pool_complete(slices, want_devices: int) -> bool:
    if not slices:
        return False
    gens = {s["spec"]["pool"]["generation"] for s in slices}
    counts = {s["spec"]["pool"]["resourceSliceCount"] for s in slices}
    n = sum(len(s["spec"].get("devices", [])) for s in slices)
    return len(gens) == 1 and counts == {len(slices)} and n == want_devices


class Plugin:
    def __init__(self, binary: Path, env: dict, node: str, work: Path, *args: str):
        self.log = work / f"plugin-{node}.log"
        reg, plug, cdi = work / f"{node}-reg", work / f"{node}-plugins", work / f"{node}-cdi"
        for d in (reg, plug, cdi):
            d.mkdir(parents=True, exist_ok=True)
        self.dra_socket = plug / DRIVER / "dra.sock"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), f"--kubeconfig={env['KUBECONFIG']}", f"--node-name={node}",
             f"--kubelet-registrar-directory-path={reg}", f"--kubelet-plugins-directory-path={plug}",
             f"--cdi-root={cdi}", *args],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def make_node(run_dir: Path, node: str):
    subprocess.run([str(REPO / "hack/local-cluster/node.sh"), node, "--dir", str(run_dir)],
                   check=True, capture_output=True)


def bench_start_and_idle(api: Api, binary: Path, env, run_dir: Path, work: Path):
    node = "bench-idle"
    make_node(run_dir, node)
    p = Plugin(binary, env, node, work, "--simulate=8")
    wait(lambda: pool_complete(api.slices(node), 8), 10, "8 devices")
    start_ms = (time.monotonic() - p.t0) * 1000
    m = wait(lambda: re.search(r"first ResourceSlices published (\d+) ms", p.log.read_text()), 5,
             "start-up log line")
    time.sleep(2)
    writes0 = api.slice_writes()
    rv0 = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in api.slices(node)}
    idle_s = 10
    time.sleep(idle_s)
    writes1 = api.slice_writes()
    rv1 = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in api.slices(node)}
    mem = memory(p.proc.pid)
    p.stop()
    print(f"start → first published slice (8 devices): {start_ms:.0f} ms observed from outside "
          f"(spawn to slice visible via GET, 5 ms polling); plugin's own figure {m.group(1)} ms")
    print(f"idle memory with 8 devices: {mem}")
    print(f"apiserver writes to resourceslices in {idle_s} s idle (all clients): {writes1 - writes0}; "
          f"our slices' resourceVersions unchanged: {rv0 == rv1}")


def bench_thousand(api: Api, binary: Path, env, run_dir: Path, work: Path):
    node = "bench-1000"
    make_node(run_dir, node)
    p = Plugin(binary, env, node, work, "--simulate=1000")
    wait(lambda: pool_complete(api.slices(node), 1000), 30, "1000 devices")
    ms = (time.monotonic() - p.t0) * 1000
    n = len(api.slices(node))
    rss = rss_kib(p.proc.pid)
    p.stop()
    print(f"1,000 devices published: {ms:.0f} ms from start to a complete pool ({n} slices); "
          f"RSS {rss / 1024:.1f} MiB")


def bench_prepare(api: Api, binary: Path, prep_bench: Path, env, run_dir: Path, work: Path,
                  claims_n: int, inflight: int, rounds: int):
    node = "bench-prepare"
    make_node(run_dir, node)
    p = Plugin(binary, env, node, work, f"--simulate={claims_n}")
    wait(lambda: pool_complete(api.slices(node), claims_n), 20, "devices")
    ns = "bench-" + secrets.token_hex(3)
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    lines = []
    for i in range(claims_n):
        claim = api.call("POST", f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims", {
            "metadata": {"name": f"c{i}"},
            "spec": {"devices": {"requests": [{"name": "accel", "exactly": {"deviceClassName": DRIVER}}]}}})
        claim["status"] = {"allocation": {"devices": {"results": [
            {"request": "accel", "driver": DRIVER, "pool": node, "device": f"gpu-{i}"}]}}}
        api.call("PUT", f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims/c{i}/status", claim)
        lines.append(f"{ns}/c{i}/{claim['metadata']['uid']}")
    claims_file = work / "claims.txt"
    claims_file.write_text("\n".join(lines) + "\n")
    out = subprocess.run([str(prep_bench), f"--socket={p.dra_socket}", f"--claims={claims_file}",
                          f"--concurrency={inflight}", f"--rounds={rounds}"],
                         capture_output=True, text=True)
    rss = rss_kib(p.proc.pid)
    p.stop()
    print(f"NodePrepareResources with {inflight} claims in flight (claim GET included, "
          f"one claim per call, {rounds} rounds of prepare+unprepare):")
    sys.stdout.write("  " + out.stdout.replace("\n", "\n  ").rstrip() + "\n")
    if out.returncode != 0:
        print("  bench errors:", out.stderr.strip()[-500:])
    print(f"  plugin RSS after the run: {rss / 1024:.1f} MiB")
    try:
        api.call("DELETE", f"/api/v1/namespaces/{ns}")
    except Exception:  # noqa: BLE001
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=str(REPO / "build"))
    ap.add_argument("--cluster-dir")
    ap.add_argument("--claims", type=int, default=64)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    build = Path(a.build_dir)
    binary = build / "src/cmd/plugin/accel-dra-plugin"
    prep = build / "bench/accel-dra-prepare-bench"
    for b in (binary, prep):
        if not b.exists():
            raise SystemExit(f"{b} is missing: build first (hack/build.sh {build})")
    own = a.cluster_dir is None
    run_dir = Path(a.cluster_dir or tempfile.mkdtemp(prefix="accel-dra-bench-"))
    work = Path(tempfile.mkdtemp(prefix="accel-dra-bench-work-"))
    if own:
        subprocess.run([str(REPO / "hack/local-cluster/up.sh"), "--dir", str(run_dir), "--name",
                        "bench", "--replace"], check=True)
    try:
        env = read_env(run_dir)
        api = Api(env)
        print(f"== accel-dra benchmarks ({os.cpu_count()} CPUs, apiserver on loopback)")
        bench_start_and_idle(api, binary, env, run_dir, work)
        bench_thousand(api, binary, env, run_dir, work)
        bench_prepare(api, binary, prep, env, run_dir, work, a.claims, a.inflight, a.rounds)
    finally:
        if own:
            subprocess.run([str(REPO / "hack/local-cluster/down.sh"), "--dir", str(run_dir)])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
