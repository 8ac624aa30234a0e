"""The syntax of systemd unit files (systemd.syntax(7)), without any meaning attached.

Pure: text in, sections and syntax errors out.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UnitError

WHITESPACE = " \t\n\r"
COMMENT_STARTS = ("#", ";")
# fleet refused (go-systemd's SYSTEMD_LINE_MAX) and older systemd truncated a line this long.
LINE_MAX = 2048


@dataclass(frozen=True)
class Entry:
    """One `Key=Value` assignment. raw is the text after '=' as written (continuations
    joined); value is raw with specifiers expanded, filled in once the unit's name is known."""

    key: str
    raw: str
    line: int
    value: str


@dataclass(frozen=True)
class Section:
    """All entries of one section name, in file order; repeated headers are merged as systemd does."""

    name: str
    line: int
    entries: tuple[Entry, ...]


def _ends_in_continuation(line: str) -> bool:
    """A trailing backslash continues the line unless it is itself escaped."""
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join `\\`-continued lines (the backslash becomes a space, as in systemd) and
    drop comment lines inside a continuation. Returns (first line number, text)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if pending is not None and line.lstrip(WHITESPACE).startswith(COMMENT_STARTS):
            continue
        if pending is None:
            start = number
            joined = line
        else:
            joined = pending + line
        if _ends_in_continuation(joined) and not joined.lstrip(WHITESPACE).startswith(COMMENT_STARTS):
            pending = joined[:-1] + " "
            continue
        pending = None
        out.append((start, joined))
    if pending is not None:
        out.append((start, pending))
    return out


def physical_line_errors(text: str, path: str) -> list[UnitError]:
    """Setting and header lines that cannot run as written: a NUL byte (it ends a C string,
    so exec and the environment would refuse or cut the value), and LINE_MAX bytes or more.
    Comment lines are dropped before anything runs, so they may hold anything."""
    errors: list[UnitError] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.lstrip(WHITESPACE).startswith(COMMENT_STARTS):
            continue
        if "\0" in line:
            errors.append(UnitError(path, number, "the line contains a NUL byte",
                                    "remove it; unit files are text"))
        if len(line.encode("utf-8", "surrogatepass")) >= LINE_MAX:
            errors.append(UnitError(path, number, f"the line is longer than {LINE_MAX - 1} bytes",
                                    "split it with a trailing backslash, or move a long script "
                                    "into a file that ExecStart= runs"))
    return errors


def parse_sections(text: str, path: str) -> tuple[tuple[Section, ...], list[UnitError]]:
    """Split text into sections of entries; every syntax error is collected, not just the first."""
    errors = physical_line_errors(text, path)
    order: list[str] = []
    headers: dict[str, int] = {}
    entries: dict[str, list[Entry]] = {}
    current: str | None = None
    for number, raw_line in logical_lines(text):
        line = raw_line.strip(WHITESPACE)
        if not line or line.startswith(COMMENT_STARTS):
            continue
        if line.startswith("["):
            name = line[1:-1] if line.endswith("]") else ""
            if not line.endswith("]") or len(line) < 2:
                errors.append(UnitError(path, number, f"section header {line!r} has no closing ']'",
                                        "write section headers as [Name] on a line of their own"))
                current = None
            elif not name or "[" in name or "]" in name:
                errors.append(UnitError(path, number, f"invalid section header {line!r}",
                                        "write section headers as [Name], e.g. [Service]"))
                current = None
            else:
                current = name
                if name not in headers:
                    headers[name] = number
                    order.append(name)
                    entries[name] = []
            continue
        key, eq, value = line.partition("=")
        key = key.strip(WHITESPACE)
        if not eq:
            errors.append(UnitError(path, number, f"line {line!r} is not a Key=Value setting",
                                    "write settings as Key=Value; start comments with # or ;"))
            continue
        if not key:
            errors.append(UnitError(path, number, "setting has no name before '='",
                                    "write settings as Key=Value"))
            continue
        if current is None:
            errors.append(UnitError(path, number, f"{key}= is outside of any section",
                                    "put it below a section header such as [Service]"))
            continue
        value = value.strip(WHITESPACE)
        entries[current].append(Entry(key, value, number, value))
    sections = tuple(Section(n, headers[n], tuple(entries[n])) for n in order)
    return sections, errors


def effective(entries: list[Entry]) -> list[Entry]:
    """systemd's list rule: an empty assignment `Key=` drops every value before it."""
    out: list[Entry] = []
    for entry in entries:
        if entry.raw == "":
            out.clear()
        else:
            out.append(entry)
    return out
