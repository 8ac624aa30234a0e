"""submit, load, start, stop, unload, destroy: the commands that change desired state.

Every check runs before the first write, so a refused command changes nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from ..registry.records import DesiredState, JobRecord, MachineRecord
from ..registry.store import Registry
from ..unit import (
    UnitError,
    UnitFile,
    UnitInvalid,
    check_unit_set,
    instantiate,
    load_unit_file,
    parse_unit,
    unit_warnings,
)
from ..unit.names import parse_unit_name
from .errors import EXIT_FAILED, EXIT_NO_SUCH_UNIT, CommandError
from .verify import warning_line
from .view import ClusterView

ATTEMPT_SECONDS = 1.0  # one --block-attempts attempt
RUNNING = ("active", "activating", "deactivating", "reloading")


@dataclass
class Target:
    name: str
    unit: UnitFile | None  # None: already submitted, we have no local body


def _report_unit_errors(errors: list[UnitError]) -> None:
    for err in errors:
        print(err, file=sys.stderr)


def _report_warnings(warnings: list[UnitError]) -> None:
    for warning in warnings:
        print(warning_line(warning), file=sys.stderr)


async def _resolve(registry: Registry, refs: list[str]) -> list[Target]:
    """Files or names -> units. A name that is not a file must already be in the cluster
    (or be an instance of a submitted template)."""
    targets: list[Target] = []
    errors: list[UnitError] = []
    missing = 0
    for ref in refs:
        name = os.path.basename(ref)
        if os.path.lexists(ref) or _template_file_exists(ref):
            try:
                targets.append(Target(name, load_unit_file(ref)))
            except UnitInvalid as invalid:
                errors += invalid.errors
            continue
        if await registry.job(name) is not None:
            targets.append(Target(name, None))
            continue
        try:
            unit_name = parse_unit_name(name, ref)
        except UnitInvalid as invalid:
            errors += invalid.errors
            continue
        template_name = unit_name.template
        template = await registry.job(template_name) if template_name else None
        body = await registry.body(template.hash) if template else None
        if template_name is None or body is None:
            errors.append(UnitError(ref, 0, "no such file, and no unit of that name is in the cluster",
                                    "give the path of the unit file, or submit it first"))
            missing += 1
            continue
        try:
            targets.append(Target(name, instantiate(parse_unit(body, template_name), unit_name.instance or "")))
        except UnitInvalid as invalid:
            errors += invalid.errors
    local = [t.unit for t in targets if t.unit is not None]
    for unit in local:
        _report_warnings(unit_warnings(unit))
    errors += check_unit_set(local)
    if errors:
        _report_unit_errors(errors)
        # README's table: a unit that is neither a file nor in the cluster is "no such unit", as for stop.
        raise CommandError(f"{len(errors)} error(s); nothing was changed",
                           EXIT_NO_SUCH_UNIT if missing else EXIT_FAILED)
    return targets


def _template_file_exists(ref: str) -> bool:
    try:
        unit_name = parse_unit_name(os.path.basename(ref))
    except UnitInvalid:
        return False
    return bool(unit_name.template and os.path.exists(os.path.join(os.path.dirname(ref), unit_name.template)))


# An agent's --metadata is K=V[,K=V]: no key or value of a machine ever holds a comma.
NEVER_IN_METADATA = ","


def placement_check(unit: UnitFile, machines: list[MachineRecord]) -> tuple[list[UnitError], list[UnitError]]:
    """(errors, warnings) for where the unit may run, as fleet has it.

    A constraint that no machine of the cluster meets now only warns: the unit waits unscheduled,
    its reason shown, until a machine that meets it joins. A constraint that no machine can ever
    meet is refused."""
    c = unit.constraints
    fleet = "X-Fleet"
    errors: list[UnitError] = []
    warnings: list[UnitError] = []
    if c.machine_id and not any(m.id == c.machine_id for m in machines):
        line = unit.entries(fleet, "MachineID")[0].line
        known = ", ".join(f"{m.id} ({m.name})" for m in machines) or "none"
        warnings.append(UnitError(unit.path, line, f"MachineID={c.machine_id} is not a machine of this cluster now; "
                                  "the unit waits until it joins", f"machines: {known}"))
    if not c.machine_metadata:
        return errors, warnings
    entries = unit.entries(fleet, "MachineMetadata")
    for key, values in sorted(c.machine_metadata.items()):
        for value in sorted(v for v in values if NEVER_IN_METADATA in f"{key}{v}"):
            line = next((e.line for e in entries if f"{key}={value}" in e.raw), entries[0].line if entries else 0)
            errors.append(UnitError(unit.path, line, f"MachineMetadata {key}={value} can never match: a machine's "
                                    f"metadata keys and values never contain {NEVER_IN_METADATA!r}",
                                    "write one key=value per item, separated by spaces"))
    if not errors and not any(_matches(m, c.machine_metadata) for m in machines):
        wanted = " and ".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(c.machine_metadata.items()))
        have = sorted({f"{k}={v}" for m in machines for k, v in m.metadata.items()})
        warnings.append(UnitError(unit.path, entries[0].line if entries else 0,
                                  f"no machine in the cluster has metadata {wanted} now; "
                                  "the unit waits unscheduled until one joins",
                                  f"machines have: {', '.join(have) or 'no metadata'}"))
    return errors, warnings


def _matches(m: MachineRecord, wanted: dict[str, frozenset[str]]) -> bool:
    return all(m.metadata.get(k) in values for k, values in wanted.items())


async def _submit(registry: Registry, targets: list[Target], replace: bool, check_placement: bool) -> None:
    local = [t.unit for t in targets if t.unit is not None]
    errors: list[UnitError] = []
    if check_placement:
        machines = list((await registry.machines()).values())
        for unit in local:
            if not unit.is_template:
                refused, waiting = placement_check(unit, machines)
                errors += refused
                _report_warnings(waiting)
    for unit in local:
        current = await registry.job(unit.name)
        if current is not None and current.hash != unit.hash and not replace:
            errors.append(UnitError(unit.path, 0,
                                    f"a different {unit.name} is already in the cluster (hash {current.hash[:7]})",
                                    "use --replace to update it, or destroy it first"))
    if errors:
        _report_unit_errors(errors)
        raise CommandError(f"{len(errors)} error(s); nothing was changed")
    for unit in local:
        job = JobRecord(unit.name, unit.hash, "inactive", unit.constraints.to_json())
        result = await registry.submit(job, unit.text, replace)
        if result == "replaced":
            print(f"Unit {unit.name} replaced (hash {unit.hash[:7]})")
        elif result == "created":
            print(f"Unit {unit.name} submitted")


def _refuse_templates(targets: list[Target], verb: str) -> None:
    for t in targets:
        if parse_unit_name(t.name).is_template:
            raise CommandError(f"{t.name} is a template: {verb} an instance of it instead, "
                               f"e.g. {t.name.replace('@.', '@1.')}")


async def submit(registry: Registry, args: argparse.Namespace) -> int:
    targets = await _resolve(registry, args.units)
    await _submit(registry, targets, args.replace, check_placement=False)
    return 0


async def _change(registry: Registry, args: argparse.Namespace, desired: DesiredState, verb: str) -> int:
    targets = await _resolve(registry, args.units)
    _refuse_templates(targets, verb)
    await _submit(registry, targets, getattr(args, "replace", False), check_placement=desired != "inactive")
    for t in targets:
        await registry.set_desired(t.name, desired)
    if args.no_block:
        for t in targets:
            print(f"Triggered unit {t.name} {verb}")
        return 0
    return await wait_for(registry, [t.name for t in targets], desired, args.block_attempts)


async def load(registry: Registry, args: argparse.Namespace) -> int:
    return await _change(registry, args, "loaded", "load")


async def start(registry: Registry, args: argparse.Namespace) -> int:
    return await _change(registry, args, "launched", "start")


async def _names_in_cluster(registry: Registry, refs: list[str]) -> list[str]:
    names = [os.path.basename(r) for r in refs]
    jobs = await registry.jobs()
    missing = [n for n in names if n not in jobs]
    if missing:
        raise CommandError(f"no such unit in the cluster: {', '.join(missing)} (see `stackfleet list-unit-files`)",
                           EXIT_NO_SUCH_UNIT)
    return names


async def _lower(registry: Registry, args: argparse.Namespace, desired: DesiredState) -> int:
    names = await _names_in_cluster(registry, args.units)
    for n in names:
        await registry.set_desired(n, desired)
    if args.no_block:
        return 0
    return await wait_for(registry, names, desired, args.block_attempts)


async def stop(registry: Registry, args: argparse.Namespace) -> int:
    return await _lower(registry, args, "loaded")


async def unload(registry: Registry, args: argparse.Namespace) -> int:
    return await _lower(registry, args, "inactive")


async def destroy(registry: Registry, args: argparse.Namespace) -> int:
    names = await _names_in_cluster(registry, args.units)
    for n in names:
        await registry.destroy(n)
        print(f"Destroyed {n}")
    return 0


def _done(view: ClusterView, name: str, desired: DesiredState) -> bool:
    machines = set(view.schedule.get(name, {}))
    states = {s.machine: s for s in view.states_of(name)}
    if desired == "inactive":
        return not machines and not any(s.active in RUNNING for s in states.values())
    if not machines:
        return False
    if desired == "launched":
        return all(m in states and states[m].active == "active" for m in machines)
    return all(m in states and states[m].active not in RUNNING for m in machines)


async def wait_for(registry: Registry, names: list[str], desired: DesiredState, attempts: int) -> int:
    """Block until each unit reached the desired state, printing what happens meanwhile."""
    verb = {"launched": "launched", "loaded": "loaded", "inactive": "inactive"}[desired]
    pending = list(names)
    said: dict[str, str] = {}
    tries = 0
    while pending:
        view = await ClusterView.load(registry)
        for name in list(pending):
            if _done(view, name, desired):
                pending.remove(name)
                where = ", ".join(view.label(m) for m in sorted(view.schedule.get(name, {})))
                print(f"Unit {name} {verb}" + (f" on {where}" if where else ""))
                continue
            news = view.reasons.get(name) or _progress(view, name)
            if news and said.get(name) != news:
                said[name] = news
                print(f"Unit {name}: {news}", file=sys.stderr)
        if not pending:
            break
        tries += 1
        if attempts and tries >= attempts:
            for name in pending:
                print(f"Unit {name} not {verb} after {attempts} attempt(s): {said.get(name, 'no progress')}",
                      file=sys.stderr)
            return 1
        await asyncio.sleep(ATTEMPT_SECONDS)
    return 0


def _progress(view: ClusterView, name: str) -> str:
    states = view.states_of(name)
    if states:
        return "; ".join(f"{s.active} ({s.sub}) on {view.label(s.machine)}" for s in states)
    if view.schedule.get(name):
        return "scheduled to " + ", ".join(view.label(m) for m in sorted(view.schedule[name]))
    return "waiting to be scheduled"
