#!/usr/bin/env python3
"""Failover times on the lab, over several halts of the machine that runs a unit.

It brings the lab up if needed, starts the exclusive sample unit (units/examples/beacon.service),
then repeatedly pulls the power of its machine (`stackfleet lab halt`), measures from the
halt until the machine is declared dead (detection), the unit is scheduled elsewhere
(placement) and reported running there (total), and powers the machine back on.

    .venv/bin/python bench/failover.py --rounds 5      # needs root
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stackfleet.cli.context import resolve_endpoints
from stackfleet.failover import FailoverTiming, measure_failover, wait_active
from stackfleet.lab import ops
from stackfleet.lab.state import default_root, load_lab
from stackfleet.registry.store import Registry

UNIT = Path(__file__).resolve().parents[1] / "units" / "examples" / "beacon.service"


def stackfleet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "stackfleet.cli.main", *args], check=True, stdout=subprocess.DEVNULL)


async def rounds(count: int) -> list[FailoverTiming]:
    root = default_root()
    lab = load_lab(root)
    assert lab is not None
    registry = Registry.open(resolve_endpoints(None))
    results = []
    try:
        stackfleet("start", str(UNIT))
        for i in range(count):
            machine_id = await wait_active(registry, UNIT.name, 60)
            name = next(m.name for m in lab.machines if m.machine_id == machine_id)
            fault_at = time.monotonic()
            ops.halt(root, name)
            timing = await measure_failover(registry, UNIT.name, machine_id, fault_at)
            results.append(timing)
            print(f"round {i + 1}: halted {name}: detected {timing.detected:.2f} s, placed {timing.placed:.2f} s, "
                  f"running {timing.running:.2f} s", flush=True)
            ops.up_machine(root, name)
            while machine_id not in await registry.machines():
                await asyncio.sleep(0.1)
    finally:
        stackfleet("destroy", UNIT.name)
        await registry.close()
    return results


def summary(label: str, values: list[float]) -> str:
    return f"{label:<28} {min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if load_lab(default_root()) is None:
        stackfleet("lab", "up")
    results = asyncio.run(rounds(args.rounds))
    print(f"\n{'seconds after the halt':<28} {'min':>7} {'median':>7} {'max':>7}")
    print(summary("detection (lease expired)", [r.detected for r in results]))
    print(summary("placed on another machine", [r.placed for r in results]))
    print(summary("detection to running", [r.running - r.detected for r in results]))
    print(summary("running elsewhere (total)", [r.running for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
