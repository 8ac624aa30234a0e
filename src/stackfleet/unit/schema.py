"""What systemd sections and keys mean: which are known and which values they accept.

Only [Unit], [Service] and [Install] keys are checked against an allow-list (the rows of
support.py's table); the other type sections ([Socket], [Timer], ...) are valid systemd but
not checked further, as stackfleet runs services only (support.py refuses the rest).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from .errors import Problem, UnitError
from .names import UnitName
from .parser import Entry, Section, effective
from .specifiers import LITERAL_KEYS, uses_instance
from .support import DIRECTIVES, directive
from .values import (
    parse_boolean,
    parse_cpu_quota,
    parse_environment,
    parse_exec,
    parse_memory_max,
    parse_timespan,
)

FLEET_SECTION = "X-Fleet"
STACKFLEET_SECTION = "X-Stackfleet"  # our own options (stackfleet.py), so that [X-Fleet] stays fleet's
OWN_EXTENSIONS = (FLEET_SECTION, STACKFLEET_SECTION)
COMMON_SECTIONS = ("Unit", "Install", *OWN_EXTENSIONS)
TYPE_SECTIONS = {
    "service": "Service", "socket": "Socket", "timer": "Timer", "path": "Path",
    "mount": "Mount", "automount": "Automount", "swap": "Swap", "slice": "Slice",
    "scope": "Scope", "busname": "BusName",
}

# The known keys are the rows of the support table; a family row ends in '*'.
KNOWN_KEYS = {section: frozenset(k for k in rows if not k.endswith("*"))
              for section, rows in DIRECTIVES.items()}

RESTART_VALUES = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
TYPE_VALUES = ("simple", "exec", "forking", "oneshot", "dbus", "notify", "notify-reload", "idle")
KILL_MODES = ("control-group", "mixed", "process", "none")
TIMESPAN_KEYS = ("RestartSec", "TimeoutStartSec", "TimeoutStopSec", "TimeoutSec",
                 "StartLimitInterval")
BOOLEAN_KEYS = ("RemainAfterExit", "GuessMainPID")
EXEC_KEYS = ("ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload",
             "ExecStop", "ExecStopPost")
UINT_MAX = 2**32 - 1
GLOB_CHARS = "*?["


def parse_bool(text: str) -> bool:
    """systemd's boolean words; raises Problem otherwise."""
    try:
        return parse_boolean(text)
    except ValueError:
        raise Problem(f"{text!r} is not a boolean", "use true or false; yes/no, on/off and 1/0 work too") from None


def did_you_mean(word: str, candidates: Iterable[str], show: str = "{}") -> str | None:
    """A hint naming the closest candidate (written through show), preferring a match
    that differs only in case."""
    pool = sorted(candidates)
    for candidate in pool:
        if candidate.lower() == word.lower():
            return f"did you mean {show.format(candidate)}? names are case-sensitive"
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f"did you mean {show.format(close[0])}?" if close else None


def _one_of(allowed: tuple[str, ...]) -> Callable[[str], object]:
    def check(value: str) -> object:
        if value not in allowed:
            raise Problem(f"{value!r} is not a valid value", "use one of " + ", ".join(allowed))
        return value
    return check


def _timespan(value: str) -> float:
    try:
        return parse_timespan(value)
    except ValueError as exc:
        raise Problem(str(exc), "write a time span such as 5s, 500ms, 1min 30s or infinity") from None


def _boolean(value: str) -> bool:
    return parse_bool(value)


def _command(value: str) -> object:
    try:
        return parse_exec(value)
    except ValueError as exc:
        raise Problem(str(exc), "see 'Command lines' in systemd.service(5)") from None


def _count(value: str) -> int:
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not (value.isascii() and value.isdigit()) or int(value) > UINT_MAX:
        raise Problem(f"{value!r} is not a whole number", "write a count such as 5")
    return int(value)


def _path(value: str, what: str, example: str) -> str:
    """An absolute path, as systemd requires: a relative one would depend on the agent's
    own directory, on whichever machine runs the unit."""
    if not value.startswith("/"):
        raise Problem(f"{what} {value!r} is not an absolute path", f"write it from /, e.g. {example}")
    return value


def _environment_file(value: str) -> object:
    path = value.removeprefix("-")
    _path(path, "environment file", "EnvironmentFile=-/etc/default/web")
    if any(c in path for c in GLOB_CHARS):
        raise Problem(f"environment file {path!r} is a wildcard, which stackfleet does not expand",
                      "name each file on its own EnvironmentFile= line")
    return path


def _working_directory(value: str) -> object:
    path = value.removeprefix("-")
    return path if path == "~" else _path(path, "working directory", "WorkingDirectory=/srv/web or ~")


def _memory_max(value: str) -> object:
    try:
        return parse_memory_max(value)
    except ValueError as exc:
        raise Problem(str(exc), "write bytes with K, M, G, T, P or E (base 1024), a percentage of "
                      "the physical memory up to 100%, or infinity, e.g. MemoryMax=512M") from None


def _cpu_quota(value: str) -> object:
    try:
        return parse_cpu_quota(value)
    except ValueError as exc:
        raise Problem(str(exc), "write a percentage of one CPU, above 100% for more than one, "
                      "e.g. CPUQuota=20% or CPUQuota=150%") from None


def _environment(value: str) -> object:
    try:
        return parse_environment([value])
    except ValueError as exc:
        raise Problem(str(exc), 'write Environment="NAME=value" "OTHER=value"') from None


# (section, key) -> the check of one value (specifiers expanded); raises Problem.
VALUE_CHECKS: dict[tuple[str, str], Callable[[str], object]] = {
    ("Service", "Restart"): _one_of(RESTART_VALUES),
    ("Service", "Type"): _one_of(TYPE_VALUES),
    ("Service", "KillMode"): _one_of(KILL_MODES),
    ("Service", "Environment"): _environment,
    ("Service", "EnvironmentFile"): _environment_file,
    ("Service", "WorkingDirectory"): _working_directory,
    ("Service", "MemoryMax"): _memory_max,
    ("Service", "CPUQuota"): _cpu_quota,
    ("Service", "StartLimitBurst"): _count,
    ("Unit", "StartLimitBurst"): _count,
    ("Unit", "StartLimitIntervalSec"): _timespan,
    **{("Service", key): _timespan for key in TIMESPAN_KEYS},
    **{("Service", key): _boolean for key in BOOLEAN_KEYS},
    **{("Service", key): _command for key in EXEC_KEYS},
}


def allowed_sections(name: UnitName) -> tuple[str, ...]:
    own = TYPE_SECTIONS.get(name.unit_type)
    return COMMON_SECTIONS + ((own,) if own else ())


def _section_errors(section: Section, name: UnitName, path: str) -> list[UnitError]:
    allowed = allowed_sections(name)
    if section.name in allowed:
        return []
    near_ours = section.name.lower() in (s.lower() for s in OWN_EXTENSIONS) or difflib.get_close_matches(
        section.name, OWN_EXTENSIONS, n=1, cutoff=0.8)
    if section.name.startswith("X-") and not near_ours:
        return []  # systemd ignores extension sections; so do we
    if section.name in TYPE_SECTIONS.values():
        hint = f"a .{name.unit_type} unit has no [{section.name}] section; check the unit's name"
    else:
        hint = did_you_mean(section.name, allowed, "[{}]") or "sections are " + ", ".join(
            f"[{s}]" for s in allowed)
    return [UnitError(path, section.line, f"unknown section [{section.name}]", hint)]


def _entry_errors(section: str, entry: Entry, name: UnitName, path: str) -> list[UnitError]:
    if section in KNOWN_KEYS and directive(section, entry.key) is None:
        hint = did_you_mean(entry.key, KNOWN_KEYS[section]) or f"see systemd.{section.lower()}(5)"
        return [UnitError(path, entry.line, f"unknown setting {entry.key}= in [{section}]", hint)]
    check = VALUE_CHECKS.get((section, entry.key))
    if check is None or entry.raw == "":
        return []
    if name.is_template and uses_instance(entry.raw):
        return []  # judged once the template is instantiated
    if "%" in entry.raw and entry.value == entry.raw and (section, entry.key) not in LITERAL_KEYS:
        return []  # expansion failed (it always removes a '%'); that error is already reported
    try:
        check(entry.value)
    except Problem as p:
        return [UnitError(path, entry.line, f"{entry.key}={entry.raw}: {p.message}", p.hint)]
    return []


def _service_errors(service: Section | None, path: str) -> list[UnitError]:
    entries = list(service.entries) if service else []
    starts = effective([e for e in entries if e.key == "ExecStart"])
    line = service.line if service else 0
    if not starts:
        return [UnitError(path, line, "service has no ExecStart=",
                          "add ExecStart=/path/to/program to the [Service] section")]
    types = effective([e for e in entries if e.key == "Type"])
    if len(starts) > 1 and (not types or types[-1].value != "oneshot"):
        return [UnitError(path, starts[1].line, "more than one ExecStart= in a service that is not Type=oneshot",
                          "keep one ExecStart=, move the others to ExecStartPre=/ExecStartPost=")]
    return []


def schema_errors(sections: tuple[Section, ...], name: UnitName, path: str) -> list[UnitError]:
    """Unknown sections and keys, bad values of the keys we know, a service without ExecStart=."""
    errors: list[UnitError] = []
    for section in sections:
        errors += _section_errors(section, name, path)
        for entry in section.entries:
            errors += _entry_errors(section.name, entry, name, path)
    if name.unit_type == "service":
        errors += _service_errors(next((s for s in sections if s.name == "Service"), None), path)
    return errors
