"""The random fault campaign's decisions and judgements (bench/chaos.py does the I/O). Pure.

Probe units append heartbeats to the shared storage: each copy (one process) writes its own
file, one line per beat, "MACHINE NANOSECONDS", the time read from CLOCK_BOOTTIME just before
the write, and fsyncs it. A copy that logged beats at a and b was alive through [a, b], so:

- two copies of one unit overlapped if one of them logged a beat after the other's first beat
  and before its last one (their streams interleave). Every lab machine reads the same host
  clock, so beats of different machines compare directly; only a distance within the clock's
  granularity cannot be ordered, and is not counted.
- what the logs cannot show is a copy that was killed between its last beat and the next one:
  the closest handover (the next copy's first beat minus the previous copy's last beat) says
  how much room is left; above the beat interval, the old copy, had it lived on at its pace,
  would have logged another beat before the new copy's first.
- a unit's recovery after a fault is the time from the fault to the first beat of the copy that
  runs once the cluster has settled: 0 when the copy that ran at the fault still runs.
"""
from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("halt", "partition", "agent", "shim", "etcd", "engine")
# Faults aimed at the machine of a probe unit; etcd and engine kills go to a controller.
UNIT_FAULTS = ("halt", "partition", "agent", "shim")
NS = 1_000_000_000


@dataclass(frozen=True)
class Fault:
    kind: str
    machine: str  # where it strikes
    unit: str | None  # the probe unit whose machine (or shim) is hit; None for etcd, engine
    hold: float  # seconds the fault lasts before the heal (power on, links up, restart)


def choose_fault(rng: random.Random, placements: Mapping[str, str], controllers: Sequence[str],
                 ttl: float) -> Fault:
    """A fault of a uniformly random kind. `placements` maps each probe unit to its machine.

    Holds are drawn from [0, 1.5 TTL] (a shim kill has none: the agent repairs it), so some
    heals come before the lease expires and the fence acts, some after the unit moved."""
    kind = rng.choice(KINDS)
    hold = 0.0 if kind == "shim" else round(rng.uniform(0.0, 1.5 * ttl), 2)
    if kind in UNIT_FAULTS:
        unit = rng.choice(sorted(placements))
        return Fault(kind, placements[unit], unit, hold)
    return Fault(kind, rng.choice(sorted(controllers)), None, hold)


@dataclass(frozen=True)
class Run:
    """One copy of a unit, from its heartbeat file: machine, first and last beat (seconds)."""

    name: str  # the file's name: tells copies apart
    machine: str
    first: float
    last: float


def parse_run(name: str, text: str) -> Run | None:
    """A copy from its file; None without any beat. Only whole lines count: a write cut short
    lacks its newline."""
    stamps: list[int] = []
    machine = ""
    for line in text.split("\n")[:-1]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        machine = parts[0]
        stamps.append(int(parts[1]))
    if not stamps:
        return None
    return Run(name, machine, min(stamps) / NS, max(stamps) / NS)


def overlaps(runs: Iterable[Run], granularity: float) -> list[tuple[Run, Run]]:
    """Pairs of copies whose beats interleave by more than the clock's granularity."""
    ordered = sorted(runs, key=lambda r: r.first)
    found = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.first >= a.last - granularity:
                break  # sorted by first: no later copy starts inside a either
            found.append((a, b))
    return found


def handovers(runs: Iterable[Run]) -> list[float]:
    """Seconds from each copy's last beat to the next copy's first, in start order."""
    ordered = sorted(runs, key=lambda r: r.first)
    return [b.first - a.last for a, b in zip(ordered, ordered[1:], strict=False)]


def current_run(runs: Iterable[Run], now: float, fresh: float) -> Run | None:
    """The copy that beats now (its last beat at most `fresh` s old), the latest if several."""
    live = [r for r in runs if now - r.last <= fresh]
    return max(live, key=lambda r: r.last) if live else None


def recovery(runs: Iterable[Run], fault_at: float, now: float, fresh: float) -> float | None:
    """Seconds from the fault to the first beat of the copy running now; 0 when it already
    ran at the fault; None when no copy runs now."""
    current = current_run(runs, now, fresh)
    if current is None:
        return None
    return max(0.0, current.first - fault_at)


@dataclass(frozen=True)
class Outcome:
    """One unit after one fault."""

    fault: Fault
    unit: str
    recovery: float | None  # None: not running again when the campaign gave up waiting
    machine_before: str
    machine_after: str | None


@dataclass(frozen=True)
class Spread:
    count: int
    low: float
    median: float
    high: float


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    return Spread(len(values), min(values), statistics.median(values), max(values))


@dataclass(frozen=True)
class KindSummary:
    kind: str
    faults: int
    outcomes: int  # unit outcomes under faults of this kind
    interrupted: Spread | None  # recoveries above 0
    late: int  # recoveries over the budget, or none at all


def summarize(faults: Sequence[Fault], outcomes: Sequence[Outcome], budget: float) -> list[KindSummary]:
    rows = []
    for kind in KINDS:
        mine = [o for o in outcomes if o.fault.kind == kind]
        interrupted = [o.recovery for o in mine if o.recovery is not None and o.recovery > 0]
        late = sum(1 for o in mine if o.recovery is None or o.recovery > budget)
        rows.append(KindSummary(kind, sum(1 for f in faults if f.kind == kind), len(mine),
                                spread(interrupted), late))
    return rows


def describe(outcome: Outcome) -> str:
    """`probe-1.service c1 -> c2 6.21 s`, `... unaffected`, `... NOT RUNNING`."""
    where = outcome.machine_before
    if outcome.recovery is None:
        return f"{outcome.unit} NOT RUNNING"
    if outcome.machine_after and outcome.machine_after != where:
        where = f"{where} -> {outcome.machine_after}"
    if outcome.recovery == 0:
        return f"{outcome.unit} {where} unaffected"
    return f"{outcome.unit} {where} {outcome.recovery:.2f} s"


def format_summary(rows: Sequence[KindSummary], overlap_count: int, closest: float | None,
                   budget: float) -> str:
    lines = [f"{'kind':<10} {'faults':>6} {'interrupted':>11} {'min':>7} {'median':>7} {'max':>7}"
             f" {'late':>5}"]
    for r in rows:
        s = r.interrupted
        cells = (f"{s.low:7.2f} {s.median:7.2f} {s.high:7.2f}" if s else f"{'-':>7} {'-':>7} {'-':>7}")
        lines.append(f"{r.kind:<10} {r.faults:>6} {(s.count if s else 0):>5} of {r.outcomes:<3} "
                     f"{cells} {r.late:>5}")
    total = sum(r.faults for r in rows)
    lines.append(f"{'total':<10} {total:>6}")
    lines.append(f"overlaps: {overlap_count}")
    if closest is not None:
        lines.append(f"closest handover: {closest:.3f} s (first beat of a copy after the last of "
                     "the one before)")
    lines.append(f"recovery budget: {budget:.1f} s; late or lost: {sum(r.late for r in rows)}")
    return "\n".join(lines)
