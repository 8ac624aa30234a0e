"""The chaos campaign's pure pieces: fault choice, heartbeat logs, overlaps, recovery, summary."""
from __future__ import annotations

import random

import pytest

from stackfleet.lab.chaos import (
    KINDS,
    Fault,
    Outcome,
    Run,
    choose_fault,
    current_run,
    describe,
    format_summary,
    handovers,
    overlaps,
    parse_run,
    recovery,
    spread,
    summarize,
)

PLACEMENTS = {"probe-1.service": "compute-01", "probe-2.service": "controller-02"}
CONTROLLERS = ["controller-01", "controller-02", "controller-03"]


def test_faults_cover_every_kind_and_strike_where_they_should() -> None:
    rng = random.Random(7)
    faults = [choose_fault(rng, PLACEMENTS, CONTROLLERS, ttl=4) for _ in range(300)]
    assert {f.kind for f in faults} == set(KINDS)
    for f in faults:
        if f.kind in ("etcd", "engine"):
            assert f.unit is None and f.machine in CONTROLLERS
        else:
            assert f.unit is not None and PLACEMENTS[f.unit] == f.machine
        assert 0 <= f.hold <= 6
        if f.kind == "shim":
            assert f.hold == 0  # the agent repairs it: nothing to heal
    holds = [f.hold for f in faults if f.kind != "shim"]
    assert min(holds) < 4 < max(holds)  # heals both before and after the lease expires


def test_the_same_seed_gives_the_same_campaign() -> None:
    def campaign(seed: int) -> list[Fault]:
        rng = random.Random(seed)
        return [choose_fault(rng, PLACEMENTS, CONTROLLERS, 5) for _ in range(20)]

    assert campaign(3) == campaign(3)
    assert campaign(3) != campaign(4)


def test_a_run_is_read_from_its_beats_and_a_torn_last_line_is_skipped() -> None:
    text = "c1 2000000000\nc1 2100000000\nc1 2200000000\nc1 23000"  # the last write cut short
    assert parse_run("c1.10.1", text) == Run("c1.10.1", "c1", 2.0, 2.2)
    assert parse_run("c1.10.1", "c1 x\n" + text + "00000\n") == Run("c1.10.1", "c1", 2.0, 2.3)
    assert parse_run("empty", "") is None
    assert parse_run("torn", "c1 12") is None


def test_overlap_is_a_beat_of_one_copy_inside_the_other() -> None:
    a = Run("a", "c1", 10.0, 20.0)
    after = Run("b", "c2", 20.5, 30.0)
    inside = Run("c", "c3", 19.0, 19.5)
    assert overlaps([a, after], granularity=1e-9) == []
    assert overlaps([after, a, inside], granularity=1e-9) == [(a, inside)]
    # a copy of the same unit on the same machine counts too: a restart must not overlap either
    same_machine = Run("d", "c1", 15.0, 25.0)
    assert overlaps([a, same_machine], 1e-9) == [(a, same_machine)]


def test_beats_closer_than_the_clock_granularity_are_not_an_overlap() -> None:
    a = Run("a", "c1", 10.0, 20.0)
    b = Run("b", "c2", 19.9995, 30.0)
    assert overlaps([a, b], granularity=0.001) == []
    assert overlaps([a, b], granularity=0.0001) == [(a, b)]


def test_overlaps_finds_every_pair_not_only_neighbours() -> None:
    long = Run("long", "c1", 0.0, 100.0)
    one, two = Run("one", "c2", 10.0, 11.0), Run("two", "c3", 50.0, 51.0)
    assert overlaps([long, one, two], 1e-9) == [(long, one), (long, two)]


def test_handovers_are_the_gaps_between_copies_in_start_order() -> None:
    runs = [Run("b", "c2", 20.5, 30.0), Run("a", "c1", 10.0, 20.0), Run("c", "c1", 31.0, 40.0)]
    assert handovers(runs) == pytest.approx([0.5, 1.0])


def test_recovery_is_zero_while_the_same_copy_runs_and_the_new_copys_start_otherwise() -> None:
    old = Run("a", "c1", 10.0, 20.0)
    new = Run("b", "c2", 26.0, 40.0)
    assert recovery([old, new], fault_at=19.0, now=40.2, fresh=0.5) == pytest.approx(7.0)
    assert recovery([old], fault_at=15.0, now=20.1, fresh=0.5) == 0.0
    assert recovery([old], fault_at=15.0, now=25.0, fresh=0.5) is None  # nothing beats now
    assert current_run([old, new], now=40.2, fresh=0.5) == new


def outcome(kind: str, value: float | None, before: str = "c1", after: str | None = "c1") -> Outcome:
    return Outcome(Fault(kind, before, "p.service", 1.0), "p.service", value, before, after)


def test_summary_counts_faults_per_kind_and_spreads_only_interruptions() -> None:
    outcomes = [outcome("halt", 6.0, after="c2"), outcome("halt", 8.0, after="c3"),
                outcome("halt", 7.0, after="c2"), outcome("etcd", 0.0), outcome("shim", None)]
    faults = [o.fault for o in outcomes]
    rows = {r.kind: r for r in summarize(faults, outcomes, budget=7.5)}
    assert rows["halt"].faults == 3 and rows["halt"].interrupted == spread([6.0, 7.0, 8.0])
    assert rows["halt"].late == 1
    assert rows["etcd"].interrupted is None and rows["etcd"].late == 0
    assert rows["shim"].late == 1  # never running again is late
    assert rows["engine"].faults == 0
    text = format_summary(list(rows.values()), overlap_count=0, closest=0.45, budget=7.5)
    assert "overlaps: 0" in text and "closest handover: 0.450 s" in text
    halt_line = next(line for line in text.splitlines() if line.startswith("halt"))
    assert halt_line.split()[1:] == ["3", "3", "of", "3", "6.00", "7.00", "8.00", "1"]
    assert "late or lost: 2" in text


def test_spread_is_min_median_max() -> None:
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert s is not None and (s.count, s.low, s.median, s.high) == (4, 1.0, 2.5, 10.0)
    assert spread([]) is None


def test_outcomes_are_described_in_one_phrase() -> None:
    assert describe(outcome("halt", 6.2, after="c2")) == "p.service c1 -> c2 6.20 s"
    assert describe(outcome("etcd", 0.0)) == "p.service c1 unaffected"
    assert describe(outcome("shim", None, after=None)) == "p.service NOT RUNNING"
