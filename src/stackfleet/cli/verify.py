"""`stackfleet verify`: check unit files offline."""
from __future__ import annotations

import argparse
import json
import sys

from ..unit import UnitError, unit_warnings, verify_json, verify_paths


def warning_line(warning: UnitError) -> str:
    """`path:line: warning: message (hint)`, as verify, submit, load and start print it."""
    return f"{warning.path}:{warning.line}: warning: {warning.message}" + (f" ({warning.hint})" if warning.hint else "")


def _warning_json(warning: UnitError) -> dict[str, object]:
    return {"path": warning.path, "line": warning.line, "message": warning.message,
            "hint": warning.hint}


def verify(args: argparse.Namespace) -> int:
    units, errors = verify_paths(args.files)
    checked = [(u, unit_warnings(u)) for u in units]
    for err in errors:
        print(err, file=sys.stderr)
    for _, warnings in checked:
        for w in warnings:
            print(warning_line(w), file=sys.stderr)
    failed = bool(errors) or (args.strict and any(warnings for _, warnings in checked))
    if args.json:
        print(json.dumps([{**verify_json(u), "warnings": [_warning_json(w) for w in warnings]}
                          for u, warnings in checked], indent=2))
    elif not failed:
        for u, warnings in checked:
            kind = "template" if u.is_template else ("global" if u.constraints.global_ else "exclusive")
            if u.constraints.global_ and u.options.fence_on_lease_loss:
                kind += ", fenced on lease loss"
            extra = f", {len(warnings)} warning(s)" if warnings else ""
            print(f"{u.path}: ok ({u.name}, {kind}, hash {u.hash[:7]}{extra})")
    return 1 if failed else 0
