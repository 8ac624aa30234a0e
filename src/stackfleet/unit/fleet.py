"""The [X-Fleet] section: scheduling constraints, with fleet's validity rules.

Sources: fleet job/job.go (keys, multi-value splitting, truthy values, deprecated
names), api/units.go ValidateOptions (which options exclude each other) and
Documentation/unit-files-and-scheduling.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import Problem, UnitError
from .model import Constraints
from .names import UnitName, check_unit_name
from .parser import Entry, Section, effective
from .patterns import compile_glob
from .schema import did_you_mean, parse_bool
from .specifiers import uses_instance

MACHINE_ID = "MachineID"
MACHINE_OF = "MachineOf"
MACHINE_METADATA = "MachineMetadata"
CONFLICTS = "Conflicts"
REPLACES = "Replaces"
GLOBAL = "Global"
FLEET_KEYS = (MACHINE_ID, MACHINE_OF, MACHINE_METADATA, CONFLICTS, REPLACES, GLOBAL)
# Names fleet <= 0.8 accepted; we refuse them and name the replacement.
DEPRECATED_KEYS = {
    "X-ConditionMachineID": MACHINE_ID,
    "X-ConditionMachineBootID": MACHINE_ID,
    "X-ConditionMachineOf": MACHINE_OF,
    "X-ConditionMachineMetadata": MACHINE_METADATA,
    "X-Conflicts": CONFLICTS,
}
# Options that cannot be combined (fleet api/units.go ValidateOptions), each with the reason.
EXCLUSIONS: tuple[tuple[str, str, str], ...] = (
    (MACHINE_ID, MACHINE_OF, "MachineID already fixes the machine; drop one of them"),
    (MACHINE_ID, CONFLICTS, "MachineID already fixes the machine; drop one of them"),
    (MACHINE_ID, GLOBAL, "a global unit runs on every machine; drop MachineID or Global"),
    (MACHINE_ID, REPLACES, "MachineID already fixes the machine; drop one of them"),
    (GLOBAL, MACHINE_OF, "a global unit runs on every matching machine; drop MachineOf or Global"),
    (GLOBAL, REPLACES, "a global unit runs on every matching machine; drop Replaces or Global"),
    (CONFLICTS, REPLACES, "drop Conflicts or Replaces"),
)
METADATA_HINT = "write key=value pairs, e.g. MachineMetadata=role=controller disk=ssd"


@dataclass(frozen=True)
class Item:
    """One value of an X-Fleet option, after quote splitting."""

    text: str
    line: int
    # True in a template when the value depends on the instance it will get: such a
    # value is checked when the template is instantiated, not before.
    per_instance: bool


def split_items(value: str) -> list[str]:
    """Split a value into space-separated items, double quotes grouping (fleet's
    parseMultivalueLine, extended to unquoted lists); raises Problem on an open quote."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    started = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                items.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
            started = True
    if quoted:
        raise Problem("a double quote is not closed", 'close it: MachineMetadata="role=controller"')
    if started:
        items.append("".join(current))
    return items


class _Collector:
    """Collects the items of every X-Fleet option and the errors found on the way."""

    def __init__(self, name: UnitName, path: str) -> None:
        self.name = name
        self.path = path
        self.errors: list[UnitError] = []
        self.items: dict[str, list[Item]] = {key: [] for key in FLEET_KEYS}

    def error(self, line: int, message: str, hint: str | None) -> None:
        self.errors.append(UnitError(self.path, line, message, hint))

    def item_error(self, item: Item, message: str, hint: str | None) -> None:
        """An invalid item is left out; its error waits for the instance if it depends on one."""
        if not item.per_instance:
            self.error(item.line, message, hint)

    def add(self, section: Section) -> None:
        by_key: dict[str, list[Entry]] = {}
        for entry in section.entries:
            if entry.key in DEPRECATED_KEYS:
                new = DEPRECATED_KEYS[entry.key]
                self.error(entry.line, f"{entry.key}= is an old fleet name",
                           f"rename it to {new}=; fleet 0.8 dropped the old name")
            elif entry.key not in FLEET_KEYS:
                self.error(entry.line, f"unknown setting {entry.key}= in [X-Fleet]",
                           did_you_mean(entry.key, FLEET_KEYS) or "known: " + ", ".join(FLEET_KEYS))
            else:
                by_key.setdefault(entry.key, []).append(entry)
        for key, entries in by_key.items():
            for entry in effective(entries):
                self._split(key, entry)

    def _split(self, key: str, entry: Entry) -> None:
        try:
            texts = split_items(entry.value)
        except Problem as p:
            self.error(entry.line, f"{key}={entry.raw}: {p.message}", p.hint)
            return
        per_instance = self.name.is_template and uses_instance(entry.raw)
        for text in texts:
            if text == "":
                self.error(entry.line, f"{key}= has an empty quoted value", "remove the empty \"\"")
            else:
                self.items[key].append(Item(text, entry.line, per_instance))


def _machine_id(c: _Collector) -> str | None:
    items = c.items[MACHINE_ID]
    for item in items[1:]:
        if item.text != items[0].text:
            c.error(item.line, f"MachineID= names a second machine {item.text!r}",
                    "a unit can be pinned to one machine only; use MachineMetadata= to allow several")
    return items[0].text if items else None


def _unit_names(c: _Collector, key: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in c.items[key]:
        try:
            other = check_unit_name(item.text)
        except Problem as p:
            c.item_error(item, f"{key}={item.text}: {p.message}", p.hint)
            continue
        if other.is_template:
            c.item_error(item, f"{key}={item.text} names a template, which never runs",
                         f"name an instance such as {other.prefix}@1.{other.unit_type}")
            continue
        if item.text == c.name.name:
            c.item_error(item, f"{key}= names the unit itself", f"remove {item.text} from {key}=")
            continue
        if item.text not in names:
            names.append(item.text)
    return tuple(names)


def _metadata(c: _Collector) -> dict[str, frozenset[str]]:
    wanted: dict[str, set[str]] = {}
    for item in c.items[MACHINE_METADATA]:
        key, eq, value = item.text.partition("=")
        if not eq:
            c.item_error(item, f"MachineMetadata item {item.text!r} has no '='", METADATA_HINT)
        elif not key or not value:
            empty = "key" if not key else "value"
            c.item_error(item, f"MachineMetadata item {item.text!r} has an empty {empty}",
                         METADATA_HINT)
        elif "=" in value:
            c.item_error(item, f"MachineMetadata item {item.text!r} has more than one '='",
                         METADATA_HINT + "; quote each pair separately")
        else:
            wanted.setdefault(key, set()).add(value)
    return {key: frozenset(values) for key, values in wanted.items()}


def _conflicts(c: _Collector) -> tuple[str, ...]:
    patterns: list[str] = []
    for item in c.items[CONFLICTS]:
        try:
            compile_glob(item.text)
        except Problem as p:
            c.item_error(item, f"Conflicts={item.text}: {p.message}", p.hint)
            continue
        # A glob that also matches this unit is fleet's idiom for "one instance per
        # machine" (Conflicts=web@*.service), so only the literal own name is refused.
        if item.text == c.name.name:
            c.item_error(item, "Conflicts= names the unit itself",
                         "remove it; a unit never conflicts with itself")
            continue
        if item.text not in patterns:
            patterns.append(item.text)
    return tuple(patterns)


def _global(c: _Collector) -> bool:
    value = False
    for item in c.items[GLOBAL]:
        try:
            value = parse_bool(item.text)  # fleet: the last value wins
        except Problem as p:
            c.item_error(item, f"Global={item.text}: {p.message}", p.hint)
    return value


def _first_line(c: _Collector, key: str, cons: Constraints) -> int | None:
    """Where an option takes effect, or None when it is not in effect."""
    if key == GLOBAL:
        return c.items[GLOBAL][-1].line if cons.global_ else None
    items = c.items[key]
    return items[0].line if items else None


def _combination_errors(c: _Collector, cons: Constraints) -> None:
    for a, b, hint in EXCLUSIONS:
        line_a, line_b = _first_line(c, a, cons), _first_line(c, b, cons)
        if line_a is not None and line_b is not None:
            c.error(max(line_a, line_b), f"{a} cannot be used with {b}", hint)
    for peer in c.items[MACHINE_OF]:
        for pattern in cons.conflicts:
            if compile_glob(pattern).fullmatch(peer.text):
                c.error(peer.line, f"MachineOf={peer.text} matches Conflicts={pattern}",
                        "a unit cannot run next to a unit it must avoid; drop one of them")
        if peer.text in cons.replaces:
            c.error(peer.line, f"MachineOf={peer.text} is also in Replaces=",
                    "a unit cannot run next to a unit it pushes to another machine; drop one of them")


def fleet_constraints(section: Section | None, name: UnitName, path: str) -> tuple[Constraints, list[UnitError]]:
    """The validated Constraints of a unit and every problem in its [X-Fleet] section."""
    c = _Collector(name, path)
    if section is not None:
        c.add(section)
    cons = Constraints(
        machine_id=_machine_id(c),
        machine_of=_unit_names(c, MACHINE_OF),
        machine_metadata=_metadata(c),
        conflicts=_conflicts(c),
        replaces=_unit_names(c, REPLACES),
        global_=_global(c),
    )
    _combination_errors(c, cons)
    return cons, c.errors
