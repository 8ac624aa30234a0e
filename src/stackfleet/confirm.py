"""The one confirmation before a command deletes data: asked on the terminal, refused without one."""
from __future__ import annotations

import sys


def deletion_confirmed(what: str, outcome: str) -> bool:
    """True once the user typed 'delete'. `what` names the refused step (e.g. "data reset:"),
    `outcome` says what a refusal leaves (e.g. "Nothing was deleted."); --yes skips this."""
    if not sys.stdin.isatty():
        print(f"{what} not confirmed (no terminal; pass --yes). {outcome}", file=sys.stderr)
        return False
    if input("Type 'delete' to confirm: ").strip() != "delete":
        print(f"{what} not confirmed. {outcome}", file=sys.stderr)
        return False
    return True
