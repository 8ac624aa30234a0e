#!/usr/bin/env python3
"""Scheduling at scale: fake agents in this process, the real engine, real etcd.

For each size it starts a fresh etcd and a real `stackfleet engine`, registers N fake
machines, submits U exclusive units with metadata constraints (desired: launched), and
lets the fake agents report every unit they are given as launched, with batched
writes as a busy agent would. It prints placements per second and etcd requests per
placement (all gRPC requests the etcd server handled, from every client).

    .venv/bin/python bench/scale.py                      # 100/1000 machines x 1000/10000 units
    .venv/bin/python bench/scale.py --machines 1000 --units 10000
"""
from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
import urllib.request

from aetcd import transactions as tx

from stackfleet.discovery import prefix
from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import JobRecord, MachineRecord, UnitState
from stackfleet.registry.store import Registry
from stackfleet.unit.model import Constraints

ROLES = ("controller", "network", "compute", "storage")
GOAL_SECONDS = 30.0


def etcd_requests(endpoint: str) -> int:
    """Total gRPC requests the etcd server has handled (its Prometheus metrics)."""
    text = urllib.request.urlopen(f"{endpoint}/metrics", timeout=5).read().decode()
    return sum(int(float(m)) for m in re.findall(r'^grpc_server_handled_total\{[^}]*\} (\S+)$', text, re.M))


async def run_size(machines: int, units: int, ttl: int) -> dict[str, float]:
    with LocalEtcd() as etcd:
        registry = Registry.open([etcd.endpoint], prefix(), timeout=30.0)
        lease = await registry.lease_keeper(120).grant()
        machine_ops = []
        for i in range(machines):
            m = MachineRecord(f"{i:032x}", f"fake-{i:04d}", f"10.255.{i // 250}.{i % 250}",
                              {"role": ROLES[i % len(ROLES)]})
            machine_ops.append(tx.Put(registry.keys.machine(m.id), m.encode(), lease=lease))
        await registry.put_many(machine_ops, chunk=1000)
        engine = subprocess.Popen(
            [sys.executable, "-m", "stackfleet.cli.main", "engine",
             "--endpoint", etcd.endpoint, "--name", "bench", "--ttl", str(ttl)],
            stdout=subprocess.DEVNULL, stderr=open(etcd.data_dir / "engine.log", "wb"),
        )
        try:
            while await registry.leader() is None:
                await asyncio.sleep(0.05)
            before = etcd_requests(etcd.endpoint)
            reported: set[str] = set()
            placed: set[str] = set()
            t_placed = 0.0
            done = asyncio.Event()

            async def fake_agents() -> None:
                nonlocal t_placed
                async for changes in registry.watch_schedule():
                    batch = []
                    for (unit, machine), entry in changes.changes:
                        if entry is None:
                            continue
                        placed.add(unit)
                        if entry.desired == "launched" and unit not in reported:
                            reported.add(unit)
                            batch.append(registry.state_op(
                                UnitState(unit, machine, entry.hash, "loaded", "active", "running"), lease))
                    if len(placed) >= units and not t_placed:
                        t_placed = time.monotonic()
                    await registry.put_many(batch, chunk=1000)
                    if len(reported) >= units:
                        done.set()
                        return

            agents = asyncio.create_task(fake_agents())
            await asyncio.sleep(0.2)  # the watch is listening before the first unit arrives
            t0 = time.monotonic()
            job_ops = []
            for u in range(units):
                c = Constraints(machine_metadata={"role": frozenset({ROLES[u % len(ROLES)]})})
                job_ops.append(tx.Put(
                    registry.keys.job(f"u{u:05d}.service"),
                    JobRecord(f"u{u:05d}.service", "h", "launched", c.to_json()).encode()))
            await registry.put_many(job_ops, chunk=1000)
            t_submitted = time.monotonic()
            await asyncio.wait_for(done.wait(), 600)
            t_launched = time.monotonic()
            agents.cancel()
            requests = etcd_requests(etcd.endpoint) - before
        finally:
            engine.terminate()
            engine.wait(10)
            await registry.close()
    total = t_launched - t0
    return {
        "submit_s": t_submitted - t0,
        "placed_s": t_placed - t0,
        "launched_s": total,
        "placements_per_s": units / (t_placed - t0),
        "requests_per_placement": requests / units,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, action="append")
    parser.add_argument("--units", type=int, action="append")
    parser.add_argument("--ttl", type=int, default=10)
    args = parser.parse_args()
    sizes = [(m, u) for m in (args.machines or [100, 1000]) for u in (args.units or [1000, 10000])]
    print(f"{'machines':>8} {'units':>6} {'submit s':>9} {'placed s':>9} {'launched s':>10} "
          f"{'placements/s':>13} {'etcd req/placement':>19}")
    ok = True
    for machines, units in sizes:
        r = asyncio.run(run_size(machines, units, args.ttl))
        print(f"{machines:>8} {units:>6} {r['submit_s']:>9.2f} {r['placed_s']:>9.2f} {r['launched_s']:>10.2f} "
              f"{r['placements_per_s']:>13.0f} {r['requests_per_placement']:>19.3f}", flush=True)
        if machines >= 1000 and units >= 10000:
            ok = r["launched_s"] < GOAL_SECONDS
            print(f"goal: 1,000 machines x 10,000 units launched in < {GOAL_SECONDS:.0f} s: "
                  f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
