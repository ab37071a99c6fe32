#!/usr/bin/env python3
"""Checks the component layering that docs/architecture.md declares against the code.

The "Components" table of docs/architecture.md is the single source of truth: one row per
component with its folder, its CMake targets and the components it may depend on. This check
fails when
  * a CMake target under src/ or proto/ is not listed, or a listed target does not exist;
  * a folder under src/ (or include/accel_dra/) is no component's folder;
  * a source or public header of a component includes a header of a component it may not
    depend on (accel_dra/<component>/..., or generated gRPC headers, which belong to `proto`);
  * a target links an accel_dra_* target of a component it may not depend on;
  * the declared dependencies have a cycle;
  * a path the document names in backquotes (src/..., include/..., hack/..., tests/...) is gone.
Exit status 0 when everything agrees; otherwise one line per problem and status 1.

  hack/check-layers.py [--root DIR] [--doc FILE]
"""
import argparse
import pathlib
import re
import sys

PROTO_INCLUDE = re.compile(r'#include\s+"(dra|dra-health|pluginregistration|grpc)/[^"]*\.pb\.h"')
OUR_INCLUDE = re.compile(r'#include\s+"accel_dra/([A-Za-z0-9_]+)(/|\.h)')
TARGET_DEF = re.compile(r'\badd_(library|executable)\(\s*([A-Za-z0-9_.-]+)')
LINK = re.compile(r'\btarget_link_libraries\(\s*([A-Za-z0-9_.-]+)([^)]*)\)', re.S)


def parse_table(doc: pathlib.Path):
    """Rows of the table whose header starts with '| component |', as dicts."""
    rows, header = [], None
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')] if line.startswith('|') else None
        if cells is None:
            if header is not None and rows:
                break
            continue
        if header is None:
            if cells and cells[0].lower() == 'component':
                header = [c.lower() for c in cells]
            continue
        if set(''.join(cells)) <= set('-: '):
            continue
        rows.append(dict(zip(header, cells)))
    return rows


def names(cell: str):
    """`a`, `b` → [a, b]; '—' or '-' → []."""
    return re.findall(r'`([^`]+)`', cell)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default=pathlib.Path(__file__).resolve().parent.parent, type=pathlib.Path)
    ap.add_argument('--doc', default=None, type=pathlib.Path)
    args = ap.parse_args()
    root = args.root
    doc = args.doc or root / 'docs/architecture.md'
    problems = []

    rows = parse_table(doc)
    if not rows:
        print(f'{doc}: no table with a "component" column')
        return 1
    comps = {}
    for r in rows:
        name = names(r.get('component', ''))
        if len(name) != 1:
            problems.append(f'{doc}: row {r} does not name one component in backquotes')
            continue
        comps[name[0]] = {
            'folders': names(r.get('folder', '')),
            'targets': names(r.get('cmake targets', '')),
            'deps': names(r.get('depends on', '')),
        }
    for c, info in comps.items():
        for d in info['deps']:
            if d not in comps:
                problems.append(f'{doc}: {c} depends on unknown component {d}')

    # Acyclic.
    state = {}

    def visit(c, stack):
        if state.get(c) == 'done':
            return
        if state.get(c) == 'active':
            problems.append('dependency cycle: ' + ' -> '.join(stack + [c]))
            return
        state[c] = 'active'
        for d in comps.get(c, {}).get('deps', []):
            visit(d, stack + [c])
        state[c] = 'done'

    for c in comps:
        visit(c, [])

    # Folder → component.
    folder_of = {}
    for c, info in comps.items():
        for f in info['folders']:
            folder_of[f.rstrip('/')] = c

    def component_of(path: pathlib.Path):
        rel = path.relative_to(root).as_posix()
        best = None
        for f, c in folder_of.items():
            if rel == f or rel.startswith(f + '/'):
                if best is None or len(f) > len(best[0]):
                    best = (f, c)
        return best[1] if best else None

    for base in ['src', 'include/accel_dra']:
        for d in sorted((root / base).iterdir()):
            if d.is_dir() and component_of(d) is None:
                problems.append(f'{d.relative_to(root)}: folder of no component in {doc.name}')

    allowed = {c: set(info['deps']) | {c} for c, info in comps.items()}

    # Includes.
    for base in ['src', 'include/accel_dra']:
        for p in sorted((root / base).rglob('*')):
            if p.suffix not in ('.cc', '.h', '.in') or not p.is_file():
                continue
            c = component_of(p)
            if c is None:
                continue
            for n, line in enumerate(p.read_text(errors='replace').splitlines(), 1):
                m = OUR_INCLUDE.search(line)
                dep = None
                if m:
                    dep = 'common' if m.group(2) == '.h' else m.group(1)  # build_info.h
                elif PROTO_INCLUDE.search(line):
                    dep = 'proto'
                if dep and dep not in allowed.get(c, set()):
                    problems.append(f'{p.relative_to(root)}:{n}: {c} includes {dep} '
                                    f'({line.strip()}), which it may not depend on')

    # CMake targets and links.
    target_comp = {}
    links = []
    for cm in sorted(list((root / 'src').rglob('CMakeLists.txt')) + [root / 'proto/CMakeLists.txt']):
        text = re.sub(r'#[^\n]*', '', cm.read_text())
        c = component_of(cm.parent)
        for m in TARGET_DEF.finditer(text):
            target_comp[m.group(2)] = c
        for m in LINK.finditer(text):
            links.append((cm, m.group(1), re.findall(r'\baccel_dra_[A-Za-z0-9_]+', m.group(2))))
    listed = {t: c for c, info in comps.items() for t in info['targets']}
    for t, c in sorted(target_comp.items()):
        if t not in listed:
            problems.append(f'CMake target {t} (in {c}) is not listed in {doc.name}')
        elif listed[t] != c:
            problems.append(f'CMake target {t} is defined in {c}\'s folder but listed under {listed[t]}')
    for t, c in sorted(listed.items()):
        if t not in target_comp:
            problems.append(f'{doc.name} lists target {t} under {c}, but no CMakeLists.txt defines it')
    for cm, t, deps in links:
        c = target_comp.get(t)
        if c is None:
            continue
        for d in deps:
            dc = target_comp.get(d)
            if dc is not None and dc not in allowed.get(c, set()):
                problems.append(f'{cm.relative_to(root)}: {t} ({c}) links {d} ({dc}), '
                                f'which {c} may not depend on')

    # Paths the document names must exist (a moved file makes the doc say so).
    for m in re.finditer(r'`((?:src|include|hack|tests|docs|proto|deploy|bench)/[A-Za-z0-9_./-]*)`',
                         doc.read_text()):
        path = m.group(1).rstrip('/')
        if '*' not in path and '<' not in path and not (root / path).exists():
            problems.append(f'{doc.name} names {path}, which does not exist')

    for p in problems:
        print(p)
    if problems:
        print(f'{len(problems)} layering problem(s); the rules are the Components table of {doc}')
        return 1
    print(f'layering ok: {len(comps)} components, {len(target_comp)} targets, rules from {doc.name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
