"""plan(): one example per placement rule and per reason text, plus apply() and the planning order."""
from __future__ import annotations

from collections.abc import Mapping

from stackfleet.engine.model import (
    Action,
    ClearReason,
    DesiredState,
    Job,
    Machine,
    RecordReason,
    Schedule,
    Snapshot,
    Unschedule,
    apply,
)
from stackfleet.engine.planner import plan, planning_order
from stackfleet.unit.model import Constraints


def machines(*specs: str) -> dict[str, Machine]:
    """'m1' or 'm1:role=controller,zone=a'."""
    out = {}
    for spec in specs:
        mid, _, meta = spec.partition(":")
        out[mid] = Machine(mid, dict(kv.split("=") for kv in meta.split(",")) if meta else {})
    return out


def job(name: str, desired: DesiredState = "launched", *, meta: Mapping[str, str] | None = None,
        **constraints: object) -> Job:
    """meta={'role': 'a|b'} is MachineMetadata role=a, role=b."""
    metadata = {k: frozenset(v.split("|")) for k, v in (meta or {}).items()}
    return Job(name, desired, Constraints(machine_metadata=metadata, **constraints))  # type: ignore[arg-type]


def snap(ms: dict[str, Machine], *jobs: Job, schedule: dict[str, dict[str, DesiredState]] | None = None,
         reasons: dict[str, str] | None = None, hashes: dict[str, dict[str, str]] | None = None) -> Snapshot:
    return Snapshot(ms, {j.name: j for j in jobs}, schedule or {}, reasons or {}, hashes or {})


def settle(s: Snapshot) -> tuple[list[Action], Snapshot]:
    """Plan once, apply, and check that planning again has nothing left to do."""
    actions = plan(s)
    after = apply(s, actions)
    assert plan(after) == []
    return actions, after


def where(s: Snapshot, unit: str) -> dict[str, DesiredState]:
    return dict(s.schedule.get(unit, {}))


# --- apply --------------------------------------------------------------------------------

def test_apply_changes_a_copy() -> None:
    s = snap(machines("m1", "m2"), schedule={"a": {"m1": "loaded"}, "b": {"m2": "launched"}},
             reasons={"c": "old"})
    after = apply(s, [Schedule("a", "m1", "launched"), Unschedule("b", "m2", "machine lost"),
                      Schedule("c", "m2", "loaded"), ClearReason("c"), RecordReason("d", "why")])
    assert after.schedule == {"a": {"m1": "launched"}, "c": {"m2": "loaded"}}
    assert after.reasons == {"d": "why"}
    assert s.schedule == {"a": {"m1": "loaded"}, "b": {"m2": "launched"}}
    assert s.reasons == {"c": "old"}


# --- inactive and destroyed jobs ----------------------------------------------------------

def test_inactive_job_loses_every_entry_and_its_reason() -> None:
    s = snap(machines("m1", "m2"), job("g", "inactive", global_=True),
             schedule={"g": {"m1": "launched", "m2": "launched", "dead": "launched"}},
             reasons={"g": "stale"})
    actions, after = settle(s)
    assert actions == [Unschedule("g", m, "job inactive") for m in ("dead", "m1", "m2")] + [ClearReason("g")]
    assert after.schedule == {}


def test_destroyed_job_loses_its_entries_and_reason() -> None:
    s = snap(machines("m1"), schedule={"gone": {"m1": "launched"}}, reasons={"gone": "x", "never": "y"})
    actions, _ = settle(s)
    assert actions == [Unschedule("gone", "m1", "job destroyed"), ClearReason("gone"), ClearReason("never")]


def test_inactive_unscheduled_job_needs_nothing() -> None:
    assert plan(snap(machines("m1"), job("a", "inactive"))) == []


# --- exclusive placement ------------------------------------------------------------------

def test_new_unit_goes_to_the_least_loaded_machine() -> None:
    s = snap(machines("m1", "m2", "m3"), job("a"), job("new", "loaded"),
             schedule={"a": {"m1": "launched"}, "x": {"m2": "launched"}})
    # "x" is a destroyed job: its entry is gone in this same plan, so m2 and m3 both carry 0.
    actions, after = settle(s)
    assert Schedule("new", "m2", "loaded") in actions
    assert where(after, "new") == {"m2": "loaded"}


def test_ties_break_by_machine_id_and_load_counts_this_plans_own_placements() -> None:
    s = snap(machines("m3", "m1", "m2"), *[job(f"u{i:02d}") for i in range(7)])
    _, after = settle(s)
    loads = {m: sum(m in e for e in after.schedule.values()) for m in ("m1", "m2", "m3")}
    assert loads == {"m1": 3, "m2": 2, "m3": 2}
    assert where(after, "u00") == {"m1": "launched"}
    assert where(after, "u01") == {"m2": "launched"}


def test_global_entries_count_as_load() -> None:
    # m1 sorts first, but the global unit already loads it.
    s = snap(machines("m1:role=x", "m2"), job("g", meta={"role": "x"}, global_=True), job("a"))
    _, after = settle(s)
    assert where(after, "a") == {"m2": "launched"}


def test_healthy_unit_stays_even_when_another_machine_is_emptier() -> None:
    s = snap(machines("m1", "m2"), job("a"), job("b"),
             schedule={"a": {"m1": "launched"}, "b": {"m1": "launched"}})
    assert plan(s) == []


def test_desired_change_rewrites_the_entry_in_place() -> None:
    s = snap(machines("m1", "m2"), job("a", "launched"), schedule={"a": {"m2": "loaded"}})
    actions, _ = settle(s)
    assert actions == [Schedule("a", "m2", "launched")]


def test_a_new_body_hash_reaches_every_machine_already_running_it() -> None:
    new = Job("g", "launched", Constraints(global_=True), "h2")
    moved = Job("a", "launched", Constraints(machine_id="m2"), "h2")
    s = snap(machines("m1", "m2"), new, moved, Job("same", "loaded", Constraints(), "h1"),
             schedule={"g": {"m1": "launched", "m2": "launched"}, "a": {"m1": "launched"}, "same": {"m1": "loaded"}},
             hashes={"g": {"m1": "h1", "m2": "h2"}, "a": {"m1": "h1"}, "same": {"m1": "h1"}})
    actions, after = settle(s)
    assert actions == [Unschedule("a", "m1", "constraints no longer met"),
                       Schedule("g", "m1", "launched", "h2"), Schedule("a", "m2", "launched", "h2")]
    assert after.hashes == {"g": {"m1": "h2", "m2": "h2"}, "a": {"m2": "h2"}, "same": {"m1": "h1"}}


def test_unit_on_a_dead_machine_is_moved() -> None:
    s = snap(machines("m2", "m3"), job("a"), job("b"),
             schedule={"a": {"m1": "launched"}, "b": {"m2": "launched"}})
    actions, after = settle(s)
    assert actions == [Unschedule("a", "m1", "machine lost"), Schedule("a", "m3", "launched")]
    assert where(after, "b") == {"m2": "launched"}


def test_duplicate_entries_of_an_exclusive_unit_collapse_to_one() -> None:
    s = snap(machines("m1", "m2"), job("a"), schedule={"a": {"m2": "launched", "m1": "launched"}})
    actions, after = settle(s)
    assert actions == [Unschedule("a", "m2", "duplicate of the entry on m1")]
    assert where(after, "a") == {"m1": "launched"}


def test_no_live_machines() -> None:
    actions, _ = settle(snap({}, job("a"), schedule={"a": {"m1": "launched"}}))
    assert actions == [Unschedule("a", "m1", "machine lost"), RecordReason("a", "no live machines")]


# --- MachineID ----------------------------------------------------------------------------

def test_machine_id_pins_the_unit() -> None:
    s = snap(machines("m1", "m2", "m3"), job("a", machine_id="m3"))
    _, after = settle(s)
    assert where(after, "a") == {"m3": "launched"}


def test_machine_id_of_a_dead_machine() -> None:
    s = snap(machines("m1"), job("a", machine_id="m9"), schedule={"a": {"m9": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("a", "m9", "machine lost"),
                       RecordReason("a", "MachineID=m9 is not a live machine")]


def test_changed_machine_id_moves_the_unit() -> None:
    s = snap(machines("m1", "m2"), job("a", machine_id="m2"), schedule={"a": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("a", "m1", "constraints no longer met"), Schedule("a", "m2", "launched")]


def test_machine_id_with_metadata_it_does_not_have() -> None:
    s = snap(machines("m1:role=a"), job("u", machine_id="m1", meta={"role": "b"}))
    actions, _ = settle(s)
    assert actions == [RecordReason(
        "u", "the machine m1 required by MachineID=m1 does not match MachineMetadata role=b")]


# --- MachineMetadata ----------------------------------------------------------------------

def test_metadata_keys_are_anded_and_values_ored() -> None:
    ms = machines("m1:role=a,zone=1", "m2:role=b,zone=2", "m3:role=c,zone=1", "m4:role=b,zone=1")
    s = snap(ms, job("u", meta={"role": "a|b", "zone": "1"}))
    s = snap(ms, job("u", meta={"role": "a|b", "zone": "1"}), job("x"), schedule={"x": {"m1": "launched"}})
    _, after = settle(s)
    assert where(after, "u") == {"m4": "launched"}


def test_no_machine_matches_metadata() -> None:
    s = snap(machines("m1:role=compute"), job("controller.service", meta={"role": "controller"}))
    actions, _ = settle(s)
    assert actions == [RecordReason("controller.service", "no machine matches MachineMetadata role=controller")]


def test_multi_key_metadata_reason_lists_every_key() -> None:
    s = snap(machines("m1"), job("u", meta={"zone": "1", "role": "b|a"}))
    assert plan(s) == [RecordReason("u", "no machine matches MachineMetadata role=a|b, zone=1")]


def test_metadata_no_longer_met_moves_the_unit() -> None:
    s = snap(machines("m1:role=old", "m2:role=new"), job("u", meta={"role": "new"}),
             schedule={"u": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("u", "m1", "constraints no longer met"), Schedule("u", "m2", "launched")]


def test_unplaceable_unit_loses_its_stale_entry() -> None:
    s = snap(machines("m1:role=old"), job("u", meta={"role": "new"}), schedule={"u": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("u", "m1", "constraints no longer met"),
                       RecordReason("u", "no machine matches MachineMetadata role=new")]


# --- MachineOf ----------------------------------------------------------------------------

def test_machine_of_chain_resolves_in_one_plan() -> None:
    # Names sort against the dependency order on purpose.
    s = snap(machines("m1", "m2", "m3"), job("a", machine_of=("b",)), job("b", machine_of=("c",)),
             job("c"), job("d"))
    actions, after = settle(s)
    assert where(after, "a") == where(after, "b") == where(after, "c") == {"m1": "launched"}
    assert where(after, "d") == {"m2": "launched"}
    assert [a.unit for a in actions] == ["c", "b", "a", "d"]


def test_machine_of_an_unscheduled_unit_waits() -> None:
    s = snap(machines("m1"), job("web.service", machine_of=("db.service",)))
    actions, _ = settle(s)
    assert actions == [RecordReason("web.service", "MachineOf=db.service is not scheduled")]


def test_machine_of_an_inactive_unit_waits_and_drops_its_entry() -> None:
    s = snap(machines("m1"), job("web", machine_of=("db",)), job("db", "inactive"),
             schedule={"web": {"m1": "launched"}, "db": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("db", "m1", "job inactive"), Unschedule("web", "m1", "constraints no longer met"),
                       RecordReason("web", "MachineOf=db is not scheduled")]


def test_machine_of_follows_its_target_when_the_target_moves() -> None:
    s = snap(machines("m2", "m3"), job("db"), job("web", machine_of=("db",)), job("x"),
             schedule={"db": {"m1": "launched"}, "web": {"m1": "launched"}, "x": {"m2": "launched"}})
    _, after = settle(s)
    assert where(after, "db") == where(after, "web") == {"m3": "launched"}


def test_machine_of_two_units_on_different_machines() -> None:
    s = snap(machines("m1", "m2"), job("a", machine_id="m1"), job("b", machine_id="m2"),
             job("c", machine_of=("a", "b")))
    actions, _ = settle(s)
    assert RecordReason("c", "MachineOf=b is on machine m2, not on the machine m1 required by MachineOf=a") in actions


def test_machine_of_where_the_target_machine_lacks_metadata() -> None:
    s = snap(machines("m1:role=x"), job("a"), job("b", machine_of=("a",), meta={"role": "y"}))
    actions, _ = settle(s)
    assert RecordReason(
        "b", "the machine m1 required by MachineOf=a does not match MachineMetadata role=y") in actions


def test_machine_of_a_global_unit_picks_one_of_its_machines() -> None:
    s = snap(machines("m1:role=n", "m2:role=n", "m3"), job("agent", meta={"role": "n"}, global_=True),
             job("x", machine_of=("agent",)), schedule={"y": {"m1": "launched"}})
    _, after = settle(s)
    assert where(after, "x") == {"m1": "launched"}


def test_machine_of_cycle_waits_without_flapping() -> None:
    s = snap(machines("m1"), job("a", machine_of=("b",)), job("b", machine_of=("a",)))
    actions, _ = settle(s)
    assert actions == [RecordReason("a", "MachineOf=b is not scheduled"),
                       RecordReason("b", "MachineOf=a is not scheduled")]


def test_unit_waiting_for_a_machine_that_a_later_unit_frees_is_placed_in_the_same_plan() -> None:
    # "a" fits only m1 and conflicts with "b"; "b" sits on m1, but its MachineID now says m2.
    s = snap(machines("m1:role=p", "m2"), job("a", meta={"role": "p"}, conflicts=("b",)),
             job("b", machine_id="m2"), schedule={"b": {"m1": "launched"}})
    actions, after = settle(s)
    assert actions == [Unschedule("b", "m1", "constraints no longer met"), Schedule("a", "m1", "launched"),
                       Schedule("b", "m2", "launched")]


# --- Conflicts ----------------------------------------------------------------------------

def test_conflicts_glob_spreads_template_instances() -> None:
    units = [job(f"db@{i}.service", conflicts=("db@*.service",)) for i in range(3)]
    s = snap(machines("m1", "m2", "m3"), *units, job("other"), schedule={"other": {"m2": "launched"}})
    _, after = settle(s)
    assert sorted(m for u in units for m in where(after, u.name)) == ["m1", "m2", "m3"]


def test_conflicts_are_symmetric() -> None:
    # Only "a" declares the conflict; "b" still avoids a's machine.
    s = snap(machines("m1", "m2"), job("a", conflicts=("b*",)), job("b1"), job("zzz"),
             schedule={"a": {"m1": "launched"}, "zzz": {"m2": "launched"}})
    _, after = settle(s)
    assert where(after, "b1") == {"m2": "launched"}


def test_conflict_found_on_a_shared_machine_moves_the_later_unit() -> None:
    s = snap(machines("m1", "m2"), job("a"), job("b", conflicts=("a",)),
             schedule={"a": {"m1": "launched"}, "b": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("b", "m1", "conflicts with a"), Schedule("b", "m2", "launched")]


def test_conflict_with_every_machine() -> None:
    units = [job(f"db@{i}.service", conflicts=("db@*.service",)) for i in range(3)]
    s = snap(machines("m1", "m2"), *units)
    actions, _ = settle(s)
    assert actions[-1] == RecordReason(
        "db@2.service",
        "each of the 2 machines that fit its other constraints runs a conflicting unit (Conflicts=db@*.service)")


def test_conflict_declared_by_the_other_unit_reason() -> None:
    s = snap(machines("m1"), job("a", conflicts=("b",)), job("b"))
    actions, _ = settle(s)
    assert RecordReason("b", "the only machine that fits its other constraints runs a conflicting unit") in actions


def test_exclusive_unit_avoids_a_conflicting_global_unit() -> None:
    s = snap(machines("m1:role=n", "m2"), job("agent", meta={"role": "n"}, global_=True),
             job("a", conflicts=("agent",)), schedule={"a": {"m1": "launched"}})
    actions, after = settle(s)
    assert Unschedule("a", "m1", "conflicts with agent") in actions
    assert where(after, "a") == {"m2": "launched"}


# --- Replaces -----------------------------------------------------------------------------

def test_replacing_unit_evicts_the_replaced_one_to_another_machine() -> None:
    # m2 is busier, so "new" lands on m1 where "old" runs; "old" must go to m2.
    s = snap(machines("m1", "m2"), job("new", replaces=("old",)), job("old"), job("x"), job("y"),
             schedule={"x": {"m2": "launched"}, "y": {"m2": "launched"}, "old": {"m1": "launched"}})
    actions, after = settle(s)
    assert where(after, "new") == {"m1": "launched"}
    assert Unschedule("old", "m1", "replaced by new") in actions
    assert where(after, "old") == {"m2": "launched"}


def test_replaced_unit_with_nowhere_else_to_go() -> None:
    s = snap(machines("m1"), job("new", replaces=("old",)), job("old"), schedule={"old": {"m1": "launched"}})
    actions, _ = settle(s)
    assert actions == [Unschedule("old", "m1", "replaced by new"), Schedule("new", "m1", "launched"),
                       RecordReason("old",
                                    "the only machine that fits its other constraints runs a unit that replaces it")]


def test_replacing_unit_ignores_the_replaced_units_conflicts() -> None:
    s = snap(machines("m1"), job("old", conflicts=("new",)), job("new", replaces=("old",)),
             schedule={"old": {"m1": "launched"}})
    _, after = settle(s)
    assert where(after, "new") == {"m1": "launched"}
    assert where(after, "old") == {}


def test_replacing_unit_ignores_its_own_conflicts_with_the_replaced_one() -> None:
    s = snap(machines("m1"), job("new", replaces=("old",), conflicts=("ol*",)), job("old"),
             schedule={"old": {"m1": "launched"}})
    _, after = settle(s)
    assert after.schedule == {"new": {"m1": "launched"}}


def test_replaced_unit_elsewhere_stays_put() -> None:
    s = snap(machines("m1", "m2"), job("new", replaces=("old",)), job("old"), schedule={"old": {"m2": "launched"}})
    actions, _ = settle(s)
    assert actions == [Schedule("new", "m1", "launched")]


# --- global units -------------------------------------------------------------------------

def test_global_unit_covers_every_matching_live_machine() -> None:
    ms = machines("m1:role=compute", "m2:role=compute", "m3:role=network")
    s = snap(ms, job("compute.service", meta={"role": "compute"}, global_=True),
             schedule={"compute.service": {"m1": "loaded", "m3": "launched", "gone": "launched"}},
             reasons={"compute.service": "old"})
    actions, after = settle(s)
    assert actions == [
        Unschedule("compute.service", "gone", "machine lost"),
        Unschedule("compute.service", "m3", "constraints no longer met"),
        Schedule("compute.service", "m1", "launched"),
        Schedule("compute.service", "m2", "launched"),
        ClearReason("compute.service"),
    ]
    assert where(after, "compute.service") == {"m1": "launched", "m2": "launched"}


def test_global_unit_without_metadata_runs_everywhere() -> None:
    _, after = settle(snap(machines("m1", "m2"), job("g", global_=True)))
    assert where(after, "g") == {"m1": "launched", "m2": "launched"}


def test_global_unit_without_a_matching_machine() -> None:
    s = snap(machines("m1:role=compute"), job("net", meta={"role": "network"}, global_=True))
    assert plan(s) == [RecordReason("net", "no machine matches MachineMetadata role=network")]


# --- reasons ------------------------------------------------------------------------------

def test_unchanged_reason_is_not_recorded_again() -> None:
    s = snap(machines("m1"), job("u", meta={"role": "x"}),
             reasons={"u": "no machine matches MachineMetadata role=x"})
    assert plan(s) == []


def test_changed_reason_is_recorded() -> None:
    s = snap(machines("m1"), job("u", meta={"role": "x"}), reasons={"u": "something older"})
    assert plan(s) == [RecordReason("u", "no machine matches MachineMetadata role=x")]


def test_reason_is_cleared_once_placed() -> None:
    s = snap(machines("m1:role=x"), job("u", meta={"role": "x"}),
             reasons={"u": "no machine matches MachineMetadata role=x"})
    assert plan(s) == [Schedule("u", "m1", "launched"), ClearReason("u")]


# --- determinism and order ----------------------------------------------------------------

def test_same_snapshot_in_another_dict_order_gives_the_same_actions() -> None:
    ms = machines(*(f"m{i}:role={'ab'[i % 2]}" for i in range(6)))
    jobs = [job(f"u{i}", meta={"role": "a"} if i % 3 else None, conflicts=("u1",) if i == 4 else ())
            for i in range(12)]
    schedule: dict[str, dict[str, DesiredState]] = {"u1": {"m9": "launched", "m2": "loaded"}, "u2": {"m1": "launched"}}
    forward = snap(ms, *jobs, schedule=schedule)
    backward = Snapshot(dict(reversed(ms.items())), dict(reversed(forward.jobs.items())),
                        {u: dict(reversed(e.items())) for u, e in reversed(schedule.items())}, {})
    assert plan(forward) == plan(backward)


def test_planning_order_puts_targets_and_replacers_first() -> None:
    jobs = {j.name: j for j in [job("a", machine_of=("z",)), job("b", replaces=("a",)), job("z"),
                                job("c"), job("g", global_=True), job("i", "inactive")]}
    order = planning_order(jobs)
    assert sorted(order) == ["a", "b", "c", "z"]
    assert order.index("z") < order.index("a") and order.index("b") < order.index("a")
    assert order == ["b", "c", "z", "a"]


def test_planning_order_survives_cycles() -> None:
    jobs = {j.name: j for j in [job("x", machine_of=("y",)), job("y", machine_of=("x",)),
                                job("w", machine_of=("x",)), job("a")]}
    assert planning_order(jobs) == ["a", "x", "y", "w"]
