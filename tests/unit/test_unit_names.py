"""Unit names: systemd validity, fleet's unit types, templates and instances."""
from __future__ import annotations

import pytest

from stackfleet.unit import UnitInvalid, parse_unit_name


@pytest.mark.parametrize("name, prefix, instance, unit_type, template", [
    ("web.service", "web", None, "service", False),
    ("web@.service", "web", "", "service", True),
    ("web@1.service", "web", "1", "service", False),
    ("a:b_c-d.e\\x2d.socket", "a:b_c-d.e\\x2d", None, "socket", False),
    ("mnt-data.mount", "mnt-data", None, "mount", False),
    ("t@x.timer", "t", "x", "timer", False),
    ("multi.user.target", "multi.user", None, "target", False),
])
def test_valid_names(name: str, prefix: str, instance: str | None, unit_type: str,
                     template: bool) -> None:
    parsed = parse_unit_name(name)
    assert (parsed.name, parsed.prefix, parsed.instance, parsed.unit_type, parsed.is_template) == (
        name, prefix, instance, unit_type, template)


def test_template_and_stem() -> None:
    assert parse_unit_name("web@1.service").template == "web@.service"
    assert parse_unit_name("web@.service").template == "web@.service"
    assert parse_unit_name("web.service").template is None
    assert parse_unit_name("web@1.service").stem == "web@1"


@pytest.mark.parametrize("name, fragment, hint_fragment", [
    ("", "empty", "web.service"),
    ("web", "no type suffix", "web.service"),
    (".service", "nothing before", "web.service"),
    ("web.serivce", "unknown type", ".service"),
    ("web.", "unknown type", ".service"),
    ("@1.service", "nothing before '@'", "web@.service"),
    ("a@b@c.service", "more than one '@'", "\\x40"),
    ("we b.service", "contains", "systemd-escape"),
    ("web/1.service", "contains", "systemd-escape"),
    ("data@x.mount", "cannot be a template", ".service"),
    ("x" * 300 + ".service", "longer than", "shorter"),
])
def test_invalid_names_have_a_hint(name: str, fragment: str, hint_fragment: str) -> None:
    with pytest.raises(UnitInvalid) as info:
        parse_unit_name(name, path="/u/" + name)
    [err] = info.value.errors
    assert err.line == 0 and err.path == "/u/" + name
    assert fragment in err.message
    assert err.hint and hint_fragment in err.hint


@pytest.mark.parametrize("name, fragment", [
    ("...service", "the name '..' starts with '.'"),
    ("..@x.service", "the name '..' starts with '.'"),
    (".hidden.service", "the name '.hidden' starts with '.'"),
    ("a@..service", "the instance '.' starts with '.'"),
    ("a@...service", "the instance '..' starts with '.'"),
    ("a@.x.service", "the instance '.x' starts with '.'"),
    ("x" * 248 + ".service", "longer than 255"),  # 256: fleet's limit, one over systemd's
])
def test_names_that_would_expand_to_dot_paths_or_break_systemd_are_refused(
        name: str, fragment: str) -> None:
    """%p and %i go into paths: a leading '.' would make them '.', '..' or hidden."""
    with pytest.raises(UnitInvalid) as info:
        parse_unit_name(name)
    [err] = info.value.errors
    assert fragment in err.message and err.hint


@pytest.mark.parametrize("name", ["web\t1.service", "web\n.service", "a@b/c.service", "a@b c.service",
                                  "web.service ", "web.service\n"])
def test_whitespace_and_slashes_are_refused_in_every_part(name: str) -> None:
    with pytest.raises(UnitInvalid):
        parse_unit_name(name)


@pytest.mark.parametrize("name", ["a..service", "a.b@c.d.service", "x" * 247 + ".service",
                                  "-.slice", "web@x\\x2e.service", "web@\\x2e.service"])
def test_dots_after_the_first_character_are_fine(name: str) -> None:
    assert parse_unit_name(name).name == name
