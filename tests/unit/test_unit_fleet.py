"""The [X-Fleet] options and fleet's rules for combining them."""
from __future__ import annotations

import pytest

from stackfleet.unit import Constraints, glob_matches, parse_unit
from test_unit_support import SERVICE, fleet_error, fleet_errors, fleet_unit


def test_no_fleet_section_gives_default_constraints() -> None:
    unit = parse_unit(SERVICE, "a.service")
    assert unit.constraints == Constraints()
    assert unit.constraints.exclusive


# --- MachineID ----------------------------------------------------------------------------

def test_machine_id() -> None:
    cons = fleet_unit("MachineID=2c2b8e3ae9c24b0ba5f2d8d6e2a0f9b1\n").constraints
    assert cons.machine_id == "2c2b8e3ae9c24b0ba5f2d8d6e2a0f9b1"


def test_machine_id_repeated_with_same_value_is_fine() -> None:
    assert fleet_unit("MachineID=abc\nMachineID=abc\n").constraints.machine_id == "abc"


def test_machine_id_reset_then_set() -> None:
    assert fleet_unit("MachineID=abc\nMachineID=\nMachineID=def\n").constraints.machine_id == "def"


@pytest.mark.parametrize("body, line", [("MachineID=abc\nMachineID=def\n", 5),
                                        ("MachineID=abc def\n", 4)])
def test_machine_id_with_two_machines_is_an_error(body: str, line: int) -> None:
    err = fleet_error(body)
    assert err.line == line and "second machine" in err.message
    assert err.hint and "MachineMetadata" in err.hint


# --- MachineOf ----------------------------------------------------------------------------

def test_machine_of_repeats_and_splits() -> None:
    cons = fleet_unit("MachineOf=db.service\nMachineOf=\"mq.service\" cache.service\n").constraints
    assert cons.machine_of == ("db.service", "mq.service", "cache.service")


@pytest.mark.parametrize("body, fragment, hint", [
    ("MachineOf=app.service\n", "names the unit itself", "remove"),
    ("MachineOf=%n\n", "names the unit itself", "remove"),
    ("MachineOf=db\n", "no type suffix", "db.service"),
    ("MachineOf=db@.service\n", "names a template", "db@1.service"),
])
def test_machine_of_errors(body: str, fragment: str, hint: str) -> None:
    err = fleet_error(body)
    assert err.line == 4 and fragment in err.message and err.hint and hint in err.hint


# --- MachineMetadata ----------------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    ("MachineMetadata=role=controller\n", {"role": {"controller"}}),
    ('MachineMetadata="role=controller" "disk=ssd"\n', {"role": {"controller"}, "disk": {"ssd"}}),
    ("MachineMetadata=role=controller disk=ssd\n", {"role": {"controller"}, "disk": {"ssd"}}),
    ("MachineMetadata=region=us-east-1\nMachineMetadata=region=us-west-1\n",
     {"region": {"us-east-1", "us-west-1"}}),
    ('MachineMetadata="region=us-east-1" "job=foo"\nMachineMetadata="region=us-west-1" "job=bar"\n',
     {"region": {"us-east-1", "us-west-1"}, "job": {"foo", "bar"}}),
    ('MachineMetadata="name=two words"\n', {"name": {"two words"}}),
    ("MachineMetadata=role=a\nMachineMetadata=\nMachineMetadata=role=b\n", {"role": {"b"}}),
])
def test_machine_metadata_keys_and_values_or_together(body: str, expected: dict[str, set[str]]) -> None:
    meta = fleet_unit(body).constraints.machine_metadata
    assert meta == {k: frozenset(v) for k, v in expected.items()}


@pytest.mark.parametrize("body, fragment", [
    ("MachineMetadata=role\n", "has no '='"),
    ("MachineMetadata==controller\n", "empty key"),
    ("MachineMetadata=role=\n", "empty value"),
    ("MachineMetadata=a=b=c\n", "more than one '='"),
    ('MachineMetadata="role=controller\n', "not closed"),
    ('MachineMetadata="" role=x\n', "empty quoted value"),
])
def test_machine_metadata_errors(body: str, fragment: str) -> None:
    err = fleet_error(body)
    assert err.line == 4 and fragment in err.message and err.hint


def test_all_bad_metadata_items_are_reported() -> None:
    errors = fleet_errors("MachineMetadata=a b=1 c=\n")
    assert len(errors) == 2 and {e.line for e in errors} == {4}


# --- Conflicts ----------------------------------------------------------------------------

def test_conflicts_globs_split_and_repeat() -> None:
    cons = fleet_unit("Conflicts=web@*.service db.service\nConflicts=cache?.service\n",
                      "web@1.service").constraints
    assert cons.conflicts == ("web@*.service", "db.service", "cache?.service")


def test_conflicts_glob_matching_itself_is_the_one_per_machine_idiom() -> None:
    assert fleet_unit("Conflicts=web@*.service\n", "web@1.service").constraints.conflicts


@pytest.mark.parametrize("body, fragment", [
    ("Conflicts=app.service\n", "names the unit itself"),
    ("Conflicts=%n\n", "names the unit itself"),
    ("Conflicts=web[.service\n", "not closed"),
    ("Conflicts=web\\ other.service\n", "backslash"),
    ("Conflicts=web[z-a].service\n", "reversed"),
])
def test_conflicts_errors(body: str, fragment: str) -> None:
    err = fleet_error(body)
    assert err.line == 4 and fragment in err.message and err.hint


@pytest.mark.parametrize("pattern, name, matches", [
    ("web@*.service", "web@1.service", True),
    ("web@*.service", "web@.service", True),
    ("web@*.service", "db@1.service", False),
    ("web?.service", "web1.service", True),
    ("web?.service", "web12.service", False),
    ("web[0-3].service", "web2.service", True),
    ("web[^0-3].service", "web2.service", False),
    ("web[^0-3].service", "web7.service", True),
    ("web\\*.service", "web*.service", True),
    ("web\\*.service", "webx.service", False),
    ("web.service", "web.service", True),
    ("web.service", "webxservice", False),
    ("web[.service", "web[.service", False),
])
def test_glob_semantics_follow_go_path_match(pattern: str, name: str, matches: bool) -> None:
    assert glob_matches(pattern, name) is matches


# --- Replaces -----------------------------------------------------------------------------

def test_replaces() -> None:
    assert fleet_unit("Replaces=old.service other.service\n").constraints.replaces == (
        "old.service", "other.service")


@pytest.mark.parametrize("body, fragment", [
    ("Replaces=app.service\n", "names the unit itself"),
    ("Replaces=old\n", "no type suffix"),
    ("Replaces=old@.service\n", "template"),
])
def test_replaces_errors(body: str, fragment: str) -> None:
    err = fleet_error(body)
    assert err.line == 4 and fragment in err.message and err.hint


# --- Global -------------------------------------------------------------------------------

@pytest.mark.parametrize("word, value", [
    ("true", True), ("yes", True), ("1", True), ("on", True), ("True", True),
    ("false", False), ("no", False), ("0", False), ("off", False),
])
def test_global_booleans(word: str, value: bool) -> None:
    cons = fleet_unit(f"Global={word}\n").constraints
    assert cons.global_ is value
    assert cons.exclusive is not value


def test_global_last_value_wins() -> None:
    assert fleet_unit("Global=true\nGlobal=false\n").constraints.global_ is False
    assert fleet_unit("Global=false\nGlobal=true\n").constraints.global_ is True


def test_global_bad_value() -> None:
    err = fleet_error("Global=everywhere\n")
    assert err.line == 4 and "not a boolean" in err.message and err.hint


def test_global_with_metadata_and_conflicts_is_allowed() -> None:
    cons = fleet_unit("Global=true\nMachineMetadata=role=compute\nConflicts=other.service\n").constraints
    assert cons.global_ and cons.machine_metadata == {"role": frozenset({"compute"})}
    assert cons.conflicts == ("other.service",)


# --- combinations (fleet api/units.go ValidateOptions) --------------------------------------

@pytest.mark.parametrize("body, message", [
    ("MachineID=abc\nMachineOf=db.service\n", "MachineID cannot be used with MachineOf"),
    ("MachineID=abc\nConflicts=db.service\n", "MachineID cannot be used with Conflicts"),
    ("MachineID=abc\nGlobal=true\n", "MachineID cannot be used with Global"),
    ("MachineID=abc\nReplaces=db.service\n", "MachineID cannot be used with Replaces"),
    ("Global=yes\nMachineOf=db.service\n", "Global cannot be used with MachineOf"),
    ("Global=yes\nReplaces=db.service\n", "Global cannot be used with Replaces"),
    ("Conflicts=x*.service\nReplaces=db.service\n", "Conflicts cannot be used with Replaces"),
])
def test_exclusive_options(body: str, message: str) -> None:
    err = fleet_error(body)
    assert err.message == message and err.line == 5 and err.hint


def test_combination_error_points_at_the_later_option() -> None:
    err = fleet_error("MachineOf=db.service\nMachineID=abc\n")
    assert err.line == 5


def test_global_false_combines_with_anything() -> None:
    cons = fleet_unit("Global=false\nMachineID=abc\n").constraints
    assert cons.machine_id == "abc" and not cons.global_


def test_machine_id_with_metadata_is_allowed_as_in_fleet() -> None:
    cons = fleet_unit("MachineID=abc\nMachineMetadata=role=x\n").constraints
    assert cons.machine_id == "abc" and cons.machine_metadata == {"role": frozenset({"x"})}


@pytest.mark.parametrize("body, fragment", [
    ("MachineOf=db@1.service\nConflicts=db@*.service\n", "matches Conflicts=db@*.service"),
])
def test_peer_that_is_also_a_conflict(body: str, fragment: str) -> None:
    errors = fleet_errors(body)
    assert any(fragment in e.message and e.line == 4 for e in errors)


def test_peer_that_is_also_replaced() -> None:
    errors = fleet_errors("MachineOf=db.service\nReplaces=db.service\n")
    assert {e.message for e in errors} == {"MachineOf=db.service is also in Replaces="}


# --- keys -----------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new", [
    ("X-ConditionMachineID", "MachineID"),
    ("X-ConditionMachineBootID", "MachineID"),
    ("X-ConditionMachineOf", "MachineOf"),
    ("X-ConditionMachineMetadata", "MachineMetadata"),
    ("X-Conflicts", "Conflicts"),
])
def test_old_fleet_names_are_refused_with_the_new_name(old: str, new: str) -> None:
    err = fleet_error(f"{old}=x\n")
    assert err.line == 4 and old in err.message and err.hint and f"{new}=" in err.hint


@pytest.mark.parametrize("key, suggestion", [
    ("MachineMetdata", "MachineMetadata"), ("machineof", "MachineOf"), ("Globl", "Global"),
])
def test_unknown_fleet_key_suggests_the_right_one(key: str, suggestion: str) -> None:
    err = fleet_error(f"{key}=x\n")
    assert err.line == 4 and err.hint and suggestion in err.hint


def test_fleet_section_in_a_socket_unit() -> None:
    unit = parse_unit("[Socket]\nListenStream=80\n[X-Fleet]\nMachineOf=%p.service\n", "web.socket")
    assert unit.constraints.machine_of == ("web.service",)


# --- templates ------------------------------------------------------------------------------

def test_template_constraints_that_depend_on_the_instance_are_checked_per_instance() -> None:
    body = "MachineOf=%p-data@%i.service\nConflicts=%n\n"
    template = fleet_unit(body, "web@.service")
    assert template.is_template
    instance = fleet_unit("MachineOf=%p-data@%i.service\n", "web@1.service")
    assert instance.constraints.machine_of == ("web-data@1.service",)
    assert fleet_error(body, "web@1.service").message == "Conflicts= names the unit itself"


def test_template_values_that_depend_on_the_instance_wait_for_it() -> None:
    body = "MachineMetadata=slot=%i\nGlobal=%i\n"
    template = fleet_unit(body, "w@.service")
    assert template.constraints == Constraints()
    assert fleet_unit(body, "w@yes.service").constraints.machine_metadata == {"slot": frozenset({"yes"})}
    errors = fleet_errors(body, "w@maybe.service")
    assert [e.line for e in errors] == [5]


def test_template_values_without_instance_are_checked_at_once() -> None:
    assert fleet_error("MachineMetadata=slot\n", "w@.service").line == 4
    assert fleet_error("MachineOf=%p@.service\n", "w@.service").line == 4


def test_literal_percent_i_does_not_defer_the_check() -> None:
    assert "has no '='" in fleet_error("MachineMetadata=%%i\n", "w@.service").message
