#!/usr/bin/env python3
"""A random fault campaign on the lab: exclusive probe units log heartbeats to the shared
storage while random faults strike, one at a time, each healed before the next.

Faults (stackfleet/lab/chaos.py draws them): `lab halt` of a probe's machine, a partition of it
(links down, processes alive), a SIGKILL of its agent or of a probe's shim, and a SIGKILL of an
etcd member or an engine on a controller; killed by PID, never by name. Each fault lasts a random
hold (0 to 1.5 TTL), then is healed: power on, links up, or the killed daemon restarted.

After a shim kill the agent kills what is left of the unit and reports it failed (it does not
restart it: the restart policy died with the shim); the bench then restarts it as an operator
would, `stackfleet unload` and `start`, and the overlap check holds the orphaned copy to being gone
first. The probes run on the controllers, so a halt also takes an etcd member and an engine; and
`lab up MACHINE`, the heal of a killed agent, starts it only beside daemons the lab still runs
there (elsewhere it refuses the unit processes it did not start).

Once the cluster has settled (etcd healthy, every machine joined, every probe active on one
machine and beating there for a second), the bench checks:

- no overlap: no two copies of a probe ever logged interleaving heartbeats;
- recovery: each probe runs again within the budget (default TTL + 5 s) of the fault.

It prints a line per fault and a summary, and exits 1 if any check failed.

    .venv/bin/python bench/chaos.py --faults 50 --seed 1       # needs root; uses the running lab
    .venv/bin/python bench/chaos.py --faults 5 --root /tmp/lab  # or brings up a small one there

Without a lab at the root it brings one up, of 3 controllers alone (`--ttl` sets its lease TTL);
it leaves the lab up, as bench/failover.py does.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stackfleet.failover import patiently
from stackfleet.lab import chaos, client, nsprocs, ops
from stackfleet.lab.plan import DEFAULT_TTL, Counts
from stackfleet.lab.state import ROOT_ENV, LabInfo, default_root, load_lab
from stackfleet.registry.records import MachineRecord, UnitState
from stackfleet.registry.store import Registry
from stackfleet.runtime import ProcessRuntime

HEARTBEAT = Path(chaos.__file__).with_name("heartbeat.py")
SHAPE = Counts(controllers=3, network=0, compute=0, nova_docker=0)
FRESH = 0.5  # a copy whose last beat is older than this is not running (it beats every 0.1 s)
SETTLE = 1.0  # the settled state must hold this long
SETTLE_TIMEOUT = 90.0
POLL = 0.1
GRANULARITY = time.clock_getres(time.CLOCK_BOOTTIME)


def now() -> float:
    """The clock the probes stamp their beats with (see heartbeat.py)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def unit_text(python: str, script: Path, logs: Path) -> str:
    return (
        "[Unit]\nDescription=Chaos probe: heartbeats to the shared storage\n\n"
        f"[Service]\nExecStart={python} {script} {logs}/%n\nRestart=always\nRestartSec=0.5\n\n"
        "[X-Fleet]\nMachineMetadata=role=controller\n"
    )


def stackfleet(lab: LabInfo, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stackfleet.cli.main", "--endpoint", ",".join(lab.endpoints), *args],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, ROOT_ENV: lab.root},  # so that the CLI finds the lab's admin certificate
    )
    if done.returncode != 0:
        raise RuntimeError(f"stackfleet {' '.join(args)} failed: {done.stderr.strip()}")


def read_runs(directory: Path) -> list[chaos.Run]:
    runs = []
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        run = chaos.parse_run(path.name, path.read_text(errors="replace"))
        if run is not None:
            runs.append(run)
    return runs


# -- faults and heals ----------------------------------------------------------------------


def child_pid(root: Path, machine: str, name: str) -> int:
    children = client.request(root, {"op": "status"})["children"]
    pids = [c["pid"] for c in children if c["machine"] == machine and c["name"] == name and c["running"]]
    if len(pids) != 1:
        raise RuntimeError(f"expected one running {name} on {machine}, found {pids}")
    return int(pids[0])


def kill_child(root: Path, machine: str, name: str) -> None:
    """SIGKILL the lab daemon by PID and wait until the supervisor has reaped it, so that the
    heal's `start` does not take it for running."""
    pid = child_pid(root, machine, name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = client.request(root, {"op": "status"})["children"]
        if not any(c["pid"] == pid and c["running"] for c in children):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{name} (pid {pid}) on {machine} was not reaped")


def kill_shim(lab: LabInfo, machine: str, unit: str) -> None:
    info = lab.machine(machine)
    assert info is not None
    shim = ProcessRuntime(Path(info.state_dir) / "runtime", hostname=machine).status(unit).shim_pid
    if shim is None or not nsprocs.is_alive(shim):
        raise RuntimeError(f"{unit} has no live shim on {machine}")
    os.kill(shim, signal.SIGKILL)


def inject(lab: LabInfo, fault: chaos.Fault) -> None:
    root = Path(lab.root)
    if fault.kind == "halt":
        ops.halt(root, fault.machine)
    elif fault.kind == "partition":
        ops.partition(root, fault.machine)
    elif fault.kind == "shim":
        assert fault.unit is not None
        kill_shim(lab, fault.machine, fault.unit)
    else:
        kill_child(root, fault.machine, fault.kind)  # agent, etcd, engine: the daemon's name


async def wait_states(registry: Registry, unit: str, done: Callable[[list[UnitState]], bool]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        states: list[UnitState] = await patiently(registry.states, [])
        if done([s for s in states if s.name == unit]):
            return
        await asyncio.sleep(POLL)


async def restart_failed(lab: LabInfo, registry: Registry, unit: str, unit_file: Path) -> None:
    """Once the agent reports the unit no longer active, unload it and, once the agent has let
    go of it (its state is gone), start it again. A stop would not do: an agent that sees only
    the start after it finds the launch it remembers and starts nothing."""
    await wait_states(registry, unit, lambda states: not any(s.active == "active" for s in states))
    stackfleet(lab, "unload", unit)
    await wait_states(registry, unit, lambda states: not states)
    stackfleet(lab, "start", "--block-attempts", "60", str(unit_file))


async def heal(lab: LabInfo, fault: chaos.Fault, registry: Registry, unit_dir: Path) -> None:
    root = Path(lab.root)
    if fault.kind == "partition":
        ops.heal(root, fault.machine)
    elif fault.kind == "shim":
        assert fault.unit is not None
        await restart_failed(lab, registry, fault.unit, unit_dir / fault.unit)
    else:
        ops.up_machine(root, fault.machine)  # powers on, or starts what is missing


# -- settling ------------------------------------------------------------------------------


async def placements(registry: Registry, lab: LabInfo, logs: Path,
                     units: list[str]) -> dict[str, str] | str:
    """{unit: machine name} if the cluster is settled now, else what is not yet."""
    tls = ops.admin_tls(lab)
    sick = [e for e in lab.endpoints if not ops.etcd_healthy(e, tls)]
    if sick:
        return f"etcd not healthy at {', '.join(sick)}"
    machines: dict[str, MachineRecord] = await patiently(registry.machines, {})
    missing = [m.name for m in lab.machines if m.machine_id not in machines]
    if missing:
        return f"not joined: {', '.join(missing)}"
    states: list[UnitState] = await patiently(registry.states, [])
    names = {m.machine_id: m.name for m in lab.machines}
    found = {}
    t = now()
    for unit in units:
        active = [names.get(s.machine, s.machine) for s in states if s.name == unit and s.active == "active"]
        live = [r.machine for r in read_runs(logs / unit) if t - r.last <= FRESH]
        if len(active) != 1 or live != active:
            return f"{unit}: active on {active or 'no machine'}, beating on {live or 'no machine'}"
        found[unit] = live[0]
    return found


async def settle(registry: Registry, lab: LabInfo, logs: Path, units: list[str],
                 timeout: float = SETTLE_TIMEOUT) -> dict[str, str] | str:
    """Waits until placements() holds, unchanged, for SETTLE s; at the timeout, what did not."""
    deadline = time.monotonic() + timeout
    since, seen, reason = 0.0, None, "not looked at"
    while time.monotonic() < deadline:
        current = await placements(registry, lab, logs, units)
        if isinstance(current, str) or current != seen:
            since, seen = time.monotonic(), (None if isinstance(current, str) else current)
            reason = current if isinstance(current, str) else "placements kept changing"
        elif time.monotonic() - since >= SETTLE:
            return current
        await asyncio.sleep(POLL)
    return reason


def diagnose(lab: LabInfo) -> None:
    """What each machine's daemons are doing, and the end of their logs: for the report."""
    root = Path(lab.root)
    running = {(c["machine"], c["name"]) for c in client.request(root, {"op": "status"})["children"]
               if c["running"]}
    for m in lab.machines:
        for daemon in ("etcd", "engine", "agent"):
            if (m.name, daemon) in running and daemon != "agent":
                continue
            state = "runs" if (m.name, daemon) in running else "is not running"
            print(f"    {m.name}: {daemon} {state}; the end of its log:", flush=True)
            log = Path(m.state_dir) / "logs" / f"{daemon}.log"
            lines = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
            for line in lines:
                print(f"      {line}", flush=True)


def repair(lab: LabInfo) -> None:
    """Every machine powered on, cabled and running its daemons again."""
    for m in lab.machines:
        ops.heal(Path(lab.root), m.name)
        ops.up_machine(Path(lab.root), m.name)


# -- the campaign ----------------------------------------------------------------------------


async def campaign(lab: LabInfo, faults: int, seed: int, units_count: int, budget: float) -> bool:
    shared = Path(lab.shared_dir) / "chaos"
    logs = shared / time.strftime("%Y%m%dT%H%M%S")
    logs.mkdir(parents=True)
    script = shared / HEARTBEAT.name
    shutil.copyfile(HEARTBEAT, script)
    units = [f"chaos-probe-{i + 1}.service" for i in range(units_count)]
    controllers = [m.name for m in lab.machines if m.role == "controller"]
    rng = random.Random(seed)
    print(f"seed {seed}, {faults} faults, {units_count} probe units, TTL {lab.ttl} s, "
          f"budget {budget:.1f} s; heartbeats in {logs}", flush=True)
    unit_dir = Path(tempfile.mkdtemp(prefix="stackfleet-chaos-"))
    registry = Registry.open(lab.endpoints, tls=ops.admin_tls(lab))
    done: list[chaos.Fault] = []
    outcomes: list[chaos.Outcome] = []
    reported: set[tuple[str, str]] = set()
    unsettled = 0
    try:
        for unit in units:
            (unit_dir / unit).write_text(unit_text(str(Path(lab.venv) / "bin" / "python"), script, logs))
        stackfleet(lab, "start", "--block-attempts", "60", *(str(unit_dir / u) for u in units))
        first = await settle(registry, lab, logs, units)
        if isinstance(first, str):
            print(f"the probe units did not settle: {first}", flush=True)
            return False
        where = first
        for i in range(faults):
            fault = chaos.choose_fault(rng, where, controllers, lab.ttl)
            fault_at = now()
            inject(lab, fault)
            await asyncio.sleep(fault.hold)
            await heal(lab, fault, registry, unit_dir)
            after = await settle(registry, lab, logs, units)
            settled_at = now()
            for unit in units:
                runs = read_runs(logs / unit)
                current = chaos.current_run(runs, settled_at, FRESH)
                outcomes.append(chaos.Outcome(
                    fault, unit, chaos.recovery(runs, fault_at, settled_at, FRESH), where[unit],
                    current.machine if current else None))
            done.append(fault)
            overlaps = [o for u in units for o in chaos.overlaps(read_runs(logs / u), GRANULARITY)]
            target = f"{fault.kind} {fault.machine}" + (f" ({fault.unit})" if fault.kind == "shim" else "")
            print(f"{i + 1:>3}/{faults} {target:<44} hold {fault.hold:4.1f} s: "
                  + "; ".join(chaos.describe(o) for o in outcomes[-len(units):])
                  + f" | overlaps {len(overlaps)}", flush=True)
            for a, b in overlaps:
                if (a.name, b.name) not in reported:
                    reported.add((a.name, b.name))
                    print(f"    OVERLAP {a.name} [{a.first:.3f}, {a.last:.3f}] and "
                          f"{b.name} [{b.first:.3f}, {b.last:.3f}]", flush=True)
            if isinstance(after, str):
                unsettled += 1
                print(f"    NOT SETTLED within {SETTLE_TIMEOUT:.0f} s: {after}", flush=True)
                diagnose(lab)
                repair(lab)
                after = await settle(registry, lab, logs, units)
                if isinstance(after, str):
                    print(f"    still not settled after a repair ({after}): campaign stopped", flush=True)
                    break
                print("    settled again after restarting what was missing", flush=True)
            where = after
    finally:
        try:
            stackfleet(lab, "destroy", *units)
        finally:
            await registry.close()
            shutil.rmtree(unit_dir, ignore_errors=True)
    runs_by_unit = [read_runs(logs / u) for u in units]
    overlap_count = sum(len(chaos.overlaps(r, GRANULARITY)) for r in runs_by_unit)
    gaps = [g for r in runs_by_unit for g in chaos.handovers(r)]
    rows = chaos.summarize(done, outcomes, budget)
    print()
    print(chaos.format_summary(rows, overlap_count, min(gaps) if gaps else None, budget))
    print(f"faults after which the cluster did not settle by itself: {unsettled}")
    return (overlap_count == 0 and sum(r.late for r in rows) == 0 and len(done) == faults
            and unsettled == 0)



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=50, metavar="N")
    parser.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    parser.add_argument("--ttl", type=int, metavar="S",
                        help=f"lease TTL of a lab this brings up (default {DEFAULT_TTL}); "
                             "a running lab must have it")
    parser.add_argument("--units", type=int, default=3, metavar="N", help="probe units (default 3)")
    parser.add_argument("--budget", type=float, metavar="S", help="recovery budget (default TTL + 5 s)")
    parser.add_argument("--root", type=Path, help="lab root (default: the running lab's)")
    args = parser.parse_args()
    if args.faults < 1 or args.units < 1 or (args.ttl is not None and args.ttl < 2):
        parser.error("--faults and --units must be at least 1, --ttl at least 2")
    root = args.root or default_root()
    lab = load_lab(root)
    if lab is None:
        lab = ops.up(root, SHAPE, args.ttl, None, print)
    elif args.ttl is not None and args.ttl != lab.ttl:
        parser.error(f"the lab at {root} runs with TTL {lab.ttl} s, not {args.ttl}: destroy it first")
    if "agent" not in lab.processes:
        parser.error("the lab runs no agents")
    seed = args.seed if args.seed is not None else int(time.time())
    budget = args.budget if args.budget is not None else lab.ttl + 5.0
    ok = asyncio.run(campaign(lab, args.faults, seed, args.units, budget))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
