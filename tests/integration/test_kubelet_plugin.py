"""accel-dra-plugin's kubelet side (registration, NodePrepareResources / NodeUnprepareResources,
CDI specs, checkpoint, crash recovery, health, rolling update, shutdown) driven through
accel-dra-kubelet-sim against ResourceClaims that the real kube-scheduler allocated.

One Node, DeviceClass and namespace serve the whole module; the scheduler allocates a few claims
once (module fixture `bed`). Every test runs its own plugin processes on its own kubelet dirs
(registrar dir, plugins dir, CDI root under tmp_path), so the checkpoint state is per test and the
same allocated claims can be prepared by every test.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import kubelet_sim as sim
from conftest import LOCAL_CLUSTER, SOURCE_DIR, KEEP, wait_for
from kubelet_sim import DRIVER, EXIT_CALL_FAILED, EXIT_OK, EXIT_REJECTED, PluginDirs
from plugin_proc import PluginProcess, run_plugin  # noqa: F401 - fixture

VALIDATE = SOURCE_DIR / "cdi" / "validate.py"
DEVICE_COUNT = 8
FAKE_UID = "0badc0de-0000-4000-8000-000000000000"

# Every CDI spec a test in this module saw on disk is copied here and validated once more at the
# end (test_every_spec_written_validates).
_SEEN_SPECS: list[Path] = []


# ---- cluster objects shared by the module ------------------------------------------------------

@dataclass
class Bed:
    ns: str
    node: str
    device_class: str
    profile: Path
    spec_copies: Path
    claims: dict[str, dict] = field(default_factory=dict)  # short name -> ResourceClaim

    def ref(self, key: str) -> sim.Claim:
        c = self.claims[key]
        return c["metadata"]["namespace"], c["metadata"]["name"], c["metadata"]["uid"]

    def uid(self, key: str) -> str:
        return self.claims[key]["metadata"]["uid"]

    def result(self, key: str) -> dict:
        return self.claims[key]["status"]["allocation"]["devices"]["results"][0]


def _claim_spec(cls: str, config: str = "") -> str:
    return f"""
    devices:
      requests:
      - name: accel
        exactly:
          deviceClassName: {cls}
{config}"""


def _opaque(parameters: str) -> str:
    """A claim-level opaque config of our driver (indented for _claim_spec)."""
    return f"""      config:
      - opaque:
          driver: {DRIVER}
          parameters:
            apiVersion: accel-dra.dev/v1alpha1
            kind: DeviceConfig
{parameters}"""


TIME_SLICING = _opaque("""            sharing:
              strategy: TimeSlicing
              timeSlicing:
                interval: Long""")
BAD_STRATEGY = _opaque("""            sharing:
              strategy: Turbo""")
UNKNOWN_FIELD = _opaque("""            sharing:
              strategy: Exclusive
              colour: red""")


def _pod(name: str, node: str, claim: str = "", template: str = "") -> str:
    ref = f"resourceClaimTemplateName: {template}" if template else f"resourceClaimName: {claim}"
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  tolerations:
  - operator: Exists
  resourceClaims:
  - name: accel
    {ref}
  containers:
  - name: c
    image: localhost/none:never
    resources:
      claims:
      - name: accel
"""


def _slices_complete(kubectl, node: str) -> bool:
    items = kubectl.json("get", "resourceslices",
                         f"--field-selector=spec.nodeName={node},spec.driver={DRIVER}")["items"]
    names = [d["name"] for s in items for d in s["spec"].get("devices", [])]
    return len(names) == DEVICE_COUNT and all(
        s["spec"]["pool"]["resourceSliceCount"] == len(items) for s in items)


@pytest.fixture(scope="module")
def bed(cluster, kubectl, tmp_path_factory):
    """Node + DeviceClass + namespace, slices published once, and these claims:
    ts            from a ResourceClaimTemplate with a TimeSlicing/Long opaque config (pod p-ts)
    plain         standalone claim without config (pod p-plain)
    bad-strategy  claim config with sharing.strategy: Turbo (pod p-bad-strategy)
    unknown-field claim config with an unknown field sharing.colour (pod p-unknown-field)
    all allocated by kube-scheduler; and, with status.allocation written by hand (admin):
    dup           the same device as `plain`
    other-node    a device of another node's pool
    other-driver  a device of another driver"""
    suffix = secrets.token_hex(3)
    ns, node, cls = f"kp-{suffix}", f"kp-{suffix}", f"kp-{suffix}"
    root = tmp_path_factory.mktemp("kp-bed")
    profile = root / "profile.yaml"
    profile.write_text(f"devices:\n- count: {DEVICE_COUNT}\n  deviceNode: /dev/accel-sim{{index}}\n")
    spec_copies = root / "specs"
    spec_copies.mkdir()
    b = Bed(ns, node, cls, profile, spec_copies)

    p = subprocess.run([str(LOCAL_CLUSTER / "node.sh"), node, "--dir", str(cluster.dir)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"node.sh {node}: {p.stderr}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "accel-dra.dev/test=true")
    try:
        kubectl("apply", "-f", "-", input=f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: {cls}
spec:
  selectors:
  - cel:
      expression: 'device.driver == "{DRIVER}"'
""")
        # Publish the node's devices once; the slices stay when the plugin exits, and every later
        # plugin of this node publishes identical ones (no rewrite).
        pub_dirs = PluginDirs.under(root / "pub")
        pub = PluginProcess([f"--kubeconfig={cluster.kubeconfig}", f"--node-name={node}",
                             f"--simulate-profile={profile}", *pub_dirs.args()], root / "pub.log")
        try:
            wait_for(lambda: _slices_complete(kubectl, node), 15, "published ResourceSlices")
        finally:
            assert pub.stop() == 0
        wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", ns,
                                 check=False).returncode == 0, 30, "default ServiceAccount")

        docs = [f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: ts
spec:
  spec:{_claim_spec(cls, TIME_SLICING).replace(chr(10), chr(10) + '  ')}
""", _pod("p-ts", node, template="ts")]
        for key, cfg in (("plain", ""), ("bad-strategy", BAD_STRATEGY),
                         ("unknown-field", UNKNOWN_FIELD), ("dup", ""), ("other-node", ""),
                         ("other-driver", "")):
            docs.append(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: {key}
spec:{_claim_spec(cls, cfg)}
""")
            if key in ("plain", "bad-strategy", "unknown-field"):
                docs.append(_pod(f"p-{key}", node, claim=key))
        kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(docs))

        def allocated():
            out = {}
            for key in ("ts", "plain", "bad-strategy", "unknown-field"):
                if key == "ts":
                    st = kubectl.json("get", "pod", "p-ts", "-n", ns).get("status", {})
                    names = [s.get("resourceClaimName") for s in st.get("resourceClaimStatuses", [])]
                    if not names or not names[0]:
                        return None
                    name = names[0]
                else:
                    name = key
                c = kubectl.json("get", "resourceclaim", name, "-n", ns)
                if not c.get("status", {}).get("allocation"):
                    return None
                out[key] = c
            return out

        b.claims.update(wait_for(allocated, 60, "kube-scheduler to allocate the claims"))
        for key, c in b.claims.items():
            r = c["status"]["allocation"]["devices"]["results"]
            assert len(r) == 1 and r[0]["driver"] == DRIVER and r[0]["pool"] == node, (key, r)
        assert len({b.result(k)["device"] for k in b.claims}) == len(b.claims)

        # Hand-written allocations (status subresource, admin).
        plain_dev = b.result("plain")["device"]
        for key, result in (
                ("dup", {"request": "accel", "driver": DRIVER, "pool": node, "device": plain_dev}),
                ("other-node", {"request": "accel", "driver": DRIVER, "pool": f"{node}-elsewhere",
                                "device": "gpu-0"}),
                ("other-driver", {"request": "accel", "driver": "gpu.example.com", "pool": node,
                                  "device": "gpu-0"})):
            patch = {"status": {"allocation": {"devices": {"results": [result]}}}}
            kubectl("patch", "resourceclaim", key, "-n", ns, "--subresource=status",
                    "--type=merge", "-p", json.dumps(patch))
            b.claims[key] = kubectl.json("get", "resourceclaim", key, "-n", ns)
            assert b.result(key) == {**result, **b.result(key)}, b.claims[key]["status"]
        yield b
    finally:
        if not KEEP:
            kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force",
                    "--wait=false", check=False)
            kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
            kubectl("delete", "deviceclass", cls, "--ignore-not-found", "--wait=false", check=False)
            kubectl("delete", "node", node, "--ignore-not-found", "--wait=false", check=False)


# ---- per-test plugin ---------------------------------------------------------------------------

@pytest.fixture
def kp(bed, run_plugin, tmp_path):
    """kp(*extra, dirs=None, env=None, pod_uid="", wait=True) starts a plugin for the bed's node
    on `dirs` (default: this test's PluginDirs under tmp_path) and waits until it serves."""
    default_dirs = PluginDirs.under(tmp_path)

    def start(*extra: str, dirs: PluginDirs | None = None, env: dict | None = None,
              pod_uid: str = "", wait: bool = True) -> PluginProcess:
        d = dirs or default_dirs
        args = [f"--simulate-profile={bed.profile}", *d.args(), *extra]
        if pod_uid:
            args.append(f"--pod-uid={pod_uid}")
        p = run_plugin(bed.node, *args, env=env)
        if wait:
            d.wait_serving(p, pod_uid)
        return p

    start.dirs = default_dirs
    return start


def _expected_devices(bed: Bed, key: str) -> list[dict]:
    r = bed.result(key)
    return [{"request_names": ["accel"], "pool_name": bed.node, "device_name": r["device"],
             "cdi_device_ids": [f"k8s.{DRIVER}/device={bed.uid(key)}-{r['device']}"]}]


def _env_key(device: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", device.upper())


def _validate(*paths: Path) -> None:
    p = subprocess.run(["python3", str(VALIDATE), *map(str, paths)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, f"cdi/validate.py failed (exit {p.returncode}):\n{p.stdout}{p.stderr}"


def _check_spec(bed: Bed, dirs: PluginDirs, key: str, sharing_env: dict[str, str]) -> dict:
    """The claim's CDI spec: exists (0644), names the device and the claim, carries `sharing_env`
    (suffix -> value, e.g. {"SHARING_STRATEGY": "TimeSlicing"}), and passes cdi/validate.py."""
    path = dirs.spec_path(bed.uid(key))
    assert path.is_file(), f"no CDI spec {path}; CDI root has {dirs.our_cdi_files()}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    copy = bed.spec_copies / f"{len(_SEEN_SPECS)}-{path.name}"
    shutil.copy(path, copy)
    _SEEN_SPECS.append(copy)
    _validate(path)

    spec = json.loads(path.read_text())
    ns, name, uid = bed.ref(key)
    dev = bed.result(key)["device"]
    k = f"ACCEL_DEVICE_{_env_key(dev)}"
    assert spec["kind"] == f"k8s.{DRIVER}/device"
    assert [d["name"] for d in spec["devices"]] == [f"{uid}-{dev}"]
    edits = spec["devices"][0]["containerEdits"]
    env = edits["env"]
    for want in (f"{k}={dev}", f"{k}_RESOURCE_CLAIM={ns}/{name}", f"{k}_RESOURCE_CLAIM_UID={uid}",
                 *(f"{k}_{s}={v}" for s, v in sharing_env.items())):
        assert want in env, f"{want!r} missing from the device env {env}"
    if "TIMESLICE_INTERVAL" not in sharing_env:
        assert not any(e.startswith(f"{k}_TIMESLICE_INTERVAL=") for e in env), env
    index = int(dev.rsplit("-", 1)[1])
    assert [n["path"] for n in edits.get("deviceNodes", [])] == [f"/dev/accel-sim{index}"]
    # One visible-devices variable per claim (two claims in one container never collide).
    assert f"ACCEL_VISIBLE_DEVICES_{_env_key(uid)}={dev}" in spec["containerEdits"]["env"]
    return spec


def _prepare_ok(socket: Path, *claims: sim.Claim, api: str = "v1") -> sim.SimResult:
    r = sim.prepare(socket, *claims, api=api)
    assert r.rc == EXIT_OK, str(r)
    return r


def _unprepare_ok(socket: Path, *claims: sim.Claim, api: str = "v1") -> sim.SimResult:
    r = sim.unprepare(socket, *claims, api=api)
    assert r.rc == EXIT_OK, str(r)
    for _, _, uid in claims:
        assert r.claim_error(uid) == "", str(r)
    return r


# ---- 1. handshake and calls --------------------------------------------------------------------

def test_registration_and_socket_modes(kp):
    kp()
    d = kp.dirs
    r = sim.register(d.registrar)
    assert r.rc == EXIT_OK, str(r)
    info = r.out
    assert info["type"] == "DRAPlugin"
    assert info["name"] == DRIVER
    assert info["endpoint"] == str(d.dra_socket()) and os.path.isabs(info["endpoint"])
    assert info["supported_versions"][:2] == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    assert info["registered"] is True and info["selected_api"] == "v1"
    for s in (d.dra_socket(), d.registration_socket()):
        st = s.stat()
        assert stat.S_ISSOCK(st.st_mode), s
        assert stat.S_IMODE(st.st_mode) == 0o600, f"{s} has mode {oct(stat.S_IMODE(st.st_mode))}"


@pytest.mark.parametrize("api", ["v1", "v1beta1"])
def test_prepare_unprepare_scheduler_allocated_claims(bed, kp, api):
    p = kp()
    d = kp.dirs
    sock = d.dra_socket()
    other_api = "v1beta1" if api == "v1" else "v1"
    ts, plain = bed.ref("ts"), bed.ref("plain")

    r = _prepare_ok(sock, ts, api=api)
    assert r.out["api"] == api
    assert r.devices(bed.uid("ts")) == _expected_devices(bed, "ts")
    spec = _check_spec(bed, d, "ts", {"SHARING_STRATEGY": "TimeSlicing",
                                      "TIMESLICE_INTERVAL": "Long"})
    mtime = d.spec_path(bed.uid("ts")).stat().st_mtime_ns

    # Idempotent: the same answer over both API versions, no rewrite.
    for again in (api, other_api):
        r2 = _prepare_ok(sock, ts, api=again)
        assert r2.devices(bed.uid("ts")) == _expected_devices(bed, "ts"), str(r2)
    assert d.spec_path(bed.uid("ts")).stat().st_mtime_ns == mtime
    assert json.loads(d.spec_path(bed.uid("ts")).read_text()) == spec

    # A second claim in one call with a repeat of the first: both answered.
    r3 = _prepare_ok(sock, ts, plain, api=api)
    assert r3.devices(bed.uid("plain")) == _expected_devices(bed, "plain")
    assert r3.devices(bed.uid("ts")) == _expected_devices(bed, "ts")
    _check_spec(bed, d, "plain", {"SHARING_STRATEGY": "Exclusive"})
    assert d.checkpoint_claims() == {bed.uid("ts"): "PrepareCompleted",
                                     bed.uid("plain"): "PrepareCompleted"}

    # Unprepare removes the spec and the checkpoint entry; again (unknown now) still succeeds.
    _unprepare_ok(sock, ts, api=api)
    assert not d.spec_path(bed.uid("ts")).exists()
    assert d.spec_uids() == {bed.uid("plain")}
    _unprepare_ok(sock, ts, api=other_api)
    _unprepare_ok(sock, plain, api=other_api)
    assert d.spec_uids() == set() and d.checkpoint_claims() == {}

    # Unprepare of a UID the plugin never saw, and an empty prepare, succeed.
    _unprepare_ok(sock, (bed.ns, "never-prepared", FAKE_UID), api=api)
    empty = _prepare_ok(sock, api=api)
    assert empty.out["claims"] == {} and empty.out["kubelet_errors"] == []
    assert p.alive()


# ---- 2. per-claim errors -----------------------------------------------------------------------

def test_per_claim_errors_name_the_cause_and_plugin_keeps_serving(bed, kp):
    p = kp()
    d = kp.dirs
    sock = d.dra_socket()
    ns = bed.ns

    def fails(claim: sim.Claim, *needles: str) -> str:
        r = sim.prepare(sock, claim)
        assert r.rc == EXIT_REJECTED, str(r)
        err = r.claim_error(claim[2])
        for n in needles:
            assert n in err, f"{n!r} not in the error of {claim}: {err}"
        assert r.devices(claim[2]) == []
        assert p.alive(), f"plugin died after a failed prepare; log:\n{p.log()[-3000:]}"
        return err

    fails((ns, "plain", FAKE_UID), f"ResourceClaim {ns}/plain has UID {bed.uid('plain')}",
          f"kubelet asked for UID {FAKE_UID}")
    fails((ns, "no-such-claim", FAKE_UID), f"ResourceClaim {ns}/no-such-claim not found")
    fails(bed.ref("other-node"), f"allocated from pool {bed.node}-elsewhere",
          f"this plugin serves pool {bed.node}", "another node")
    fails(bed.ref("other-driver"), f"has no devices of driver {DRIVER}", "gpu.example.com")
    fails(bed.ref("bad-strategy"), f"ResourceClaim {ns}/bad-strategy", "sharing.strategy",
          '"Turbo"', "TimeSlicing")
    fails(bed.ref("unknown-field"), f"ResourceClaim {ns}/unknown-field",
          "sharing.colour: unknown field")

    # A device held by another prepared claim.
    _prepare_ok(sock, bed.ref("plain"))
    dev = bed.result("plain")["device"]
    fails(bed.ref("dup"), f"device {dev} is already in use by ResourceClaim {ns}/plain",
          bed.uid("plain"))

    # Several claims in one call fail and succeed independently.
    r = sim.prepare(sock, bed.ref("ts"), bed.ref("bad-strategy"), (ns, "no-such-claim", FAKE_UID))
    assert r.rc == EXIT_REJECTED, str(r)
    assert r.claim_error(bed.uid("ts")) == "" and r.devices(bed.uid("ts")) == \
        _expected_devices(bed, "ts")
    assert "Turbo" in r.claim_error(bed.uid("bad-strategy"))
    assert "not found" in r.claim_error(FAKE_UID)

    # Nothing of the failed claims reached the disk; the good ones did.
    good = {bed.uid("plain"), bed.uid("ts")}
    assert d.spec_uids() == good
    assert d.checkpoint_claims() == {u: "PrepareCompleted" for u in good}
    assert "prepare of ResourceClaim" in p.log() and "failed" in p.log()

    # Still serving: a later good prepare of a fresh claim works.
    _unprepare_ok(sock, bed.ref("plain"))
    r = _prepare_ok(sock, bed.ref("dup"))
    assert r.devices(bed.uid("dup"))[0]["device_name"] == dev
    _unprepare_ok(sock, bed.ref("dup"), bed.ref("ts"))
    assert d.spec_uids() == set() and p.alive()


def test_unwritable_cdi_root_at_start_is_a_clear_one_line_error(bed, run_plugin, tmp_path):
    (tmp_path / "file").write_text("not a directory\n")
    dirs = PluginDirs(tmp_path / "reg", tmp_path / "plugins", tmp_path / "file" / "cdi")
    p = run_plugin(bed.node, f"--simulate-profile={bed.profile}", *dirs.args())
    rc = p.proc.wait(20)
    assert rc == 1, p.log()
    errors = [l for l in p.log().splitlines() if "error" in l.lower()]
    assert len(errors) == 1, p.log()
    assert errors[0].startswith("accel-dra-plugin: error: ") and str(dirs.cdi) in errors[0] and \
        "Not a directory" in errors[0], errors[0]
    assert not dirs.dra_socket().exists() and not dirs.registration_socket().exists()


def test_cdi_root_unwritable_after_start_fails_the_claim(bed, kp):
    p = kp()
    d = kp.dirs
    sock = d.dra_socket()
    assert d.cdi.is_dir()
    d.cdi.rmdir()
    d.cdi.write_text("the CDI root is now a regular file\n")

    r = sim.prepare(sock, bed.ref("plain"))
    assert r.rc == EXIT_REJECTED, str(r)
    err = r.claim_error(bed.uid("plain"))
    assert str(d.cdi) in err and f"ResourceClaim {bed.ns}/plain" in err, err
    assert p.alive()
    assert d.checkpoint_claims() == {}, "the failed claim stayed in the checkpoint"

    d.cdi.unlink()
    d.cdi.mkdir()
    _prepare_ok(sock, bed.ref("plain"))
    _check_spec(bed, d, "plain", {"SHARING_STRATEGY": "Exclusive"})
    _unprepare_ok(sock, bed.ref("plain"))
    assert d.spec_uids() == set()


# ---- 3. crash recovery -------------------------------------------------------------------------

PREPARE_POINTS = ["checkpoint-before-write", "atomic-write-before-rename",
                  "checkpoint-after-write", "prepare-after-checkpoint-started",
                  "prepare-after-cdi-write", "prepare-after-checkpoint-completed"]
# What the restarted plugin logs: (prepared claims kept, CDI specs re-created, interrupted
# prepares rolled back).
RECOVERY = {"checkpoint-before-write": (0, 0, 0), "atomic-write-before-rename": (0, 0, 0),
            "checkpoint-after-write": (0, 0, 1), "prepare-after-checkpoint-started": (0, 0, 1),
            "prepare-after-cdi-write": (0, 0, 1), "prepare-after-checkpoint-completed": (1, 0, 0),
            "unprepare-after-cdi-remove": (1, 1, 0)}


@pytest.mark.parametrize("point", [*PREPARE_POINTS, "unprepare-after-cdi-remove"])
def test_crash_recovery(bed, kp, point):
    d = kp.dirs
    sock = d.dra_socket()
    claim, uid = bed.ref("plain"), bed.uid("plain")

    crashing = kp(env={"ACCEL_DRA_CRASH_AT": point})
    written = None
    if point == "unprepare-after-cdi-remove":
        _prepare_ok(sock, claim)
        written = d.spec_path(uid).read_text()
        r = sim.unprepare(sock, claim)
    else:
        r = sim.prepare(sock, claim)
    assert r.rc == EXIT_CALL_FAILED, f"the call survived crash point {point}: {r}"
    crashing.proc.wait(10)
    assert crashing.stop(signal.SIGKILL) == -signal.SIGKILL, crashing.log()
    before = (d.checkpoint_claims(), d.spec_uids(), sorted(os.listdir(d.data_dir)))

    p = kp()  # same dirs, no crash point
    kept, recreated, rolled_back = RECOVERY[point]
    line = (f"checkpoint: {kept} prepared claims ({recreated} CDI specs re-created), {rolled_back} "
            f"interrupted prepares rolled back, 0 orphaned CDI specs removed")
    assert line in p.log(), f"state before restart {before}; log:\n{p.log()}"
    if rolled_back:
        assert f"rolling back ResourceClaim {bed.ns}/plain (uid {uid})" in p.log(), p.log()
    # Temp files of interrupted atomic writes are gone, in the data dir and in the CDI root.
    assert not [n for n in os.listdir(d.data_dir) if ".tmp-" in n], os.listdir(d.data_dir)
    assert [n for n in d.our_cdi_files() if not n.startswith(sim.SPEC_PREFIX)] == []

    # No leak: a spec exists iff the checkpoint lists the claim as PrepareCompleted.
    completed = {u for u, s in d.checkpoint_claims().items() if s == "PrepareCompleted"}
    assert d.spec_uids() == completed and set(d.checkpoint_claims()) == completed, \
        (f"after crash point {point} and restart: CDI specs for {d.spec_uids()}, checkpoint "
         f"{d.checkpoint_claims()} (before restart: {before}); log:\n{p.log()}")
    if written is not None:
        # The interrupted unprepare had removed the spec of a claim kubelet still considers
        # prepared: recovery writes the same spec again.
        assert f"re-created the CDI spec of prepared ResourceClaim {bed.ns}/plain (uid {uid})" \
            in p.log(), p.log()
        assert d.spec_path(uid).read_text() == written
    if uid in completed:
        # Kubelet may prepare a claim it considers prepared again (another pod sharing it): the
        # answer comes from the checkpoint, and its CDI spec is on disk.
        again = _prepare_ok(sock, claim)
        assert again.devices(uid) == _expected_devices(bed, "plain")
        _check_spec(bed, d, "plain", {"SHARING_STRATEGY": "Exclusive"})

    # What kubelet does next: retry the failed call, then carry on.
    if point == "unprepare-after-cdi-remove":
        _unprepare_ok(sock, claim)
        assert d.our_cdi_files() == [] and d.checkpoint_claims() == {}
    r = _prepare_ok(sock, claim)
    assert r.devices(uid) == _expected_devices(bed, "plain")
    _check_spec(bed, d, "plain", {"SHARING_STRATEGY": "Exclusive"})
    _prepare_ok(sock, bed.ref("ts"))
    _check_spec(bed, d, "ts", {"SHARING_STRATEGY": "TimeSlicing", "TIMESLICE_INTERVAL": "Long"})
    _unprepare_ok(sock, claim, bed.ref("ts"))
    assert d.our_cdi_files() == [] and d.checkpoint_claims() == {}
    assert p.alive()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_corrupt_checkpoint_is_moved_aside(bed, kp, damage):
    """A corrupt checkpoint is moved aside. The claims it recorded are rebuilt from their CDI
    specs, which stay (issue 11: they were deleted as orphans, so containers of running pods
    could not restart); the health service's "recovery" service says so, liveness does not."""
    d = kp.dirs
    uid = bed.uid("plain")
    if damage == "garbage":
        d.data_dir.mkdir(parents=True)
        bad = b"{not json at all\xff\n"
        d.checkpoint.write_bytes(bad)
    else:  # a real checkpoint (one prepared claim) cut in half, or with one flipped bit
        first = kp()
        _prepare_ok(d.dra_socket(), bed.ref("plain"))
        assert first.stop() == 0
        spec = d.spec_path(uid).read_bytes()
        bad = bytearray(d.checkpoint.read_bytes())
        if damage == "truncated":
            bad = bad[: len(bad) // 2]
        else:
            bad[len(bad) // 2] ^= 0x01
        bad = bytes(bad)
        d.checkpoint.write_bytes(bad)
    port = sim.free_port()
    p = kp(f"--healthcheck-port={port}", "--healthcheck-address=127.0.0.1")
    aside = sorted(d.data_dir.glob("checkpoint.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bad, os.listdir(d.data_dir)
    loud = [l for l in p.log().splitlines() if " E " in l and "corrupt" in l]
    assert loud and str(d.checkpoint) in loud[0] and str(aside[0]) in loud[0], p.log()
    addr = f"127.0.0.1:{port}"
    r = sim.healthcheck(addr, service="recovery")
    assert r.rc == EXIT_REJECTED and r.out == {"status": "NOT_SERVING"}, str(r)
    assert "recovery" in p.log() and f"moved aside to {aside[0]}" in p.log(), p.log()
    r = sim.healthcheck(addr)
    assert r.rc == EXIT_OK and r.out == {"status": "SERVING"}, str(r)
    if damage == "garbage":
        assert not d.checkpoint.exists()
    else:
        # The claim is rebuilt from its spec, which is kept as it was.
        assert "1 prepared claims (0 CDI specs re-created), 0 interrupted prepares rolled " \
               "back, 0 orphaned CDI specs removed" in p.log(), p.log()
        assert "rebuilt 1 prepared claim(s) from their CDI specs" in p.log(), p.log()
        assert d.spec_path(uid).read_bytes() == spec
        assert d.checkpoint_claims() == {uid: "PrepareCompleted"}
        # kubelet's calls work on the rebuilt claim: prepare is answered from the record (the
        # spec does not hold request names: none, which means every request of the claim),
        # unprepare removes it; a new prepare then starts from the claim object again.
        r = _prepare_ok(d.dra_socket(), bed.ref("plain"))
        rebuilt = [dict(x, request_names=[]) for x in _expected_devices(bed, "plain")]
        assert r.devices(uid) == rebuilt
        assert d.spec_path(uid).read_bytes() == spec
        _unprepare_ok(d.dra_socket(), bed.ref("plain"))
        assert d.spec_uids() == set() and d.checkpoint_claims() == {}
    r = _prepare_ok(d.dra_socket(), bed.ref("plain"))
    assert r.devices(bed.uid("plain")) == _expected_devices(bed, "plain")
    _check_spec(bed, d, "plain", {"SHARING_STRATEGY": "Exclusive"})
    assert d.checkpoint_claims() == {bed.uid("plain"): "PrepareCompleted"}
    _unprepare_ok(d.dra_socket(), bed.ref("plain"))
    assert d.spec_uids() == set() and d.checkpoint_claims() == {}


# ---- 4. health ---------------------------------------------------------------------------------

def test_healthcheck_follows_the_dra_socket(bed, kp):
    port = sim.free_port()
    p = kp(f"--healthcheck-port={port}", "--healthcheck-address=127.0.0.1")
    addr = f"127.0.0.1:{port}"
    r = sim.healthcheck(addr)
    assert r.rc == EXIT_OK and r.out == {"status": "SERVING"}, str(r)
    kp.dirs.dra_socket().unlink()
    r = wait_for(lambda: (x := sim.healthcheck(addr)).rc == EXIT_REJECTED and x, 10,
                 "NOT_SERVING after the DRA socket was deleted")
    assert r.out == {"status": "NOT_SERVING"}, str(r)
    assert p.alive()
    assert p.stop() == 0


# ---- 5. rolling update -------------------------------------------------------------------------

def test_rolling_update_two_pod_uids_side_by_side(bed, kp):
    """maxSurge 1: the old and the new plugin pod serve at once on distinct sockets and share
    the checkpoint, so either can answer kubelet for any claim."""
    d = kp.dirs
    kp(pod_uid="A")
    r_a = _prepare_ok(d.dra_socket("A"), bed.ref("plain"))
    b = kp(pod_uid="B", wait=False)
    d.wait_serving(b, "B", timeout=10)
    assert d.dra_socket("A") != d.dra_socket("B")
    assert sim.register(d.registrar, pod_uid="A").out["endpoint"] == str(d.dra_socket("A"))
    assert sim.register(d.registrar, pod_uid="B").out["endpoint"] == str(d.dra_socket("B"))
    # B answers for the claim A prepared (from the shared checkpoint), without re-preparing it.
    r_b = _prepare_ok(d.dra_socket("B"), bed.ref("plain"))
    assert r_b.devices(bed.uid("plain")) == r_a.devices(bed.uid("plain"))
    # A conflict check made by one instance sees the other's claims.
    r = sim.prepare(d.dra_socket("B"), bed.ref("dup"))
    assert r.rc == EXIT_REJECTED and "already in use" in r.claim_error(bed.uid("dup")), str(r)
    # Unprepare through B; A then sees the claim gone and prepares it again from scratch.
    _unprepare_ok(d.dra_socket("B"), bed.ref("plain"))
    assert d.spec_uids() == set()
    r = _prepare_ok(d.dra_socket("A"), bed.ref("plain"))
    assert r.devices(bed.uid("plain")) == r_a.devices(bed.uid("plain"))
    _unprepare_ok(d.dra_socket("A"), bed.ref("plain"))


def test_rolling_update_handover_when_old_pod_stops(bed, kp):
    """The old pod goes away: its sockets disappear, the new one keeps serving its claims."""
    d = kp.dirs
    a = kp(pod_uid="A")
    r_a = _prepare_ok(d.dra_socket("A"), bed.ref("plain"))
    b = kp(pod_uid="B", wait=False)
    d.wait_serving(b, "B", timeout=10)
    assert a.stop() == 0
    assert not d.dra_socket("A").exists() and not d.registration_socket("A").exists()
    assert d.dra_socket("B").exists()
    reg = sim.register(d.registrar, pod_uid="B")
    assert reg.rc == EXIT_OK and reg.out["endpoint"] == str(d.dra_socket("B")), str(reg)
    r_b = _prepare_ok(d.dra_socket("B"), bed.ref("plain"))
    assert r_b.devices(bed.uid("plain")) == r_a.devices(bed.uid("plain"))
    _unprepare_ok(d.dra_socket("B"), bed.ref("plain"))
    assert d.spec_uids() == set()


# ---- 6. shutdown -------------------------------------------------------------------------------

def test_sigterm_exits_0_and_removes_both_sockets(kp):
    p = kp()
    d = kp.dirs
    assert d.dra_socket().exists() and d.registration_socket().exists()
    assert p.stop(signal.SIGTERM) == 0, p.log()
    assert not d.dra_socket().exists() and not d.registration_socket().exists(), \
        (os.listdir(d.data_dir), os.listdir(d.registrar))
    assert "received SIGTERM, shutting down" in p.log()


# ---- every spec seen in this module ------------------------------------------------------------

def test_every_spec_written_validates():
    if not _SEEN_SPECS:
        pytest.skip("no test of this module wrote a CDI spec in this run")
    _validate(*_SEEN_SPECS)


# ---- claims deleted behind the plugin's back ---------------------------------------------------

def _allocated_claim(bed, kubectl, prefix: str, taken: set[str]) -> sim.Claim:
    """A standalone claim allocated by hand (admin) to a device of the bed's node that neither the
    bed's claims nor `taken` use (the device is added to `taken`)."""
    used = {bed.result(k)["device"] for k in bed.claims} | taken
    free = sorted({f"gpu-{i}" for i in range(DEVICE_COUNT)} - used)[0]
    taken.add(free)
    name = prefix + "-" + secrets.token_hex(3)
    kubectl("apply", "-n", bed.ns, "-f", "-", input=f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: {name}
spec:{_claim_spec(bed.device_class)}""")
    patch = {"status": {"allocation": {"devices": {"results": [
        {"request": "accel", "driver": DRIVER, "pool": bed.node, "device": free}]}}}}
    kubectl("patch", "resourceclaim", name, "-n", bed.ns, "--subresource=status", "--type=merge",
            "-p", json.dumps(patch))
    claim = kubectl.json("get", "resourceclaim", name, "-n", bed.ns)
    return bed.ns, name, claim["metadata"]["uid"]


def test_prepared_claim_deleted_in_the_apiserver_is_cleaned_up(bed, kp, kubectl, wait_for):
    """The plugin's periodic sweep (--cleanup-interval) unprepares a claim whose ResourceClaim is
    gone, even when kubelet never calls NodeUnprepareResources: the real apiserver's NotFound
    (a Status naming the claim) is still recognised as "deleted"."""
    ref = _allocated_claim(bed, kubectl, "gone", set())
    name = ref[1]
    d = kp.dirs
    p = kp("--cleanup-interval=0.5")
    _prepare_ok(d.dra_socket(), ref)
    assert d.spec_uids() == {ref[2]} and ref[2] in d.checkpoint_claims()

    kubectl("delete", "resourceclaim", name, "-n", bed.ns, "--wait=false")
    kubectl("patch", "resourceclaim", name, "-n", bed.ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False)
    wait_for(lambda: not d.spec_uids() and ref[2] not in d.checkpoint_claims(), 10,
             "the sweep to remove the deleted claim's CDI spec and checkpoint entry")
    assert f"cleaned up ResourceClaim {bed.ns}/{name}" in p.log(), p.log()
    assert "no longer exists (confirmed by a second read)" in p.log(), p.log()
    assert p.alive()


def test_prepared_claim_deallocated_in_the_apiserver_is_cleaned_up(bed, kp, kubectl, wait_for):
    """A claim that still exists but is no longer allocated (status.allocation cleared) is cleaned
    up by the sweep; a claim still allocated to this node is kept through the same sweeps."""
    taken: set[str] = set()
    freed = _allocated_claim(bed, kubectl, "dealloc", taken)
    kept = _allocated_claim(bed, kubectl, "kept", taken)
    d = kp.dirs
    p = kp("--cleanup-interval=0.5")
    _prepare_ok(d.dra_socket(), freed, kept)
    assert d.spec_uids() == {freed[2], kept[2]}

    kubectl("patch", "resourceclaim", freed[1], "-n", bed.ns, "--subresource=status",
            "--type=merge", "-p", '{"status":{"allocation":null}}')
    wait_for(lambda: d.spec_uids() == {kept[2]} and freed[2] not in d.checkpoint_claims(), 10,
             "the sweep to remove the deallocated claim's CDI spec and checkpoint entry")
    assert (f"cleaned up ResourceClaim {bed.ns}/{freed[1]} (uid {freed[2]}): its allocation was "
            "cleared (confirmed by a second read)") in p.log(), p.log()
    time.sleep(1.5)  # a few more sweeps
    assert d.spec_uids() == {kept[2]} and kept[2] in d.checkpoint_claims()
    assert f"cleaned up ResourceClaim {bed.ns}/{kept[1]} " not in p.log(), p.log()
    assert p.alive()


def test_real_apiserver_not_found_shapes(cluster, bed):
    """What the plugin's kube client relies on, as the real apiserver answers it: a claim that does
    not exist is a Status of reason NotFound whose details name it (name, group, kind = resource);
    a group version the apiserver does not serve is a 404 that does not name the claim, which the
    client must not take as "deleted"."""
    base = f"/apis/resource.k8s.io/v1/namespaces/{bed.ns}/resourceclaims/"
    status, body = cluster.request(base + "no-such-claim")
    assert status == 404, body
    assert isinstance(body, dict) and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["details"]["name"] == "no-such-claim", body
    assert body["details"]["group"] == "resource.k8s.io", body
    assert body["details"]["kind"] == "resourceclaims", body

    status, body = cluster.request(
        f"/apis/resource.k8s.io/v1alpha9/namespaces/{bed.ns}/resourceclaims/no-such-claim")
    assert status == 404, body
    # Kubernetes 1.35 and 1.37 answer a Status here, but one that names no object (a mux that does not
    # serve the path answers a bare "404 page not found"): neither names the claim.
    assert not (isinstance(body, dict) and body.get("details", {}).get("name") == "no-such-claim"), body


# ---- device metadata (KEP-5304, --device-metadata) ---------------------------------------------

METADATA_DIR = "/var/run/kubernetes.io/dra-device-attributes"


def test_device_metadata_file_spec_and_cdi_id(bed, kp):
    """With --device-metadata, prepare answers the metadata CDI ID after the device's own (first
    device of the request), the DeviceMetadata file is on disk, and its CDI spec bind-mounts it at
    the KEP's path: resourceclaims/<claim> for a claim by name, resourceclaimtemplates/<pod claim
    name> for one from a template (the bed's `ts`, pod claim name `accel`). Unprepare removes both."""
    kp("--device-metadata")
    d = kp.dirs
    keys = {"plain": f"resourceclaims/{bed.ref('plain')[1]}",
            "ts": "resourceclaimtemplates/accel"}
    r = _prepare_ok(d.dra_socket(), *(bed.ref(k) for k in keys))
    for key, where in keys.items():
        ns, name, uid = bed.ref(key)
        dev = bed.result(key)["device"]
        assert r.devices(uid)[0]["cdi_device_ids"] == [
            f"k8s.{DRIVER}/device={uid}-{dev}", f"{DRIVER}/metadata={uid}_accel"], str(r)

        file = d.data_dir / "dra-device-metadata" / f"{uid}_accel.json"
        assert file.is_file(), f"no metadata file {file}"
        meta = json.loads(file.read_text())
        assert meta["apiVersion"] == "metadata.resource.k8s.io/v1beta1"
        assert meta["kind"] == "DeviceMetadata"
        assert meta["metadata"] == {"name": name, "namespace": ns, "uid": uid, "generation": 1}
        assert meta.get("podClaimName") == ("accel" if key == "ts" else None), meta
        [req] = meta["requests"]
        assert req["name"] == "accel"
        [device] = req["devices"]
        assert (device["driver"], device["pool"], device["name"]) == (DRIVER, bed.node, dev)
        assert device["attributes"], device  # the published attributes, e.g. the UUID

        spec_path = d.cdi / f"{DRIVER}-metadata_{uid}.json"
        _validate(spec_path)
        spec = json.loads(spec_path.read_text())
        assert spec["kind"] == f"{DRIVER}/metadata"
        [cdi_dev] = spec["devices"]
        assert cdi_dev["name"] == f"{uid}_accel"
        [mount] = cdi_dev["containerEdits"]["mounts"]
        assert mount["hostPath"] == str(file)
        assert mount["containerPath"] == f"{METADATA_DIR}/{where}/accel/{DRIVER}-metadata.json"
        assert "ro" in mount["options"] and "bind" in mount["options"]

    _unprepare_ok(d.dra_socket(), *(bed.ref(k) for k in keys))
    assert list((d.data_dir / "dra-device-metadata").iterdir()) == []
    assert not [p.name for p in d.cdi.iterdir() if "metadata" in p.name]


def test_device_metadata_off_by_default(bed, kp):
    kp()
    uid = bed.uid("plain")
    r = _prepare_ok(kp.dirs.dra_socket(), bed.ref("plain"))
    assert r.devices(uid) == _expected_devices(bed, "plain"), str(r)
    assert not (kp.dirs.data_dir / "dra-device-metadata").exists()
    _unprepare_ok(kp.dirs.dra_socket(), bed.ref("plain"))
