#!/usr/bin/env python3
"""The idle agent's CPU: one real agent, real etcd on loopback, the process runtime, one unit.

It starts a single-member etcd and `stackfleet agent` (TTL 5, the default), schedules one
exclusive unit running `sleep infinity` on the agent's machine (no engine: the schedule entry
is written directly), waits until the unit is reported active, lets it settle, then samples
utime+stime from /proc/PID/stat of the agent and of the unit's shim over the window. It
prints CPU seconds and the share of one core, for the agent and, for reference, the shim.

    PYTHONPATH=$PWD/src .venv/bin/python bench/agent_idle.py            # 30 s window
    PYTHONPATH=$PWD/src .venv/bin/python bench/agent_idle.py --seconds 60
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import JobRecord, ScheduleEntry
from stackfleet.registry.store import Registry
from stackfleet.runtime import ProcessRuntime

UNIT = "idle.service"
MACHINE_ID = "0" * 31 + "1"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def schedule_unit(endpoint: str) -> None:
    async with Registry.open([endpoint]) as r:
        body = "[Service]\nExecStart=/bin/sleep infinity\n"
        await r.submit(JobRecord(UNIT, "h1", "launched"), body, True)
        await r.put_many([r.schedule_op(UNIT, MACHINE_ID, ScheduleEntry("launched", "h1", True))])
        deadline = time.monotonic() + 30
        while not any(s.name == UNIT and s.active == "active" for s in await r.states()):
            if time.monotonic() > deadline:
                raise SystemExit("the unit was not reported active within 30 s")
            await asyncio.sleep(0.2)


def shim_pid(state_dir: Path) -> int | None:
    try:
        return int(json.loads((state_dir / "runtime" / "units" / UNIT / "status.json").read_text())["shim_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="sampling window (default 30)")
    parser.add_argument("--settle", type=float, default=3.0, help="wait this long after the unit is active")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stackfleet-idle-") as tmp, LocalEtcd() as etcd:
        state_dir = Path(tmp) / "state"
        agent = subprocess.Popen(
            [sys.executable, "-m", "stackfleet.cli.main", "agent", "--endpoint", etcd.endpoint,
             "--machine-id", MACHINE_ID, "--name", "idle-01", "--public-ip", "127.0.0.1",
             "--state-dir", str(state_dir), "--shared-dir", str(Path(tmp) / "shared")],
            stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "agent.log", "wb"),
        )
        try:
            asyncio.run(schedule_unit(etcd.endpoint))
            time.sleep(args.settle)
            shim = shim_pid(state_dir)
            pids = {"agent": agent.pid, **({"shim": shim} if shim else {})}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - started
            after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        finally:
            agent.terminate()
            agent.wait(10)
            ProcessRuntime(state_dir / "runtime").kill(UNIT)  # the shim outlives the agent by design
        print(f"window {elapsed:.1f} s, clock tick {1 / TICKS:.3f} s")
        for name in pids:
            used = after[name] - before[name]
            print(f"{name:6s} cpu {used:6.2f} s  {100 * used / elapsed:5.2f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
