#!/usr/bin/env python3
"""Every flag that a binary's --help shows is in the configuration reference.

For each (binary, subcommand) below, runs `<binary> [subcommand] --help`, takes the flags of its
option lines (CLI11: "  -v,--v INT ...", "  --flag TEXT ..."; accel-dra-inspect: its usage
line) and checks that each appears in backquotes (`--flag` or `--flag=...`) in
docs/configuration.md. A short-only flag (-v) is looked up as `-v`.

  check_config_reference.py --build-dir BUILD [--doc docs/configuration.md]
Exit status 0 when all are documented, else one line per missing flag and status 1.
"""
import argparse
import pathlib
import re
import subprocess
import sys

BINARIES = [
    ("src/cmd/plugin/accel-dra-plugin", []),
    ("src/cmd/plugin/accel-dra-plugin", ["discover"]),
    ("src/cmd/plugin/accel-dra-plugin", ["webhook"]),
    ("src/cmd/probe/accel-dra-probe", []),
    ("src/cmd/probe/accel-dra-probe", ["run"]),
    ("src/cmd/probe/accel-dra-probe", ["inspect"]),
    ("src/cmd/inspect/accel-dra-inspect", []),
]
OPTION_LINE = re.compile(r"^\s{2}(-[A-Za-z0-9][-A-Za-z0-9,]*)")
USAGE_FLAG = re.compile(r"\[(--?[a-z][-a-z0-9]*)")


def flags_of(help_text: str) -> set[str]:
    flags = set()
    for line in help_text.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            names = m.group(1).split(",")
            longs = [n for n in names if n.startswith("--")]
            flags.update(longs or names)
        elif line.lower().startswith("usage:"):
            flags.update(USAGE_FLAG.findall(line))
    return flags


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True, type=pathlib.Path)
    ap.add_argument("--doc", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parents[2] / "docs/configuration.md")
    args = ap.parse_args()
    doc = args.doc.read_text()
    documented = set(re.findall(r"`(--?[A-Za-z0-9][-A-Za-z0-9]*)(?:[= ][^`]*)?`", doc))
    missing, checked = [], 0
    for binary, sub in BINARIES:
        path = args.build_dir / binary
        p = subprocess.run([str(path), *sub, "--help"], capture_output=True, text=True,
                           timeout=30)
        text = p.stdout + p.stderr
        flags = flags_of(text)
        if not flags:
            missing.append(f"{path.name} {' '.join(sub)}: no flags found in --help:\n{text}")
        for flag in sorted(flags):
            checked += 1
            if flag not in documented:
                missing.append(f"{path.name} {' '.join(sub)}: {flag} is not in {args.doc.name}")
    for m in missing:
        print(m)
    if missing:
        return 1
    print(f"configuration reference ok: {checked} flags of {len(BINARIES)} commands documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
