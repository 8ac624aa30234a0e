"""How a value, a password above all, is written into each format the roles render (pure).

One function per format, and every renderer goes through it: a value is never pasted into a
file as is. Each returns text that the format's own parser reads back as exactly the value, or
raises ValueError for a value that the format cannot carry.
"""
from __future__ import annotations

import shlex
from urllib.parse import quote

# Characters that end a line for Python's file iteration (which oslo.config reads with) or for
# str.splitlines, and NUL, which no C-string consumer keeps.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
UNREPRESENTABLE = LINE_BREAKS | {"\x00"}


def refuse_unrepresentable(value: str, what: str) -> None:
    bad = sorted({repr(c) for c in value if c in UNREPRESENTABLE})
    if bad:
        raise ValueError(f"{what} cannot contain {', '.join(bad)} (line breaks or NUL)")


def shell(value: str) -> str:
    """A word for a POSIX shell (openrc): sourcing it runs nothing and expands nothing."""
    if "\x00" in value:
        raise ValueError("a shell word cannot contain NUL")
    return shlex.quote(value)


def yaml(value: str) -> str:
    """A YAML double-quoted scalar (clouds.yaml). Everything outside printable ASCII is escaped,
    so no indicator (`: `, `#`, `*`, `&`, `!`), quote, line break or BOM can change the meaning,
    and PyYAML's reader, which refuses some characters written literally, never sees them."""
    out = []
    for c in value:
        code = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= code < 0x7F:
            out.append(c)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def url_userinfo(value: str) -> str:
    """A user name or password inside a URL (database, AMQP): every reserved character
    (`@ / # : ? %` and the rest) percent-encoded."""
    return quote(value, safe="")


def oslo_ini(value: str) -> str:
    """A value for oslo.config's INI files.

    oslo.config substitutes `$name` and `${name}` in every value, so a literal `$` is `$$`. Its
    parser strips the whitespace around a value, and then one pair of matching quotes around it;
    a value that would lose either is wrapped in a pair of double quotes, which the parser takes
    off again. A `#` or `;` only starts a comment at the start of a line, never after `key =`.
    Line breaks end the value, or join continuation lines with their indentation lost.
    """
    refuse_unrepresentable(value, "an oslo.config value")
    text = value.replace("$", "$$")
    stripped_away = text != text.strip()
    quotes_lost = bool(text) and text[0] == text[-1] and text[0] in "\"'"
    return f'"{text}"' if stripped_away or quotes_lost else text


def erlang_binary(value: str) -> str:
    """An Erlang UTF-8 binary literal (RabbitMQ's advanced.config). RabbitMQ's rabbitmq.conf has
    no quoting at all: its parser ends a value at any `#`, so secrets go through this instead."""
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= ord(c) < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{{{ord(c):x}}}")
    return '<<"' + "".join(out) + '"/utf8>>'
