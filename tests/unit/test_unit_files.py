"""Unit files on disk, templates and instances, the content hash, `verify` over several files."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from stackfleet.unit import (
    UnitInvalid,
    check_unit_set,
    instantiate,
    load_unit_file,
    parse_unit,
    verify_json,
    verify_paths,
)
from test_unit_support import SERVICE

TEMPLATE = """\
[Unit]
Description=web instance %i

[Service]
ExecStart=/bin/echo %n

[X-Fleet]
Conflicts=%p@*.service
MachineMetadata=slot=%i
"""


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


# --- hash -----------------------------------------------------------------------------------

def test_hash_is_sha1_of_the_exact_text() -> None:
    text = SERVICE + "# comment\n"
    unit = parse_unit(text, "a.service")
    assert unit.hash == hashlib.sha1(text.encode()).hexdigest()
    assert parse_unit(text, "b.service", "/elsewhere").hash == unit.hash


@pytest.mark.parametrize("edit", [
    lambda t: t + "\n", lambda t: t.replace("true", "false"), lambda t: t + "# c\n",
    lambda t: t.replace("\n", "\r\n"), lambda t: " " + t,
])
def test_any_change_changes_the_hash(edit) -> None:  # type: ignore[no-untyped-def]
    text = SERVICE + "Restart=always\n"
    assert parse_unit(edit(text), "a.service").hash != parse_unit(text, "a.service").hash


# --- templates ------------------------------------------------------------------------------

def test_instantiate_expands_for_the_instance() -> None:
    template = parse_unit(TEMPLATE, "web@.service", "/units/web@.service")
    assert template.is_template and template.instance == ""
    unit = instantiate(template, "3")
    assert (unit.name, unit.prefix, unit.instance, unit.unit_type) == ("web@3.service", "web", "3", "service")
    assert not unit.is_template
    assert unit.path == "/units/web@.service"
    assert unit.get("Service", "ExecStart") == ["/bin/echo web@3.service"]
    assert unit.constraints.machine_metadata == {"slot": frozenset({"3"})}
    assert unit.constraints.conflicts == ("web@*.service",)
    assert unit.hash == template.hash  # one body, many instances


def test_instantiate_refuses_non_templates_and_bad_instances() -> None:
    plain = parse_unit(SERVICE, "a.service")
    template = parse_unit(TEMPLATE, "web@.service")
    for unit, instance, fragment in [(plain, "1", "not a template"),
                                     (template, "", "instance name is empty"),
                                     (template, "a b", "contains")]:
        with pytest.raises(UnitInvalid) as info:
            instantiate(unit, instance)
        assert fragment in info.value.errors[0].message
        assert info.value.errors[0].hint


def test_instantiate_revalidates_under_the_instance_name() -> None:
    template = parse_unit(SERVICE + "RestartSec=%i\n", "t@.service")
    assert instantiate(template, "5").get("Service", "RestartSec") == ["5"]
    with pytest.raises(UnitInvalid) as info:
        instantiate(template, "soon")
    assert info.value.errors[0].line == 3


# --- load_unit_file -------------------------------------------------------------------------

def test_load_unit_file_names_it_after_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "db.service", SERVICE)
    unit = load_unit_file(path)
    assert (unit.name, unit.path, unit.text) == ("db.service", path, SERVICE)
    assert load_unit_file(path, name="other.service").name == "other.service"


def test_load_unit_file_falls_back_to_the_template(tmp_path: Path) -> None:
    template_path = write(tmp_path, "web@.service", TEMPLATE)
    unit = load_unit_file(str(tmp_path / "web@7.service"))
    assert unit.name == "web@7.service" and unit.path == template_path
    assert unit.get("Unit", "Description") == ["web instance 7"]


def test_an_instance_file_of_its_own_wins_over_the_template(tmp_path: Path) -> None:
    write(tmp_path, "web@.service", TEMPLATE)
    own = write(tmp_path, "web@7.service", SERVICE)
    assert load_unit_file(own).text == SERVICE


@pytest.mark.parametrize("name, fragment", [
    ("db.service", "no such file"),
    ("web@1.service", "no template web@.service"),
])
def test_missing_file(tmp_path: Path, name: str, fragment: str) -> None:
    path = str(tmp_path / name)
    with pytest.raises(UnitInvalid) as info:
        load_unit_file(path)
    [err] = info.value.errors
    assert err.path == path and err.line == 0 and fragment in err.message and err.hint


def test_missing_file_with_a_bad_name_reports_both(tmp_path: Path) -> None:
    with pytest.raises(UnitInvalid) as info:
        load_unit_file(str(tmp_path / "nosuffix"))
    assert [e.message for e in info.value.errors][0] == "no such file"
    assert len(info.value.errors) == 2


def test_directory_and_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(UnitInvalid) as info:
        load_unit_file(str(tmp_path), name="x.service")
    assert "directory" in info.value.errors[0].message
    binary = tmp_path / "bin.service"
    binary.write_bytes(b"[Service]\nExecStart=/bin/true\nDescription=\xff\xfe\n")
    with pytest.raises(UnitInvalid) as info:
        load_unit_file(str(binary))
    assert info.value.errors[0].line == 3 and "UTF-8" in info.value.errors[0].message
    if os.geteuid() != 0:  # root reads everything
        locked = Path(write(tmp_path, "locked.service", SERVICE))
        locked.chmod(0)
        with pytest.raises(UnitInvalid) as info:
            load_unit_file(str(locked))
        assert "cannot read" in info.value.errors[0].message


def test_errors_in_a_file_point_at_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.service", "[Service]\nExecStart=/bin/true\nRestart=maybe\n")
    with pytest.raises(UnitInvalid) as info:
        load_unit_file(path)
    assert str(info.value).startswith(f"{path}:3: Restart=maybe")


# --- verify -----------------------------------------------------------------------------------

def test_verify_paths_collects_units_and_errors_of_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, "good.service", SERVICE + "[X-Fleet]\nGlobal=true\n")
    write(tmp_path, "web@.service", TEMPLATE)
    bad1 = write(tmp_path, "bad1.service", "[Service]\nRestart=x\n")
    bad2 = write(tmp_path, "bad2.service", SERVICE + "[X-Fleet]\nGlobal=true\nMachineID=a\n")
    units, errors = verify_paths([good, bad1, str(tmp_path / "web@2.service"), bad2,
                                  str(tmp_path / "gone.service")])
    assert [u.name for u in units] == ["good.service", "web@2.service"]
    assert [(Path(e.path).name, e.line) for e in errors] == [
        ("bad1.service", 1), ("bad1.service", 2), ("bad2.service", 5), ("gone.service", 0)]


def test_verify_json() -> None:
    unit = parse_unit(SERVICE + "[X-Fleet]\nGlobal=true\nMachineMetadata=role=compute\n", "c.service")
    assert verify_json(unit) == {
        "name": "c.service", "hash": unit.hash, "exclusive": False, "template": False,
        "constraints": unit.constraints.to_json(),
    }
    assert verify_json(parse_unit(TEMPLATE, "web@.service"))["template"] is True


def fleet(name: str, body: str) -> object:
    return parse_unit(SERVICE + "[X-Fleet]\n" + body, name, f"/u/{name}")


def test_machine_of_cycle_is_reported_on_each_unit() -> None:
    units = [fleet("a.service", "MachineOf=b.service\n"), fleet("b.service", "MachineOf=a.service\n"),
             fleet("c.service", "MachineOf=a.service\n")]
    errors = check_unit_set(units)  # type: ignore[arg-type]
    assert sorted((e.path, e.line) for e in errors) == [("/u/a.service", 4), ("/u/b.service", 4)]
    assert all("cycle" in e.message and e.hint for e in errors)


def test_replaces_cycle_over_three_units() -> None:
    units = [fleet("a.service", "Replaces=b.service\n"), fleet("b.service", "Replaces=c.service\n"),
             fleet("c.service", "Replaces=a.service\n")]
    errors = check_unit_set(units)  # type: ignore[arg-type]
    assert len(errors) == 3 and "a.service -> b.service -> c.service -> a.service" in errors[0].message


def test_acyclic_references_and_identical_duplicates_pass() -> None:
    units = [fleet("a.service", "MachineOf=b.service\nReplaces=old.service\n"),
             fleet("b.service", "Replaces=c.service\n"), fleet("b.service", "Replaces=c.service\n")]
    assert check_unit_set(units) == []  # type: ignore[arg-type]


def test_same_name_with_different_bodies_is_an_error() -> None:
    units = [fleet("a.service", "Global=true\n"), fleet("a.service", "Global=false\n")]
    [err] = check_unit_set(units)  # type: ignore[arg-type]
    assert "other contents" in err.message
