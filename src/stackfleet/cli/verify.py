"""`stackfleet verify`: check unit files offline."""
from __future__ import annotations

import argparse
import json
import sys

from ..unit import verify_json, verify_paths


def verify(args: argparse.Namespace) -> int:
    units, errors = verify_paths(args.files)
    for err in errors:
        print(err, file=sys.stderr)
    if args.json:
        print(json.dumps([verify_json(u) for u in units], indent=2))
    elif not errors:
        for u in units:
            kind = "template" if u.is_template else ("global" if u.constraints.global_ else "exclusive")
            print(f"{u.path}: ok ({u.name}, {kind}, hash {u.hash[:7]})")
    return 1 if errors else 0
