"""Unit names: `prefix.type`, template `prefix@.type`, instance `prefix@instance.type`.

The validity rules are systemd's (unit_name_is_valid) restricted to the unit types
fleet accepted (fleet api/units.go ValidateName), and to names systemd-escape can
produce: a prefix or instance never starts with '.', so %p and %i never expand to
'.', '..' or a hidden file name.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from .errors import Problem, UnitInvalid

# systemd's UNIT_NAME_MAX counts the terminating NUL: a name has at most 255 characters.
NAME_MAX = 255
NAME_CHARS = frozenset(string.ascii_letters + string.digits + ":-_.\\")
UNIT_TYPES = frozenset({
    "automount", "busname", "device", "mount", "path", "scope", "service",
    "slice", "snapshot", "socket", "swap", "target", "timer",
})
# systemd can only instantiate these types from a template.
TEMPLATE_TYPES = frozenset({"path", "service", "socket", "target", "timer"})
CHARS_HINT = r"use only letters, digits and : - _ . \ (escape other characters with systemd-escape)"


@dataclass(frozen=True)
class UnitName:
    name: str
    prefix: str
    # None for a plain unit, "" for a template, the instance otherwise.
    instance: str | None
    unit_type: str

    @property
    def is_template(self) -> bool:
        """A template is submitted as a body for its instances; it cannot be started itself."""
        return self.instance == ""

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def stem(self) -> str:
        """The name without its type suffix (systemd's %N)."""
        return self.name[: -len(self.unit_type) - 1]

    @property
    def template(self) -> str | None:
        """The template an instance or template belongs to."""
        if self.instance is None:
            return None
        return f"{self.prefix}@.{self.unit_type}"

    def with_instance(self, instance: str) -> UnitName:
        return check_unit_name(f"{self.prefix}@{instance}.{self.unit_type}")


def check_unit_name(name: str) -> UnitName:
    """Validate a unit name; raises Problem with a hint."""
    if not name:
        raise Problem("unit name is empty", "give a name such as web.service")
    if len(name) > NAME_MAX:
        raise Problem(f"unit name is longer than {NAME_MAX} characters", "choose a shorter name")
    stem, dot, unit_type = name.rpartition(".")
    if not dot:
        raise Problem(f"unit name {name!r} has no type suffix", f"add one, e.g. {name}.service")
    if not stem:
        raise Problem(f"unit name {name!r} has nothing before its type suffix",
                      "give a name such as web.service")
    if unit_type not in UNIT_TYPES:
        raise Problem(f"unit name {name!r} has an unknown type {unit_type!r}",
                      "use one of ." + " .".join(sorted(UNIT_TYPES)))
    prefix, at, instance = stem.partition("@")
    if not prefix:
        raise Problem(f"unit name {name!r} has nothing before '@'",
                      "a template is named like web@.service")
    if at and "@" in instance:
        raise Problem(f"unit name {name!r} has more than one '@'",
                      r"write '@' inside an instance as \x40")
    for what, part in (("name", prefix), ("instance", instance)):
        bad = sorted(set(part) - NAME_CHARS)
        if bad:
            raise Problem(f"unit name {name!r} contains {''.join(bad)!r}", CHARS_HINT)
        if part.startswith("."):
            raise Problem(f"unit name {name!r}: the {what} {part!r} starts with '.'",
                          r"begin it with a letter or digit; systemd-escape writes a leading "
                          r"'.' as \x2e")
    if at and unit_type not in TEMPLATE_TYPES:
        raise Problem(f"a .{unit_type} unit cannot be a template or an instance",
                      "templates must be ." + " .".join(sorted(TEMPLATE_TYPES)))
    return UnitName(name, prefix, instance if at else None, unit_type)


def parse_unit_name(name: str, path: str | None = None) -> UnitName:
    """Validate a unit name; raises UnitInvalid (line 0) with a hint."""
    try:
        return check_unit_name(name)
    except Problem as p:
        raise UnitInvalid([p.at(path if path is not None else name, 0)]) from None
