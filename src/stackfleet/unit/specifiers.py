"""systemd specifiers (%n, %N, %p, %i, %%) expanded from the unit's name."""
from __future__ import annotations

from .errors import Problem
from .names import UnitName

SUPPORTED = "%n %N %p %i %%"
# Specifiers systemd resolves from the host; a unit using one names its host-side
# meaning, which stackfleet cannot supply at submit time.
SYSTEMD_ONLY = frozenset("aAbBCdEfgGhHIjJlLmMoPqsStTuUvVwWyY")
# (section, key) whose values systemd takes as written, without specifiers: there a '%' is a
# percentage (MemoryMax=50%, CPUQuota=20%).
LITERAL_KEYS = frozenset({("Service", "MemoryMax"), ("Service", "CPUQuota")})


def expand(value: str, name: UnitName) -> str:
    """Expand specifiers left to right, as systemd does; raises Problem on an unknown one."""
    table = {
        "n": name.name,
        "N": name.stem,
        "p": name.prefix,
        "i": name.instance or "",
        "%": "%",
    }
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        if i + 1 == len(value):
            raise Problem("'%' at the end of a value starts no specifier", "write %% for a literal %")
        spec = value[i + 1]
        if spec not in table:
            what = "is not supported by stackfleet" if spec in SYSTEMD_ONLY else "is unknown"
            raise Problem(f"specifier %{spec} {what}",
                          f"supported specifiers are {SUPPORTED}; write %% for a literal %")
        out.append(table[spec])
        i += 2
    return "".join(out)


def uses_instance(value: str) -> bool:
    """Whether the value depends on the instance name (%i, %n or %N), so a template
    can only be judged once it is instantiated."""
    i = 0
    while i < len(value) - 1:
        if value[i] == "%":
            if value[i + 1] in "inN":
                return True
            i += 2
        else:
            i += 1
    return False
