#!/usr/bin/env python3
"""Writes a single-layer OCI image archive (an OCI image layout in a tar) from files on disk.

    oci-image.py OUT.tar NAME:TAG [--entrypoint JSON] [--cmd JSON] SPEC...

Each SPEC is one of:
    file:DEST=SRC[:MODE]     a regular file copied from SRC
    dir:DEST[:MODE]          a directory
    link:DEST=TARGET         a symbolic link

Everything is owned by root with mtime 0, so the same inputs give the same digests. The
index carries io.containerd.image.name (the full reference, which `ctr images import` uses) and
org.opencontainers.image.ref.name (the tag, as in the OCI image layout spec).
"""
import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile


def add(tar, name, **kw):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    data = kw.pop("data", None)
    for k, v in kw.items():
        setattr(info, k, v)
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def build_layer(specs):
    entries = []
    for spec in specs:
        kind, _, rest = spec.partition(":")
        if kind == "file":
            dest, _, src = rest.partition("=")
            src, _, mode = src.partition(":")
            with open(src, "rb") as f:
                data = f.read()
            entries.append((dest, dict(type=tarfile.REGTYPE, mode=int(mode or "755", 8), data=data)))
        elif kind == "dir":
            dest, _, mode = rest.partition(":")
            entries.append((dest, dict(type=tarfile.DIRTYPE, mode=int(mode or "755", 8))))
        elif kind == "link":
            dest, _, target = rest.partition("=")
            entries.append((dest, dict(type=tarfile.SYMTYPE, mode=0o777, linkname=target)))
        else:
            sys.exit("unknown spec: " + spec)
    # Parent directories first (sorted paths do that), each once.
    seen = {d for d, e in entries if e["type"] == tarfile.DIRTYPE}
    for dest, _ in list(entries):
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                entries.append((d, dict(type=tarfile.DIRTYPE, mode=0o755)))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dest, kw in sorted(entries, key=lambda e: e[0]):
            add(tar, dest, **kw)
    return buf.getvalue()


def blob(out, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    add(out, "blobs/sha256/" + digest[7:], type=tarfile.REGTYPE, mode=0o644, data=data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("ref")
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    ap.add_argument("specs", nargs="+")
    a = ap.parse_args()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    layer = build_layer(a.specs)
    cfg = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if a.entrypoint:
        cfg["Entrypoint"] = json.loads(a.entrypoint)
    if a.cmd:
        cfg["Cmd"] = json.loads(a.cmd)
    config = {
        "architecture": arch, "os": "linux", "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "hack/local-cluster/oci-image.py"}],
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:
        add(out, "blobs", type=tarfile.DIRTYPE, mode=0o755)
        add(out, "blobs/sha256", type=tarfile.DIRTYPE, mode=0o755)
        layer_desc = blob(out, layer, "application/vnd.oci.image.layer.v1.tar")
        config_desc = blob(out, json.dumps(config, sort_keys=True).encode(),
                           "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        manifest_desc = blob(out, json.dumps(manifest, sort_keys=True).encode(),
                             "application/vnd.oci.image.manifest.v1+json")
        manifest_desc["platform"] = {"architecture": arch, "os": "linux"}
        manifest_desc["annotations"] = {
            "io.containerd.image.name": a.ref,
            "org.opencontainers.image.ref.name": a.ref.rsplit(":", 1)[1] if ":" in a.ref else "latest",
        }
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        add(out, "oci-layout", type=tarfile.REGTYPE, mode=0o644,
            data=json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add(out, "index.json", type=tarfile.REGTYPE, mode=0o644, data=json.dumps(index, sort_keys=True).encode())
    os.replace(tmp, a.out)
    print(manifest_desc["digest"])


if __name__ == "__main__":
    main()
