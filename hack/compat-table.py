#!/usr/bin/env python3
"""Renders the compatibility table of docs/compatibility.md from the rows the compatibility job
wrote (tests/integration/test_compat.py: <results>/<gitVersion>.json, one per Kubernetes version).

  hack/compat-table.py --results DIR --doc docs/compatibility.md --versions 1.34.4 ... --check
  hack/compat-table.py --results DIR --doc docs/compatibility.md --versions 1.34.4 ... --write

The table sits between the lines `<!-- compat-table begin -->` and `<!-- compat-table end -->`.
--check exits 1 (printing the table it expected) when a version has no row or the doc differs;
--write replaces the table in the doc.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

BEGIN, END = "<!-- compat-table begin -->", "<!-- compat-table end -->"
FEATURES = [  # (row key, column title)
    ("prioritizedList", "prioritized list"),
    ("adminAccess", "admin access"),
    ("extendedResource", "extended resources"),
    ("deviceTaints", "device taints"),
    ("partitionableDevices", "partitionable devices"),
    ("consumableCapacity", "consumable capacity"),
]


def mark(ok: object) -> str:
    return "yes" if ok is True else "no" if ok is False else "?"


def render(rows: list[dict]) -> str:
    head = ["Kubernetes", "resource.k8s.io served", "plugin uses", "slices published",
            "CEL allocation", "kubelet DRA v1", "kubelet DRA v1beta1",
            *(title for _, title in FEATURES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c = r.get("checks", {})
        f = r.get("features", {})
        cells = [r["kubernetes"], ", ".join(r.get("servedResourceVersions", [])),
                 r.get("pluginResourceVersion", "?"), mark(c.get("slicesPublished")),
                 mark(c.get("celAllocation")), mark(c.get("kubeletV1")),
                 mark(c.get("kubeletV1beta1")), *(mark(f.get(k)) for k, _ in FEATURES)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True, type=pathlib.Path)
    ap.add_argument("--doc", required=True, type=pathlib.Path)
    ap.add_argument("--versions", nargs="+", required=True)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    a = ap.parse_args()

    rows, missing = [], []
    for v in sorted(a.versions, key=lambda s: [int(x) for x in s.split(".")]):
        p = a.results / f"v{v}.json"
        if not p.is_file():
            missing.append(str(p))
            continue
        rows.append(json.loads(p.read_text()))
    if missing:
        print("no compatibility row for: " + ", ".join(missing), file=sys.stderr)
        return 1
    table = render(rows)
    doc = a.doc.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{a.doc} has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    before, rest = doc.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{BEGIN}\n{table}\n{END}{after}"
    if a.write:
        a.doc.write_text(new)
        return 0
    if new != doc:
        print(f"{a.doc} is not what this run found; the table should read:\n\n{table}\n\n"
              f"(update it with hack/compat-table.py --write --results {a.results} --doc {a.doc} "
              f"--versions {' '.join(a.versions)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
