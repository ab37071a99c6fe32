#!/usr/bin/env python3
"""Every value of deploy/helm/accel-dra/values.yaml is documented in docs/install.md: each leaf
key path (e.g. `metrics.podMonitor.interval`; a map or list value left empty or a list counts as
a leaf) must appear there in backquotes. Usage: check_install_docs.py REPO_ROOT"""
import sys
from pathlib import Path

import yaml


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


def main() -> int:
    root = Path(sys.argv[1])
    values = yaml.safe_load((root / "deploy/helm/accel-dra/values.yaml").read_text())
    doc = (root / "docs/install.md").read_text()
    missing = [p for p in leaves(values) if f"`{p}`" not in doc]
    if missing:
        print("values of deploy/helm/accel-dra/values.yaml not documented in docs/install.md "
              "(add a row with the key in backquotes):", file=sys.stderr)
        for p in missing:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"every value of values.yaml is in docs/install.md ({len(list(leaves(values)))} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
