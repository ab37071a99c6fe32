"""Bad input to accel-dra-plugin: one clear line on stderr and a non-zero exit, never a crash."""

from __future__ import annotations

import json
import subprocess

import yaml

from plugin_proc import plugin_binary


def run(*args, timeout=30):
    p = subprocess.run([plugin_binary(), *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode >= 0, f"crashed with signal {-p.returncode}: {p.stderr}"
    return p


def one_error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got: {p.stderr!r}"
    assert lines[0].startswith("accel-dra-plugin: error: "), lines[0]
    return lines[0]


def test_unknown_flag():
    p = run("--no-such-flag")
    assert p.returncode == 2
    assert "--no-such-flag" in one_error_line(p)


def test_bad_flag_value():
    p = run("--simulate=lots")
    assert p.returncode == 2
    assert "simulate" in one_error_line(p)


def test_unreadable_kubeconfig(tmp_path):
    p = run("--node-name=n", "--simulate=1", f"--kubeconfig={tmp_path}/missing")
    assert p.returncode == 1
    assert "missing" in one_error_line(p)
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nclusters: [::\n")
    p = run("--node-name=n", "--simulate=1", f"--kubeconfig={bad}")
    assert p.returncode == 1
    assert str(bad) in one_error_line(p)


def test_unreachable_apiserver(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    p = run("--node-name=n", "--simulate=1", f"--kubeconfig={kc}", "--startup-timeout=1")
    assert p.returncode == 1
    line = one_error_line(p)
    assert "127.0.0.1:1" in line, line


def test_missing_node_name():
    p = run("--simulate=1")
    assert p.returncode == 1
    assert "--node-name" in one_error_line(p)


def test_discover_without_cluster(tmp_path):
    p = run("discover", "--simulate=3", "--node-name=n1", "-o", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    devs = out["items"][0]["spec"]["devices"]
    assert [d["name"] for d in devs] == ["gpu-0", "gpu-1", "gpu-2"]
    p = run("discover", "--simulate=3", "--node-name=n1")  # yaml by default
    assert yaml.safe_load(p.stdout) == out
    profile = tmp_path / "p.yaml"
    profile.write_text("devices: [{count: 1, driverVersion: custom}]\n")
    p = run("discover", f"--simulate-profile={profile}")
    assert p.returncode == 1
    assert "driverVersion" in one_error_line(p)
