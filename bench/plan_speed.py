"""How long plan() takes for 100/1000 machines x 1000/10000 units.

Run: .venv/bin/python bench/plan_speed.py [--runs N]

Three cases per size:
  new     every unit submitted and unscheduled (the cluster benchmark's first plan);
  steady  the same jobs after the plan was applied (nothing to do, the engine's usual plan);
  lost    steady, then 10% of the machines die (their units are re-placed);
  spread  every unit a template instance, 100 per template, Conflicts=<template>@*.service
          (the slow path: each instance must avoid the machines of its siblings).
The job mix of new/steady/lost: 1/3 without constraints, 1/3 MachineMetadata role=compute,
1/3 role=controller|network, plus 2% instances with Conflicts=db@*.service and 1% MachineOf one.
"""
from __future__ import annotations

import argparse
import statistics
import time

from stackfleet.engine.model import Job, Machine, Snapshot, apply
from stackfleet.engine.planner import plan
from stackfleet.unit.model import Constraints

ROLES = ("controller", "network", "compute")


def machines(count: int) -> dict[str, Machine]:
    ids = [f"machine-{i:05d}" for i in range(count)]
    return {m: Machine(m, {"role": ROLES[i % 3], "rack": str(i % 10)}) for i, m in enumerate(ids)}


def jobs(count: int) -> dict[str, Job]:
    out: dict[str, Job] = {}
    conflicting = max(1, count // 50)
    for i in range(conflicting):
        name = f"db@{i}.service"
        out[name] = Job(name, "launched", Constraints(conflicts=("db@*.service",)))
    for i in range(max(1, count // 100)):
        name = f"sidecar@{i}.service"
        out[name] = Job(name, "launched", Constraints(machine_of=(f"db@{i % conflicting}.service",)))
    kinds = (
        Constraints(),
        Constraints(machine_metadata={"role": frozenset({"compute"})}),
        Constraints(machine_metadata={"role": frozenset({"controller", "network"})}),
    )
    i = 0
    while len(out) < count:
        name = f"app-{i:06d}.service"
        out[name] = Job(name, "launched", kinds[i % 3])
        i += 1
    return out


def spread_jobs(count: int) -> dict[str, Job]:
    names = [(f"t{i // 100:03d}@{i % 100}.service", f"t{i // 100:03d}@*.service") for i in range(count)]
    return {name: Job(name, "launched", Constraints(conflicts=(pattern,))) for name, pattern in names}


def timed(snapshot: Snapshot, runs: int) -> tuple[list[float], int]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        actions = plan(snapshot)
        times.append(time.perf_counter() - start)
    return times, len(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(f"{'machines':>8} {'units':>6} {'case':<6} {'actions':>7}   min / median / max (s), {runs} runs")
    for n_machines in (100, 1000):
        for n_units in (1000, 10000):
            new = Snapshot(machines(n_machines), jobs(n_units))
            steady = apply(new, plan(new))
            alive = {m: v for i, (m, v) in enumerate(sorted(steady.machines.items())) if i % 10}
            lost = Snapshot(alive, steady.jobs, steady.schedule, steady.reasons)
            spread = Snapshot(new.machines, spread_jobs(n_units))
            for case, snapshot in (("new", new), ("steady", steady), ("lost", lost), ("spread", spread)):
                times, count = timed(snapshot, runs)
                print(f"{n_machines:>8} {n_units:>6} {case:<6} {count:>7}   "
                      f"{min(times):.3f} / {statistics.median(times):.3f} / {max(times):.3f}")


if __name__ == "__main__":
    main()
