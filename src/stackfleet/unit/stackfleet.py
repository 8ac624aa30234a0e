"""The [X-Stackfleet] section: options of our own, kept out of [X-Fleet] so that it stays fleet's.

Every key of the section is one row of OPTIONS (its parser) and one field of StackfleetOptions;
a new option is a row and a field. Unknown keys are errors, as unknown [X-Fleet] keys are.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from .errors import Problem, UnitError
from .model import Constraints
from .parser import Entry, Section, effective
from .schema import STACKFLEET_SECTION, did_you_mean, parse_bool

FENCE_ON_LEASE_LOSS = "FenceOnLeaseLoss"
ETCD_ACCESS = "EtcdAccess"


@dataclass(frozen=True)
class StackfleetOptions:
    # Kill the unit's whole cgroup before the machine's lease can expire at etcd, as an exclusive
    # unit is, and start it again only once the machine is a member again: for global units whose
    # work must not outlive the machine's membership (compute: its guests' disks are shared).
    fence_on_lease_loss: bool = False
    # Hand the unit this machine's units certificate and the settings' sealing key, which other
    # units do not see (agent/unitaccess.py): for the role units, which read the cluster settings.
    etcd_access: bool = False


# key -> (field of StackfleetOptions, parser of one value; raises Problem)
OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    FENCE_ON_LEASE_LOSS: ("fence_on_lease_loss", parse_bool),
    ETCD_ACCESS: ("etcd_access", parse_bool),
}
assert {f for f, _ in OPTIONS.values()} == {f.name for f in fields(StackfleetOptions)}


def _value(entry: Entry, parse: Callable[[str], object], errors: list[UnitError], path: str) -> object | None:
    try:
        return parse(entry.value)
    except Problem as p:
        errors.append(UnitError(path, entry.line, f"{entry.key}={entry.raw}: {p.message}", p.hint))
        return None


def _combination_errors(options: StackfleetOptions, section: Section, constraints: Constraints,
                        path: str) -> list[UnitError]:
    entries = effective([e for e in section.entries if e.key == FENCE_ON_LEASE_LOSS])
    if constraints.exclusive and entries and not options.fence_on_lease_loss:
        return [UnitError(path, entries[-1].line, "an exclusive unit is always fenced on lease loss",
                          "drop FenceOnLeaseLoss=false, or make the unit Global=true")]
    return []


def stackfleet_options(section: Section | None, constraints: Constraints,
                       path: str) -> tuple[StackfleetOptions, list[UnitError]]:
    """The validated options of a unit and every problem in its [X-Stackfleet] section."""
    if section is None:
        return StackfleetOptions(), []
    errors: list[UnitError] = []
    values: dict[str, object] = {}
    by_key: dict[str, list[Entry]] = {}
    for entry in section.entries:
        if entry.key in OPTIONS:
            by_key.setdefault(entry.key, []).append(entry)
        else:
            errors.append(UnitError(path, entry.line, f"unknown setting {entry.key}= in [{STACKFLEET_SECTION}]",
                                    did_you_mean(entry.key, OPTIONS) or "known: " + ", ".join(OPTIONS)))
    for key, entries in by_key.items():
        field_name, parse = OPTIONS[key]
        for entry in effective(entries):  # the last value wins; `Key=` resets to the default
            value = _value(entry, parse, errors, path)
            if value is not None:
                values[field_name] = value
    options = StackfleetOptions(**values)  # type: ignore[arg-type]
    return options, errors + _combination_errors(options, section, constraints, path)
