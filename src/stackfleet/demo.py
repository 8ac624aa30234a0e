"""The main job on the built-in lab: the 2015 story with sample units.

Brings the lab up, starts an exclusive unit on a controller and a global unit on the
compute machines, pulls the power of the machine that runs the exclusive unit, and
shows it running on another controller with the measured failover time. Every step
is a real `stackfleet` command, printed before it runs.
"""
from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .cli.context import resolve_endpoints
from .failover import measure_failover, wait_active
from .registry.store import Registry

REPO = Path(__file__).resolve().parents[2]
EXCLUSIVE = "beacon.service"
GLOBAL = "probe.service"


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def sh(*argv: str, check: bool = True) -> int:
    print(f"$ stackfleet {' '.join(shlex.quote(a) for a in argv)}", flush=True)
    rc = subprocess.call([sys.executable, "-m", "stackfleet.cli.main", *argv])
    if check and rc != 0:
        raise SystemExit(f"demo: `stackfleet {' '.join(argv)}` failed with exit code {rc}")
    return rc


async def machine_name(registry: Registry, machine_id: str) -> str:
    return (await registry.machines())[machine_id].name


async def story(units_dir: Path) -> None:
    registry = Registry.open(resolve_endpoints(None))
    try:
        step("Start an exclusive unit (MachineMetadata=role=controller) and a Global unit (role=compute)")
        sh("start", str(units_dir / EXCLUSIVE), str(units_dir / GLOBAL))
        sh("list-units")
        old = await wait_active(registry, EXCLUSIVE, 60)
        victim = await machine_name(registry, old)

        step(f"Pull the power of {victim}, the machine that runs {EXCLUSIVE}")
        fault_at = time.monotonic()
        sh("lab", "halt", victim)
        timing = await measure_failover(registry, EXCLUSIVE, old, fault_at)
        new = await machine_name(registry, timing.machine)
        sh("list-units")
        print(f"\n{EXCLUSIVE} moved from {victim} to {new}:")
        print(f"  detected (lease expired)   {timing.detected:6.2f} s after the halt")
        print(f"  placed on {new:<15}  {timing.placed:6.2f} s")
        print(f"  running again              {timing.running:6.2f} s")

        step(f"Power {victim} back on: it rejoins, and the unit stays where it is")
        sh("lab", "up", victim)
        sh("list-machines")
        sh("list-units")
    finally:
        await registry.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackfleet-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=Path, default=REPO / "units" / "examples", help="where the sample units are")
    args = parser.parse_args(argv)
    step("Bring up the lab: 3 controllers (with etcd), 2 network, 2 compute, 2 nova-docker machines")
    sh("lab", "up")
    sh("list-machines")
    asyncio.run(story(args.units))
    print("\nThe lab keeps running. Try `stackfleet list-units`, `stackfleet journal -f beacon.service`,"
          " `stackfleet lab status`; `stackfleet lab destroy` removes it all.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
