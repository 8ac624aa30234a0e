"""systemd.syntax(7): sections, assignments, comments, continuations, repeated keys, specifiers."""
from __future__ import annotations

import pytest

from stackfleet.unit import UnitError, UnitInvalid, parse_unit
from test_unit_support import errors_of, one_error


def test_sections_keep_order_and_lines() -> None:
    unit = parse_unit("[Unit]\nDescription=d\n\n[Service]\nExecStart=/bin/true\n", "a.service")
    assert [(s.name, s.line) for s in unit.sections] == [("Unit", 1), ("Service", 4)]
    assert [(e.key, e.line) for e in unit.sections[1].entries] == [("ExecStart", 5)]


def test_whitespace_around_equals_and_value_is_stripped() -> None:
    unit = parse_unit("[Service]\n  ExecStart  =   /bin/echo  a  b   \n", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/echo  a  b"]


def test_value_may_contain_equals() -> None:
    unit = parse_unit("[Service]\nExecStart=/bin/true\nEnvironment=A=b=c\n", "a.service")
    assert unit.get("Service", "Environment") == ["A=b=c"]


@pytest.mark.parametrize("comment", ["# hash", "; semicolon", "   # indented"])
def test_comment_lines_are_ignored(comment: str) -> None:
    unit = parse_unit(f"{comment}\n[Service]\n{comment}\nExecStart=/bin/true\n", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/true"]
    assert len(unit.sections[0].entries) == 1


def test_hash_inside_a_value_is_not_a_comment() -> None:
    unit = parse_unit("[Unit]\nDescription=a # b\n[Service]\nExecStart=/bin/true\n", "a.service")
    assert unit.get("Unit", "Description") == ["a # b"]


def test_continuation_joins_with_a_space_and_keeps_first_line() -> None:
    text = "[Service]\nExecStart=/bin/echo one \\\ntwo \\\nthree\nRestart=always\n"
    unit = parse_unit(text, "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/echo one  two  three"]
    entries = unit.section("Service").entries
    assert [(e.key, e.line) for e in entries] == [("ExecStart", 2), ("Restart", 5)]


def test_comment_inside_continuation_is_skipped() -> None:
    text = "[Service]\nExecStart=/bin/echo a \\\n# not part of it\n; nor this\nb\n"
    unit = parse_unit(text, "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/echo a  b"]


def test_escaped_backslash_at_end_is_not_a_continuation() -> None:
    text = "[Service]\nExecStart=/bin/echo a\\\\\nRestart=always\n"
    unit = parse_unit(text, "a.service")
    assert unit.get_raw("Service", "ExecStart") == ["/bin/echo a\\\\"]
    assert unit.get("Service", "Restart") == ["always"]


def test_continuation_at_end_of_file_is_kept() -> None:
    unit = parse_unit("[Service]\nExecStart=/bin/echo a \\", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/echo a"]


def test_crlf_and_bom_are_accepted() -> None:
    unit = parse_unit("\ufeff[Service]\r\nExecStart=/bin/true\r\n", "a.service")
    assert unit.get("Service", "ExecStart") == ["/bin/true"]


def test_repeated_keys_keep_order_and_empty_assignment_resets() -> None:
    text = ("[Service]\nExecStart=/bin/true\nExecStartPre=/bin/a\nExecStartPre=/bin/b\n"
            "ExecStartPre=\nExecStartPre=/bin/c\nExecStartPre=/bin/d\n")
    unit = parse_unit(text, "a.service")
    assert unit.get("Service", "ExecStartPre") == ["/bin/c", "/bin/d"]


def test_repeated_section_headers_merge() -> None:
    text = "[Service]\nExecStartPre=/bin/a\n[Unit]\nDescription=x\n[Service]\nExecStart=/bin/b\n"
    unit = parse_unit(text, "a.service")
    assert [s.name for s in unit.sections] == ["Service", "Unit"]
    assert unit.get("Service", "ExecStart") == ["/bin/b"]
    assert unit.get("Service", "ExecStartPre") == ["/bin/a"]


def test_quotes_are_preserved_in_raw_values() -> None:
    text = '[Service]\nExecStart=/bin/sh -c "echo hi; echo \'there\'"\n'
    unit = parse_unit(text, "a.service")
    assert unit.get_raw("Service", "ExecStart") == ['/bin/sh -c "echo hi; echo \'there\'"']


def test_get_of_missing_section_or_key_is_empty() -> None:
    unit = parse_unit("[Service]\nExecStart=/bin/true\n", "a.service")
    assert unit.get("Unit", "Description") == []
    assert unit.get("Service", "User") == []


# --- specifiers ---------------------------------------------------------------------------

SPECIFIER_TEXT = "[Unit]\nDescription=%n|%N|%p|%i|%%|100%%\n[Service]\nExecStart=/bin/echo %i\n"


@pytest.mark.parametrize("name, expected", [
    ("web@1.service", "web@1.service|web@1|web|1|%|100%"),
    ("web.service", "web.service|web|web||%|100%"),
    ("web@.service", "web@.service|web@|web||%|100%"),
    ("db@a:b.service", "db@a:b.service|db@a:b|db|a:b|%|100%"),
])
def test_specifiers_expand_from_the_name(name: str, expected: str) -> None:
    unit = parse_unit(SPECIFIER_TEXT, name)
    assert unit.get("Unit", "Description") == [expected]
    assert unit.get_raw("Unit", "Description") == ["%n|%N|%p|%i|%%|100%%"]


def test_specifiers_expand_in_every_section() -> None:
    unit = parse_unit("[Socket]\nListenStream=/run/%p.sock\n[X-Fleet]\nMachineOf=%p.service\n",
                      "db.socket")
    assert unit.get("Socket", "ListenStream") == ["/run/db.sock"]
    assert unit.constraints.machine_of == ("db.service",)


def test_percent_percent_is_not_rescanned() -> None:
    unit = parse_unit("[Unit]\nDescription=%%i\n[Service]\nExecStart=/bin/true\n", "w@7.service")
    assert unit.get("Unit", "Description") == ["%i"]


@pytest.mark.parametrize("value, fragment", [
    ("/bin/date +%s", "%s is not supported"),
    ("/bin/echo %H", "%H is not supported"),
    ("/bin/echo %z", "%z is unknown"),
    ("/bin/echo 100%", "'%' at the end"),
])
def test_unknown_specifier_is_an_error_with_line_and_hint(value: str, fragment: str) -> None:
    err = one_error(f"[Unit]\nDescription=x\n[Service]\nExecStart={value}\n")
    assert err.line == 4
    assert fragment in err.message
    assert err.hint and "%%" in err.hint


# --- syntax errors ------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, fragment", [
    ("Description=x\n[Service]\nExecStart=/bin/true\n", 1, "outside of any section"),
    ("[Service]\nExecStart=/bin/true\njust words\n", 3, "is not a Key=Value"),
    ("[Service]\nExecStart=/bin/true\n=value\n", 3, "no name before"),
    ("[Service]\nExecStart=/bin/true\n[Unit\n", 3, "no closing"),
    ("[Service]\nExecStart=/bin/true\n[]\n", 3, "invalid section header"),
    ("[Service]\nExecStart=/bin/true\n[Service] trailing\n", 3, "no closing"),
])
def test_syntax_errors_name_the_line_and_give_a_hint(text: str, line: int, fragment: str) -> None:
    err = one_error(text)
    assert (err.line, err.path) == (line, "app.service")
    assert fragment in err.message
    assert err.hint


def test_all_errors_are_reported_not_just_the_first() -> None:
    text = "Orphan=1\n[Service]\nExecStart=/bin/true\nno equals\nRestart=sometimes\n[Bogus]\n"
    errors = errors_of(text)
    assert [e.line for e in errors] == [1, 4, 5, 6]


def test_error_string_format() -> None:
    err = UnitError("/u/a.service", 3, "broken", "fix it")
    assert str(err) == "/u/a.service:3: broken (fix it)"
    assert str(UnitError("/u/a.service", 0, "broken")) == "/u/a.service:0: broken"
    invalid = UnitInvalid([err, UnitError("b", 1, "m")])
    assert str(invalid) == "/u/a.service:3: broken (fix it)\nb:1: m"


def test_errors_use_the_given_path() -> None:
    errors = errors_of("[Service]\nRestart=never\n", path="/srv/units/app.service")
    assert {e.path for e in errors} == {"/srv/units/app.service"}


def test_a_bad_specifier_is_reported_once_not_again_as_a_bad_value() -> None:
    err = one_error("[Service]\nExecStart=/bin/true\nRestartSec=%s\n")
    assert err.line == 3 and "%s" in err.message
