#!/usr/bin/env python3
"""Validate CDI spec files (JSON) against accel-dra's CDI schema and, when installed, the CDI
project's schema shipped by Debian.

Usage: validate.py [--schema PATH] [--no-upstream] SPEC.json [SPEC.json ...]

Exit status: 0 when every file is valid against every schema used, 1 when a file is invalid
(each error is printed with the file, the schema and the JSON path), 2 on usage errors or an
unreadable schema.
"""

import argparse
import json
import os
import sys

try:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7
except ImportError as e:  # pragma: no cover - environment problem
    print(f"validate.py: missing Python module ({e}); install python3-jsonschema", file=sys.stderr)
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
OWN_SCHEMA = os.path.join(HERE, "schema.json")
UPSTREAM_DIR = ("/usr/share/gocode/src/github.com/container-orchestrated-devices/"
                "container-device-interface/schema")


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def own_validator(path):
    schema = load_json(path)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def upstream_validator(directory):
    """The CDI project's schema.json refers to "defs.json#/..." beside it; resolve that through a
    registry rooted at the directory's file:// URI."""
    base = "file://" + os.path.abspath(directory) + "/"
    registry = Registry()
    for name in ("schema.json", "defs.json"):
        contents = load_json(os.path.join(directory, name))
        registry = registry.with_resource(
            base + name, Resource.from_contents(contents, default_specification=DRAFT7))
    root = {"$schema": "http://json-schema.org/draft-07/schema#", "$ref": base + "schema.json"}
    return jsonschema.Draft7Validator(root, registry=registry)


def describe(error):
    where = "/".join(str(p) for p in error.absolute_path) or "<root>"
    return f"at {where}: {error.message}"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", default=OWN_SCHEMA, help="our schema (default: %(default)s)")
    parser.add_argument("--no-upstream", action="store_true",
                        help="do not use the CDI project's schema even when it is installed")
    parser.add_argument("specs", nargs="+", help="CDI spec files (JSON)")
    args = parser.parse_args(argv)

    try:
        validators = [("accel-dra schema " + args.schema, own_validator(args.schema))]
        if not args.no_upstream and os.path.isfile(os.path.join(UPSTREAM_DIR, "schema.json")):
            validators.append(("CDI project schema " + UPSTREAM_DIR,
                               upstream_validator(UPSTREAM_DIR)))
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"validate.py: cannot load schema: {e}", file=sys.stderr)
        return 2

    failed = False
    for spec_path in args.specs:
        try:
            doc = load_json(spec_path)
        except (OSError, ValueError) as e:
            print(f"{spec_path}: not readable JSON: {e}", file=sys.stderr)
            failed = True
            continue
        for name, validator in validators:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            for error in errors:
                print(f"{spec_path}: invalid against {name} {describe(error)}", file=sys.stderr)
            failed = failed or bool(errors)
    if not failed:
        print(f"validate.py: {len(args.specs)} spec(s) valid against {len(validators)} schema(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
