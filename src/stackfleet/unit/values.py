"""Parsers for the values of systemd unit options: time spans, command lines, environment,
resource limits.

Pure functions: no I/O. The rules follow systemd.time(7), systemd.service(5) ("Command lines"),
systemd.exec(5) (Environment=, EnvironmentFile=) and systemd.resource-control(5) (MemoryMax=,
CPUQuota=).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# --- time spans -------------------------------------------------------------------------------

_UNIT_SECONDS: dict[str, float] = {}
for _names, _factor in (
    (("usec", "us", "µs", "μs"), 1e-6),
    (("msec", "ms"), 1e-3),
    (("seconds", "second", "sec", "s", ""), 1.0),
    (("minutes", "minute", "min", "m"), 60.0),
    (("hours", "hour", "hr", "h"), 3600.0),
    (("days", "day", "d"), 86400.0),
    (("weeks", "week", "w"), 7 * 86400.0),
    (("months", "month", "M"), 30.44 * 86400.0),
    (("years", "year", "y"), 365.25 * 86400.0),
):
    for _name in _names:
        _UNIT_SECONDS[_name] = _factor

_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Zµμ]*)")


def parse_timespan(text: str) -> float:
    """Seconds in a systemd time span such as "5", "500ms", "1min 30s" or "infinity"."""
    stripped = text.strip()
    if stripped == "infinity":
        return math.inf
    if not stripped:
        raise ValueError("empty time span: give e.g. '5s', '500ms', '1min 30s' or 'infinity'")
    total = 0.0
    pos = 0
    while pos < len(stripped):
        match = _SPAN_PART.match(stripped, pos)
        if match is None:
            raise ValueError(
                f"invalid time span {text!r} at {stripped[pos:]!r}: expected a number "
                "with an optional unit such as 'ms', 's', 'min', 'h', 'd'"
            )
        number, unit = match.groups()
        if unit not in _UNIT_SECONDS:
            raise ValueError(
                f"invalid time span {text!r}: unknown unit {unit!r} "
                "(use us, ms, s, min, h, d, w, M or y)"
            )
        total += float(number) * _UNIT_SECONDS[unit]
        pos = match.end()
    return total


# --- resource limits --------------------------------------------------------------------------
# systemd.resource-control(5): sizes are parse_size() with base 1024, percentages are
# parse_permyriad(): "%" with up to two decimals, "‰" with one, "‱" whole.

_SIZE_FACTORS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4,
                 "P": 1024**5, "E": 1024**6}
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]?)")
_PERCENT = re.compile(r"(\d+)(?:\.(\d+))?(%|‰|‱)")
_PER_MYRIAD = {"%": (100, 2), "‰": (10, 1), "‱": (1, 0)}  # per ten thousand, decimals allowed


def parse_permyriad(text: str) -> int:
    """A percentage (or per mille, per myriad) in parts per ten thousand: '20%' -> 2000."""
    match = _PERCENT.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a percentage such as 20% (or 200‰, 2000‱)")
    whole, fraction, sign = match[1], match[2] or "", match[3]
    factor, decimals = _PER_MYRIAD[sign]
    if len(fraction) > decimals:
        raise ValueError(f"at most {decimals} decimals before {sign}")
    # the decimals allowed are exactly those of one part in ten thousand
    return int(whole) * factor + (int(fraction.ljust(decimals, "0")) if decimals else 0)


def parse_memory_max(text: str, physical: int | None = None) -> int | None:
    """MemoryMax=: bytes with an optional K, M, G, T, P or E suffix (base 1024), a percentage
    of the physical memory (`physical` bytes; default this host's) up to 100%, or infinity
    (None). systemd refuses 0 and anything else."""
    text = text.strip()
    if text == "infinity":
        return None
    if text[-1:] in _PER_MYRIAD:
        myriad = parse_permyriad(text)
        if myriad > 10_000:
            raise ValueError("a percentage of the physical memory must be at most 100%")
        if physical is None:
            physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = physical * myriad // 10_000
    else:
        match = _SIZE.fullmatch(text)
        if match is None:
            raise ValueError("expected a size such as 512M, 2G or 50%, or infinity")
        if match[2] not in _SIZE_FACTORS:
            raise ValueError(f"unknown suffix {match[2]!r}: use K, M, G, T, P or E (base 1024)")
        limit = int(float(match[1]) * _SIZE_FACTORS[match[2]])
    if limit <= 0:
        raise ValueError("a memory limit must be above 0 (infinity for none)")
    return limit


def parse_cpu_quota(text: str) -> float:
    """CPUQuota=: a percentage of one CPU, above 100% for more than one; in CPUs (0.2 for 20%)."""
    myriad = parse_permyriad(text)
    if myriad <= 0:
        raise ValueError("expected a percentage above 0%")
    return myriad / 10_000


# --- booleans ---------------------------------------------------------------------------------

_TRUE_WORDS = ("1", "yes", "y", "true", "t", "on")
_FALSE_WORDS = ("0", "no", "n", "false", "f", "off")


def parse_boolean(text: str) -> bool:
    """systemd's boolean words, case-insensitive."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean: use yes/no, true/false, on/off or 1/0")


# --- quoted words -----------------------------------------------------------------------------

_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "s": " ", ";": ";", " ": " ",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _unescape_at(text: str, pos: int) -> tuple[str, int]:
    """Decode the C-style escape whose backslash is at text[pos]; return (char, next position)."""
    if pos + 1 >= len(text):
        raise ValueError(f"trailing backslash in {text!r}")
    code = text[pos + 1]
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code], pos + 2
    if code in _HEX_ESCAPES:
        width = _HEX_ESCAPES[code]
        digits = text[pos + 2 : pos + 2 + width]
        if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"invalid escape \\{code}{digits} in {text!r}")
        return _not_nul(int(digits, 16), text), pos + 2 + width
    digits = text[pos + 1 : pos + 4]
    if len(digits) == 3 and all(c in "01234567" for c in digits):
        return _not_nul(int(digits, 8), text), pos + 4
    raise ValueError(f"invalid escape \\{code} in {text!r}")


def _not_nul(code: int, text: str) -> str:
    """systemd's cunescape refuses an escaped NUL: no argument or variable can hold one."""
    if code == 0:
        raise ValueError(f"escaped NUL in {text!r}: an argument or a variable cannot hold one")
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"escape of U+{code:X} in {text!r} is not a character")
    return chr(code)


@dataclass(frozen=True)
class _Word:
    text: str
    bare: str  # the word as written, quotes and escapes included


def _split_words(text: str) -> list[_Word]:
    """Split on whitespace, honouring quotes (also inside a word) and C escapes, like systemd's
    extract_first_word(EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE)."""
    words: list[_Word] = []
    pos = 0
    length = len(text)
    while True:
        while pos < length and text[pos].isspace():
            pos += 1
        if pos >= length:
            return words
        start = pos
        chars: list[str] = []
        quote: str | None = None
        while pos < length:
            char = text[pos]
            if quote is None and char.isspace():
                break
            if char == "\\":
                decoded, pos = _unescape_at(text, pos)
                chars.append(decoded)
            elif quote is None and char in "'\"":
                quote = char
                pos += 1
            elif char == quote:
                quote = None
                pos += 1
            else:
                chars.append(char)
                pos += 1
        if quote is not None:
            raise ValueError(f"unbalanced {quote} quote in {text!r}")
        words.append(_Word("".join(chars), text[start:pos]))


# --- command lines ----------------------------------------------------------------------------

_EXEC_PREFIXES = "-@:+!"


@dataclass(frozen=True)
class ExecCommand:
    """One ExecStart=-style command line, parsed but not yet variable-expanded.

    argv[0] is the program to run: an absolute path, or a bare name looked up in PATH.
    argv0 is the name passed to it as argv[0] when the '@' prefix gave one.
    expand_env is False under the ':' prefix.
    """

    argv: tuple[str, ...]
    ignore_failure: bool = False
    argv0: str | None = None
    expand_env: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "argv": list(self.argv),
            "ignore_failure": self.ignore_failure,
            "argv0": self.argv0,
            "expand_env": self.expand_env,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ExecCommand:
        argv = data["argv"]
        assert isinstance(argv, list)
        argv0 = data.get("argv0")
        return cls(
            argv=tuple(str(a) for a in argv),
            ignore_failure=bool(data.get("ignore_failure", False)),
            argv0=str(argv0) if argv0 is not None else None,
            expand_env=bool(data.get("expand_env", True)),
        )


def parse_exec(value: str) -> ExecCommand:
    """Parse one command line with systemd.service(5) rules.

    Prefixes: '-' ignores a failure exit, '@' makes the second word argv[0], ':' turns off
    $VAR expansion; '+', '!' and '!!' (privilege handling) are accepted and have no effect here.
    """
    text = value.strip()
    prefix_len = 0
    while prefix_len < len(text) and text[prefix_len] in _EXEC_PREFIXES:
        prefix_len += 1
    prefixes = text[:prefix_len]
    for flag in "-@:":
        if prefixes.count(flag) > 1:
            raise ValueError(f"prefix {flag!r} given twice in command line {value!r}")
    words = _split_words(text[prefix_len:])
    if not words:
        raise ValueError(f"empty command line {value!r}: give an executable and its arguments")
    for word in words:
        if word.bare == ";":
            raise ValueError(
                f"';' separates commands, which is not supported in {value!r}: "
                "write one Exec...= line per command, or '\\;' for a literal semicolon"
            )
    program = words[0].text
    if not program or ("/" in program and not program.startswith("/")):
        raise ValueError(
            f"executable {program!r} in {value!r} must be an absolute path or a bare name in PATH"
        )
    if "$" in program:
        raise ValueError(
            f"executable {program!r} in {value!r} is never expanded, so it names no program: "
            "write its path, or run it through /bin/sh -c '...'"
        )
    rest = [w.text for w in words[1:]]
    argv0: str | None = None
    if "@" in prefixes:
        if not rest:
            raise ValueError(f"'@' prefix in {value!r} needs an argv[0] after the executable")
        argv0 = rest.pop(0)
    return ExecCommand(
        argv=(program, *rest),
        ignore_failure="-" in prefixes,
        argv0=argv0,
        expand_env=":" not in prefixes,
    )


_VAR_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_WHOLE_WORD_VAR = re.compile(rf"\$({_VAR_NAME})")
_BRACED_VAR = re.compile(rf"\$\$|\$\{{({_VAR_NAME})(?:(:[-+])([^}}]*))?\}}")


def _expand_braced(word: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = env.get(match.group(1), "")
        operator, operand = match.group(2), match.group(3)
        if operator == ":-":
            return value or operand
        if operator == ":+":
            return operand if value else ""
        return value

    return _BRACED_VAR.sub(replace, word)


def expand_argv(cmd: ExecCommand, env: Mapping[str, str]) -> list[str]:
    """The argv to execute: '${VAR}' is replaced inside its word, a word that is exactly '$VAR'
    becomes the value split at whitespace (zero or more words), '$$' is a literal '$'.
    Unknown variables expand to nothing. The executable itself is never expanded."""
    if not cmd.expand_env:
        return list(cmd.argv)
    argv = [cmd.argv[0]]
    for word in cmd.argv[1:]:
        whole = _WHOLE_WORD_VAR.fullmatch(word)
        if whole:
            argv.extend(env.get(whole.group(1), "").split())
        else:
            argv.append(_expand_braced(word, env))
    return argv


# --- environment ------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split_assignment(assignment: str, where: str) -> tuple[str, str]:
    name, sep, val = assignment.partition("=")
    if not sep or not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"invalid environment assignment {assignment!r} in {where}: "
            "expected NAME=VALUE with NAME made of letters, digits and '_'"
        )
    return name, val


def parse_environment(values: list[str]) -> dict[str, str]:
    """Merge Environment= values in order. Each value holds space-separated, optionally quoted
    NAME=VALUE assignments; later ones win; an empty value resets the list (as systemd does)."""
    env: dict[str, str] = {}
    for value in values:
        if not value.strip():
            env.clear()
            continue
        for word in _split_words(value):
            name, val = _split_assignment(word.text, f"Environment={value}")
            env[name] = val
    return env


_DOUBLE_QUOTE_ESCAPES = '"\\`$'


def _read_env_value(text: str, pos: int) -> tuple[str, int]:
    """Read an EnvironmentFile value from text[pos] up to the end of its (logical) line.
    Unquoted trailing whitespace is dropped; backslash-newline continues the line."""
    out: list[str] = []
    keep = 0  # length of out up to the last character that must be kept
    length = len(text)
    while pos < length and text[pos] in " \t":
        pos += 1
    while pos < length and text[pos] != "\n":
        char = text[pos]
        if char == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                raise ValueError("unbalanced ' quote")
            out.extend(text[pos + 1 : end])
            keep = len(out)
            pos = end + 1
        elif char == '"':
            pos += 1
            while True:
                if pos >= length:
                    raise ValueError('unbalanced " quote')
                char = text[pos]
                if char == '"':
                    pos += 1
                    break
                if char == "\\" and pos + 1 < length:
                    follower = text[pos + 1]
                    if follower == "\n":
                        pos += 2
                        continue
                    if follower in _DOUBLE_QUOTE_ESCAPES:
                        out.append(follower)
                        pos += 2
                        continue
                out.append(char)
                pos += 1
            keep = len(out)
        elif char == "\\":
            if pos + 1 < length and text[pos + 1] != "\n":
                out.append(text[pos + 1])
                keep = len(out)
            pos += 2
        else:
            out.append(char)
            if not char.isspace():
                keep = len(out)
            pos += 1
    return "".join(out[:keep]), pos


def decode_environment_file(data: bytes) -> dict[str, str]:
    """Parse the bytes of an EnvironmentFile=, as read at run time: the file must be UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"line {line_no}: not valid UTF-8: save the file as UTF-8 text") from None
    return parse_environment_file(text)


def parse_environment_file(text: str) -> dict[str, str]:
    """Parse an EnvironmentFile=: NAME=VALUE lines, '#' or ';' comment lines, blank lines,
    single or double quoted values (which may span lines). A NUL byte is refused: the
    environment of a process cannot hold one."""
    nul = text.find("\0")
    if nul >= 0:
        raise ValueError(f"line {text.count(chr(10), 0, nul) + 1}: contains a NUL byte")
    env: dict[str, str] = {}
    pos = 0
    length = len(text)
    while pos < length:
        while pos < length and text[pos] in " \t\r\n":
            pos += 1
        if pos >= length:
            break
        line_no = text.count("\n", 0, pos) + 1
        if text[pos] in "#;":
            end = text.find("\n", pos)
            pos = length if end < 0 else end + 1
            continue
        eq = text.find("=", pos)
        newline = text.find("\n", pos)
        if eq < 0 or (0 <= newline < eq):
            line = text[pos : newline if newline >= 0 else length]
            raise ValueError(f"line {line_no}: expected NAME=VALUE, got {line!r}")
        name = text[pos:eq].strip()
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(
                f"line {line_no}: invalid variable name {name!r}: use letters, digits and '_'"
            )
        try:
            env[name], pos = _read_env_value(text, eq + 1)
        except ValueError as exc:
            raise ValueError(f"line {line_no}: {exc}") from None
    return env
