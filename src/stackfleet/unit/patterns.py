"""Conflicts= patterns: the glob syntax of Go's path.Match, which fleet used.

`*` any run of characters, `?` one character, `[a-z]` / `[^a-z]` classes, `\\` escapes.
Kept apart so the engine matches with exactly the rules the parser validated.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .errors import Problem

BAD_PATTERN_HINT = r"use * ? [abc] [a-z] [^abc], and \ to escape one of them"


def _bad(pattern: str, why: str) -> Problem:
    return Problem(f"bad glob pattern {pattern!r}: {why}", BAD_PATTERN_HINT)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One (possibly escaped) character inside [...]; '-' and ']' must be escaped there."""
    if i >= len(pattern):
        raise _bad(pattern, "'[' is not closed")
    c = pattern[i]
    if c in "-]":
        raise _bad(pattern, f"{c!r} must be escaped inside [...]")
    if c == "\\":
        i += 1
        if i >= len(pattern):
            raise _bad(pattern, "it ends with a backslash")
        c = pattern[i]
    return c, i + 1


def _class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the class starting after '['; returns (regex, index after ']')."""
    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    parts: list[str] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and parts:
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        if lo > hi:
            raise _bad(pattern, f"range {lo}-{hi} is reversed")
        parts.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    return "[" + ("^" if negate else "") + "".join(parts) + "]", i + 1


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regex for a pattern; raises Problem when the pattern is malformed."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            regex, i = _class(pattern, i + 1)
            out.append(regex)
            continue
        elif c == "\\":
            i += 1
            if i >= len(pattern):
                raise _bad(pattern, "it ends with a backslash")
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_matches(pattern: str, name: str) -> bool:
    """Whether a unit name matches a Conflicts= pattern (a malformed pattern matches nothing)."""
    try:
        return compile_glob(pattern).fullmatch(name) is not None
    except Problem:
        return False
