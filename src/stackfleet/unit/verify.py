"""Checks over several units at once, and what `stackfleet verify` prints per unit."""
from __future__ import annotations

from .errors import UnitError, UnitInvalid
from .fleet import MACHINE_OF, REPLACES, split_items
from .schema import FLEET_SECTION
from .support import support_findings
from .unitfile import UnitFile, load_unit_file


def _line_of(unit: UnitFile, key: str, item: str) -> int:
    """The line of the X-Fleet entry that carries item, for pointing at it."""
    for entry in unit.entries(FLEET_SECTION, key):
        if item in split_items(entry.value):
            return entry.line
    return 0


def _cycle(start: str, edges: dict[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """A path start -> ... -> start along edges, if there is one."""
    seen: set[str] = set()
    stack: list[tuple[str, ...]] = [(start,)]
    while stack:
        trail = stack.pop()
        for nxt in edges.get(trail[-1], ()):
            if nxt == start:
                return trail + (start,)
            if nxt not in seen:
                seen.add(nxt)
                stack.append(trail + (nxt,))
    return None


def _cycle_errors(units: dict[str, UnitFile], key: str, edges: dict[str, tuple[str, ...]],
                  hint: str) -> list[UnitError]:
    """One error per unit that lies on a cycle of `key` references among these units."""
    errors: list[UnitError] = []
    for name in sorted(edges):
        cycle = _cycle(name, edges)
        if cycle:
            unit = units[name]
            errors.append(UnitError(unit.path, _line_of(unit, key, cycle[1]),
                                    f"{key}= forms a cycle: {' -> '.join(cycle)}", hint))
    return errors


def unit_warnings(unit: UnitFile) -> list[UnitError]:
    """Directives the unit sets that stackfleet accepts and ignores, each at its line."""
    return support_findings(unit.sections, unit.unit_name, unit.path).warnings


def check_unit_set(units: list[UnitFile]) -> list[UnitError]:
    """What must hold before units are submitted, beyond each one parsing: that stackfleet
    can run each of them (see support.py); one body per name; no MachineOf or Replaces
    cycle (fleet cannot schedule units that must each follow or displace the other)."""
    errors: list[UnitError] = []
    by_name: dict[str, UnitFile] = {}
    for unit in units:
        errors += support_findings(unit.sections, unit.unit_name, unit.path).errors
        first = by_name.setdefault(unit.name, unit)
        if first is not unit and first.hash != unit.hash:
            errors.append(UnitError(unit.path, 0, f"{unit.name} is also given by {first.path} "
                                    "with other contents", "give each unit name once"))
    errors += _cycle_errors(by_name, MACHINE_OF,
                            {n: u.constraints.machine_of for n, u in by_name.items()},
                            "MachineOf must point one way; drop it from one of the units")
    errors += _cycle_errors(by_name, REPLACES,
                            {n: u.constraints.replaces for n, u in by_name.items()},
                            "circular replacement is not allowed; drop Replaces from one of the units")
    return errors


def verify_paths(paths: list[str]) -> tuple[list[UnitFile], list[UnitError]]:
    """Load every path, collecting the units that parsed and all errors of all files."""
    units: list[UnitFile] = []
    errors: list[UnitError] = []
    for path in paths:
        try:
            units.append(load_unit_file(path))
        except UnitInvalid as invalid:
            errors += invalid.errors
    return units, errors + check_unit_set(units)


def verify_json(unit: UnitFile) -> dict[str, object]:
    return {
        "name": unit.name,
        "hash": unit.hash,
        "exclusive": unit.constraints.exclusive,
        "constraints": unit.constraints.to_json(),
        "template": unit.is_template,
    }
