"""A bounded fault soak of accel-dra-plugin's kubelet side against a real apiserver and scheduler.

The real plugin (simulated devices whose time slices are set through a stand-in nvidia-smi)
serves accel-dra-kubelet-sim, which plays kubelet: it prepares and unprepares ResourceClaims that
the real kube-scheduler allocated, one to three claims per call, and retries a failed call until
it succeeds, as kubelet does. Meanwhile the plugin is SIGKILLed at random moments (often in the
middle of a call) and restarted on the same directories, and in the middle of the run the
kube-apiserver itself is stopped (the plugin is killed and restarted while it is down, and must
come back once the apiserver does) and restarted.

Then the audit, after one more kill and restart (so recovery has run): every claim the kubelet
side considers prepared has its CDI spec and its PrepareCompleted checkpoint entry; no other
claim has either; no PrepareStarted entry is left; no device is held by two claims; the time
slice of every device is what the prepared claims ask (Long on a TimeSlicing claim's device, the
default everywhere else). The test prints cycles, calls, kills, apiserver restarts and leaks;
leaks must be 0.

It restarts the kube-apiserver, so it runs on its own control plane (CTest fixture
`cluster-soak`). ACCEL_DRA_SOAK_SECONDS sets the length of the fault loop (default 90).
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import kubelet_sim as sim
from conftest import device_class, wait_for
from kubelet_sim import DRIVER, EXIT_OK, PluginDirs
from plugin_proc import PluginProcess

SOAK_SECONDS = float(os.environ.get("ACCEL_DRA_SOAK_SECONDS", "90"))
DEVICE_COUNT = 8
CLAIMS = 6  # allocated by the scheduler: 6 of the 8 devices; the first two with TimeSlicing/Long
TIME_SLICED = 2
KILL_PROBABILITY = 0.3
CALL_RETRY_SECONDS = 90  # a call must succeed within this (plugin restarts included)

TIME_SLICING = f"""
    config:
    - opaque:
        driver: {DRIVER}
        parameters:
          apiVersion: accel-dra.dev/v1alpha1
          kind: DeviceConfig
          sharing:
            strategy: TimeSlicing
            timeSlicing:
              interval: Long"""


class Soak:
    """The plugin under test, the kubelet side's view of the claims, and the counters."""

    def __init__(self, cluster, root: Path, node: str, claims: dict[str, tuple]):
        self.cluster = cluster
        self.root = root
        self.node = node
        self.claims = claims  # uid -> (ns, name, uid)
        self.dirs = PluginDirs.under(root / "k")
        self.profile = root / "profile.yaml"
        self.profile.write_text(
            f"devices:\n- count: {DEVICE_COUNT}\n  deviceNode: /dev/accel-sim{{index}}\n"
            "  timeSliceControl: nvidia-smi\n")
        self.smi_log = root / "nvidia-smi.log"
        self.smi = root / "nvidia-smi"
        self.smi.write_text(f'#!/bin/sh\necho "$*" >> "{self.smi_log}"\n')
        self.smi.chmod(0o755)
        self.prepared: set[str] = set()  # what the kubelet side considers prepared
        self.plugin: PluginProcess | None = None
        self.starts = 0
        self.stats = {"prepares": 0, "unprepares": 0, "cycles": 0, "calls": 0, "failed_calls": 0,
                      "kills": 0, "kills_in_call": 0, "apiserver_restarts": 0}

    # ---- the plugin ---------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = 30) -> None:
        self.starts += 1
        self.plugin = PluginProcess(
            [f"--kubeconfig={self.cluster.kubeconfig}", f"--node-name={self.node}",
             f"--simulate-profile={self.profile}", f"--nvidia-smi={self.smi}",
             "--startup-timeout=120", *self.dirs.args()],
            self.root / f"plugin-{self.starts}.log")
        if wait:
            self.dirs.wait_serving(self.plugin, timeout=timeout)

    def kill(self) -> None:
        assert self.plugin is not None
        assert self.plugin.alive(), \
            f"the plugin died on its own (exit {self.plugin.proc.returncode}); " \
            f"log:\n{self.plugin.log()[-3000:]}"
        self.plugin.stop(signal.SIGKILL)
        self.stats["kills"] += 1

    def stop(self) -> None:
        if self.plugin is not None and self.plugin.alive():
            assert self.plugin.stop() == 0, self.plugin.log()[-3000:]

    # ---- kubelet's calls ----------------------------------------------------------------------

    def _call_args(self, op: str, refs: list[tuple]) -> list[str]:
        args = [sim.sim_binary(), op, "--socket", str(self.dirs.dra_socket()), "--api", "v1",
                "--timeout-ms", "20000"]
        for ns, name, uid in refs:
            args += ["--claim", f"{ns}/{name}/{uid}"]
        return args

    def call(self, op: str, refs: list[tuple], kill: bool = False) -> None:
        """One kubelet operation on `refs`, retried (like kubelet) until every claim succeeds;
        with `kill`, the plugin is SIGKILLed during the first attempt and restarted."""
        deadline = time.monotonic() + CALL_RETRY_SECONDS
        pending = list(refs)
        first = True
        while pending:
            self.stats["calls"] += 1
            proc = subprocess.Popen(self._call_args(op, pending), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            if first and kill:
                time.sleep(random.uniform(0, 0.08))
                self.kill()
                if proc.poll() is None:
                    self.stats["kills_in_call"] += 1
            out, err = proc.communicate(timeout=60)
            if first and kill:
                self.start()
            first = False
            try:
                answer = json.loads(out) if out.strip() else {}
            except ValueError:
                answer = {}
            answered = answer.get("claims", {})
            done = [r for r in pending if proc.returncode == EXIT_OK or
                    (r[2] in answered and not answered[r[2]].get("error"))]
            for r in done:
                self._settle(op, r[2])
            pending = [r for r in pending if r not in done]
            if pending:
                self.stats["failed_calls"] += 1
                assert time.monotonic() < deadline, (
                    f"{op} of {[r[1] for r in pending]} still failing after {CALL_RETRY_SECONDS}s:"
                    f" exit {proc.returncode}\nstdout: {out}\nstderr: {err}\n"
                    f"plugin log:\n{self.plugin.log()[-3000:] if self.plugin else ''}")
                if self.plugin is not None and not self.plugin.alive():
                    raise AssertionError(f"the plugin died on its own (exit "
                                         f"{self.plugin.proc.returncode}); log:\n"
                                         f"{self.plugin.log()[-3000:]}")
                time.sleep(0.2)

    def _settle(self, op: str, uid: str) -> None:
        if op == "prepare":
            self.stats["prepares"] += 1
            self.prepared.add(uid)
        else:
            self.stats["unprepares"] += 1
            if uid in self.prepared:
                self.stats["cycles"] += 1
            self.prepared.discard(uid)

    def step(self) -> None:
        """Flips one to three random claims (prepared → unprepared and back) in one call each
        way, killing the plugin during the call now and then."""
        uids = random.sample(sorted(self.claims), random.randint(1, 3))
        to_prepare = [self.claims[u] for u in uids if u not in self.prepared]
        to_unprepare = [self.claims[u] for u in uids if u in self.prepared]
        for op, refs in (("prepare", to_prepare), ("unprepare", to_unprepare)):
            if refs:
                self.call(op, refs, kill=random.random() < KILL_PROBABILITY)

    # ---- the kube-apiserver -------------------------------------------------------------------

    def stop_apiserver(self) -> list[str]:
        """Stops the cluster's kube-apiserver (its process group: SIGTERM, and SIGKILL after 3 s,
        since a graceful shutdown waits up to a minute for open watches); returns its command
        line for start_apiserver."""
        pid = int(self.cluster.env["APISERVER_PID"])
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        argv = [a.decode() for a in cmd if a]

        def gone() -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                return True

        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not gone():
            os.killpg(pid, signal.SIGKILL)
        wait_for(gone, 30, "the kube-apiserver to exit")
        return argv

    def start_apiserver(self, argv: list[str]) -> None:
        """Starts the kube-apiserver again with the same command line, as up.sh did (own
        session, log in RUN_DIR/logs), and records its PID where down.sh looks."""
        d = self.cluster.dir
        log = open(d / "logs" / "kube-apiserver.log", "a")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        log.close()
        (d / "pids" / "kube-apiserver.pid").write_text(f"{p.pid}\n")
        env_file = d / "env"
        env_file.write_text(re.sub(r"(?m)^((?:export )?APISERVER_PID=).*$", rf"\g<1>{p.pid}",
                                   env_file.read_text()))
        self.cluster.env["APISERVER_PID"] = str(p.pid)
        wait_for(lambda: self.cluster.request("/readyz", timeout=2)[0] == 200, 90,
                 "the restarted kube-apiserver to be ready")
        self.stats["apiserver_restarts"] += 1

    def apiserver_outage(self) -> None:
        """The apiserver goes away: unprepare still works, a prepare fails cleanly (nothing left
        on disk for it), the plugin killed meanwhile starts again once the apiserver is back."""
        argv = self.stop_apiserver()
        try:
            if self.prepared:
                self.call("unprepare", [self.claims[sorted(self.prepared)[0]]])
            idle = sorted(set(self.claims) - self.prepared)
            if idle:
                uid = idle[0]
                r = sim.prepare(self.dirs.dra_socket(), self.claims[uid], timeout_ms=20000)
                self.stats["calls"] += 1
                assert r.rc != EXIT_OK, f"prepare without an apiserver succeeded: {r}"
                self.stats["failed_calls"] += 1
                assert not self.dirs.spec_path(uid).exists(), "a failed prepare left a CDI spec"
                assert uid not in self.dirs.checkpoint_claims(), \
                    "a failed prepare left a checkpoint entry"
            self.kill()
            self.start(wait=False)
            time.sleep(2)
            assert self.plugin.alive(), \
                f"the plugin gave up while the apiserver was down:\n{self.plugin.log()[-3000:]}"
        finally:
            self.start_apiserver(argv)
        self.dirs.wait_serving(self.plugin, timeout=90)

    # ---- the audit ----------------------------------------------------------------------------

    def audit(self) -> list[str]:
        """Everything that disagrees with what the kubelet side considers prepared."""
        leaks = []
        specs = self.dirs.spec_uids()
        entries = self.dirs.checkpoint_claims()
        for uid in sorted(self.prepared):
            if uid not in specs:
                leaks.append(f"prepared claim {uid} has no CDI spec")
            if entries.get(uid) != "PrepareCompleted":
                leaks.append(f"prepared claim {uid} is {entries.get(uid)} in the checkpoint")
        for uid in sorted(specs - self.prepared):
            leaks.append(f"unprepared claim {uid} still has a CDI spec")
        for uid in sorted(set(entries) - self.prepared):
            leaks.append(f"unprepared claim {uid} is still in the checkpoint ({entries[uid]})")
        stray = [f for f in self.dirs.our_cdi_files() if not f.endswith(".json")]
        if stray:
            leaks.append(f"temporary CDI files left: {stray}")
        held: dict[tuple, str] = {}
        recorded = {}
        if self.dirs.checkpoint.exists():
            recorded = json.loads(self.dirs.checkpoint.read_text())["data"]["claims"]
        for uid, c in recorded.items():
            for dev in c["devices"]:
                key = (dev["pool"], dev["device"])
                if key in held and held[key] != uid:
                    leaks.append(f"device {key} held by {held[key]} and {uid}")
                held[key] = uid
        return leaks + self.time_slice_leaks(recorded)

    def time_slice_leaks(self, checkpoint_claims: dict) -> list[str]:
        """The last setting nvidia-smi got per device against what the prepared claims ask."""
        last: dict[str, str] = {}
        if self.smi_log.exists():
            for line in self.smi_log.read_text().splitlines():
                args = line.split()
                if "-i" in args and "--set-timeslice" in args:
                    last[args[args.index("-i") + 1]] = args[args.index("--set-timeslice") + 1]
        want: dict[str, str] = {}
        for c in checkpoint_claims.values():
            for dev in c["devices"]:
                ts = dev.get("timeSlice")
                if ts and ts.get("control") == "nvidia-smi":
                    want[ts["target"]] = str(ts["setting"])
        leaks = []
        for target, setting in sorted(last.items()):
            if setting != want.get(target, "0"):
                leaks.append(f"device {target} left at time slice {setting} "
                             f"(want {want.get(target, '0')})")
        for target, setting in sorted(want.items()):
            if last.get(target) != setting:
                leaks.append(f"device {target} should be at time slice {setting}, "
                             f"is {last.get(target, 'unset')}")
        return leaks


def _allocated_claims(kubectl, node: str, ns: str, cls: str) -> dict[str, tuple]:
    """CLAIMS ResourceClaims (the first TIME_SLICED with TimeSlicing/Long), each with a pod on
    `node`, allocated by kube-scheduler; uid -> (ns, name, uid)."""
    docs = []
    for i in range(CLAIMS):
        docs.append(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: soak-{i}
spec:
  devices:
    requests:
    - name: accel
      exactly:
        deviceClassName: {cls}{TIME_SLICING if i < TIME_SLICED else ""}
---
apiVersion: v1
kind: Pod
metadata:
  name: soak-{i}
spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  tolerations:
  - operator: Exists
  resourceClaims:
  - name: accel
    resourceClaimName: soak-{i}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: accel
""")
    kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(docs))

    def allocated():
        items = kubectl.json("get", "resourceclaims", "-n", ns)["items"]
        done = [c for c in items if c.get("status", {}).get("allocation")]
        return done if len(done) == CLAIMS else None

    claims = wait_for(allocated, 90, "kube-scheduler to allocate the soak claims")
    devices = [c["status"]["allocation"]["devices"]["results"][0]["device"] for c in claims]
    assert len(set(devices)) == CLAIMS, f"the scheduler gave one device twice: {devices}"
    return {c["metadata"]["uid"]: (ns, c["metadata"]["name"], c["metadata"]["uid"])
            for c in claims}


def _write_summary(line: str) -> None:
    """The summary line also goes to <build>/soak-summary.txt: hack/test.sh prints it (CTest shows
    a passing test's output nowhere)."""
    build = os.environ.get("ACCEL_DRA_BUILD_DIR")
    if build:
        (Path(build) / "soak-summary.txt").write_text(line + "\n")


def test_fault_soak(cluster, kubectl, make_node, namespace, apply, tmp_path):
    seed = int(os.environ.get("ACCEL_DRA_SOAK_SEED", secrets.randbits(32)))
    random.seed(seed)
    node = make_node(f"soak-{secrets.token_hex(3)}")
    apply(device_class(node, f'device.driver == "{DRIVER}"'), namespace=None)
    soak = Soak(cluster, tmp_path, node, {})
    try:
        soak.start()
        wait_for(lambda: sum(len(s["spec"].get("devices", [])) for s in kubectl.json(
            "get", "resourceslices", f"--field-selector=spec.nodeName={node}")["items"])
            == DEVICE_COUNT, 30, "the plugin's ResourceSlices")
        soak.claims = _allocated_claims(kubectl, node, namespace, node)

        t0 = time.monotonic()
        outage_done = False
        while time.monotonic() - t0 < SOAK_SECONDS:
            soak.step()
            if not outage_done and time.monotonic() - t0 >= SOAK_SECONDS / 2:
                soak.apiserver_outage()
                outage_done = True
        if not outage_done:
            soak.apiserver_outage()
        # Recovery runs at every start: one more kill and start, then the audit.
        soak.kill()
        soak.start()
        leaks = soak.audit()
        s = soak.stats
        summary = (f"soak (seed {seed}, {time.monotonic() - t0:.0f} s): {s['cycles']} cycles "
                   f"({s['prepares']} prepares, {s['unprepares']} unprepares) in {s['calls']} "
                   f"calls ({s['failed_calls']} failed and retried); {s['kills']} plugin kills "
                   f"({s['kills_in_call']} during a call); {s['apiserver_restarts']} apiserver "
                   f"restarts; {len(soak.prepared)} claims prepared at the end; "
                   f"leaks: {len(leaks)}")
        print("\n" + summary)
        _write_summary(summary)
        assert not leaks, "leaks after the soak (seed %d):\n  %s" % (seed, "\n  ".join(leaks))
        assert s["kills"] > 0 and s["apiserver_restarts"] == 1 and s["cycles"] > 0, s
        # The kubelet side unprepares everything at the end (pods deleted): nothing may remain.
        if soak.prepared:
            soak.call("unprepare", [soak.claims[u] for u in sorted(soak.prepared)])
        leaks = soak.audit()
        assert not leaks, "leaks after unpreparing everything:\n  " + "\n  ".join(leaks)
        soak.stop()
    finally:
        if soak.plugin is not None and soak.plugin.alive():
            soak.plugin.stop(signal.SIGKILL)
