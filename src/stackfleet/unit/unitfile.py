"""A parsed, validated unit file, and the ways to obtain one: from text, from a file,
from a template."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace

from .errors import Problem, UnitError, UnitInvalid
from .fleet import fleet_constraints
from .model import Constraints
from .names import UnitName, check_unit_name
from .parser import Entry, Section, effective, parse_sections
from .schema import FLEET_SECTION, STACKFLEET_SECTION, schema_errors
from .specifiers import LITERAL_KEYS, expand
from .stackfleet import StackfleetOptions, stackfleet_options


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str
    path: str
    sections: tuple[Section, ...]
    constraints: Constraints
    hash: str
    unit_name: UnitName
    options: StackfleetOptions = StackfleetOptions()  # the [X-Stackfleet] section

    def __hash__(self) -> int:  # Constraints holds a dict, so hash by identity of content
        return hash((self.name, self.hash, self.path))

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def entries(self, section: str, key: str) -> list[Entry]:
        """The entries of a key still in effect after `Key=` resets, with their lines."""
        found = self.section(section)
        return effective([e for e in found.entries if e.key == key]) if found else []

    def get(self, section: str, key: str) -> list[str]:
        """All values of a key in order, specifiers expanded; `Key=` resets the list."""
        return [e.value for e in self.entries(section, key)]

    def get_raw(self, section: str, key: str) -> list[str]:
        """Like get(), values as written."""
        return [e.raw for e in self.entries(section, key)]

    @property
    def is_template(self) -> bool:
        return self.unit_name.is_template

    @property
    def prefix(self) -> str:
        return self.unit_name.prefix

    @property
    def instance(self) -> str | None:
        """None for a plain unit, "" for a template, else the instance."""
        return self.unit_name.instance

    @property
    def unit_type(self) -> str:
        return self.unit_name.unit_type


def content_hash(text: str) -> str:
    """sha1 of the exact text, so any edit (even a comment) is a new unit body."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def _expanded(sections: tuple[Section, ...], name: UnitName, path: str,
              errors: list[UnitError]) -> tuple[Section, ...]:
    out = []
    for section in sections:
        entries = []
        for entry in section.entries:
            if (section.name, entry.key) in LITERAL_KEYS:
                entries.append(replace(entry, value=entry.raw))
                continue
            try:
                entries.append(replace(entry, value=expand(entry.raw, name)))
            except Problem as p:
                errors.append(p.at(path, entry.line))
                entries.append(entry)
        out.append(replace(section, entries=tuple(entries)))
    return tuple(out)


def parse_unit(text: str, name: str, path: str | None = None) -> UnitFile:
    """Parse and validate a unit; raises UnitInvalid listing every problem found."""
    where = path if path is not None else name
    try:
        unit_name = check_unit_name(name)
    except Problem as p:
        raise UnitInvalid([p.at(where, 0)]) from None
    sections, errors = parse_sections(text, where)
    sections = _expanded(sections, unit_name, where, errors)
    errors += schema_errors(sections, unit_name, where)
    fleet = next((s for s in sections if s.name == FLEET_SECTION), None)
    constraints, fleet_errors = fleet_constraints(fleet, unit_name, where)
    errors += fleet_errors
    own = next((s for s in sections if s.name == STACKFLEET_SECTION), None)
    options, option_errors = stackfleet_options(own, constraints, where)
    errors += option_errors
    if errors:
        raise UnitInvalid(sorted(errors, key=lambda e: e.line))
    return UnitFile(name, text, where, sections, constraints, content_hash(text), unit_name, options)


def instantiate(template: UnitFile, instance: str) -> UnitFile:
    """The instance `prefix@instance.type` of a template, validated under its own name."""
    if not template.is_template:
        raise UnitInvalid([UnitError(template.path, 0, f"{template.name} is not a template",
                                     "only units named like web@.service can be instantiated")])
    if not instance:
        raise UnitInvalid([UnitError(template.path, 0, "instance name is empty",
                                     f"name an instance, e.g. {template.prefix}@1.{template.unit_type}")])
    try:
        name = template.unit_name.with_instance(instance)
    except Problem as p:
        raise UnitInvalid([p.at(template.path, 0)]) from None
    return parse_unit(template.text, name.name, template.path)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise UnitInvalid([UnitError(path, 0, "is a directory, not a unit file",
                                     "give the path of a unit file")]) from None
    except OSError as exc:
        raise UnitInvalid([UnitError(path, 0, f"cannot read the file: {exc.strerror or exc}",
                                     "check the path and its permissions")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnitInvalid([UnitError(path, line, "the file is not valid UTF-8",
                                     "save the unit file as UTF-8 text")]) from None


def load_unit_file(path: str, name: str | None = None) -> UnitFile:
    """Read and parse a unit file; the name defaults to the file's name.

    As fleetctl does, an instance (web@1.service) whose own file is missing is made from
    the template file (web@.service) in the same directory.
    """
    name = name if name is not None else os.path.basename(path)
    if not os.path.lexists(path):
        try:
            unit_name = check_unit_name(name)
        except Problem as p:
            raise UnitInvalid([UnitError(path, 0, "no such file", None), p.at(path, 0)]) from None
        if unit_name.is_instance and unit_name.template is not None:
            template_path = os.path.join(os.path.dirname(path), unit_name.template)
            if os.path.exists(template_path):
                template = parse_unit(_read(template_path), unit_name.template, template_path)
                return instantiate(template, unit_name.instance or "")
            raise UnitInvalid([UnitError(path, 0, "no such file, and no template "
                                         f"{unit_name.template} next to it",
                                         "check the path, or write the template file")])
        raise UnitInvalid([UnitError(path, 0, "no such file", "check the path")])
    return parse_unit(_read(path), name, path)
