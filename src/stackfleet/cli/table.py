"""fleetctl-style tables: upper-case field names, columns aligned with tabs.

fleetctl prints through Go's tabwriter with tab padding (minwidth 0, tabwidth 8,
padding 1): each column is as wide as its widest cell plus one, rounded up to a tab
stop, and cells are padded with tabs. Scripts can split on tabs or whitespace.
"""
from __future__ import annotations

from collections.abc import Sequence

TAB_WIDTH = 8


def render(header: Sequence[str], rows: Sequence[Sequence[str]], legend: bool = True) -> str:
    lines = ([list(header)] if legend else []) + [list(r) for r in rows]
    if not lines:
        return ""
    stops = []
    for i in range(len(header) - 1):
        width = max(len(line[i]) for line in lines) + 1
        stops.append(-(-width // TAB_WIDTH) * TAB_WIDTH)
    out = []
    for line in lines:
        cells = [cell + "\t" * -(-(stops[i] - len(cell)) // TAB_WIDTH) for i, cell in enumerate(line[:-1])]
        out.append("".join(cells) + line[-1])
    return "\n".join(out) + "\n"


def select_fields(fields: str | None, available: Sequence[str], default: str) -> list[str]:
    """Validate a --fields list against what the command can show."""
    chosen = [f.strip() for f in (fields or default).split(",") if f.strip()]
    unknown = [f for f in chosen if f not in available]
    if unknown:
        from .errors import CommandError

        raise CommandError(f"unknown field(s) {', '.join(unknown)}; choose from {','.join(available)}", 2)
    return chosen
