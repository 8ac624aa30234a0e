"""plan(snapshot) -> actions: where every unit should run. Pure: no I/O, no clock, no randomness.

The plan works on a private copy of the schedule in rounds. A round visits the global units, then
the exclusive units in dependency order (MachineOf targets and replacing units first, otherwise by
name). Each exclusive unit keeps its machine while that machine still satisfies its constraints,
and is otherwise placed on the least-loaded machine that does. A later unit in a round can change
what an earlier one saw (a conflicting unit moves away, a replacing unit lands), so rounds repeat
until one changes nothing. The actions are the difference between the snapshot and that fixed
point, which is what makes planning again on the applied result a no-op. Every entry of the fixed
point carries its job's body hash, so a replaced body reaches the machines already running it.

Speed: machines are grouped by the MachineMetadata they satisfy (one group per distinct
constraint), and each group keeps lazy min-heaps of (load, machine id). A unit without
Conflicts or Replaces costs a heap peek; units that share their Conflicts (template instances)
share a heap that forgets blocked machines; MachineID/MachineOf units scan their few machines.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping

from stackfleet.engine.model import (
    Action,
    ClearReason,
    DesiredState,
    Job,
    RecordReason,
    Schedule,
    Snapshot,
    Unschedule,
)
from stackfleet.unit.errors import Problem
from stackfleet.unit.patterns import compile_glob

# A pathological job set could keep rounds flip-flopping; stop and let the next plan continue.
_MAX_ROUNDS = 8
# How many blocked machines a unit skips on its group's heap before it uses the heap of its kind.
_SKIP_LIMIT = 16
# Why-texts that several code paths share.
_NOT_MET = "constraints no longer met"
_MetaKey = tuple[tuple[str, tuple[str, ...]], ...]


def plan(snapshot: Snapshot) -> list[Action]:
    """The actions that bring the schedule and the recorded reasons in line with the jobs."""
    return _Planner(snapshot).run()


def planning_order(jobs: Mapping[str, Job]) -> list[str]:
    """The exclusive active jobs in the order a round plans them.

    A MachineOf target comes before the units that follow it, a replacing unit before the units
    it replaces, otherwise names decide. Cycles (nonsense, but possible) are planned by name.
    """
    exclusive = {n: j for n, j in jobs.items() if j.desired != "inactive" and not j.constraints.global_}
    succ: dict[str, set[str]] = defaultdict(set)
    for name, job in exclusive.items():
        for target in job.constraints.machine_of:
            if target in exclusive and target != name:
                succ[target].add(name)
        for replaced in job.constraints.replaces:
            if replaced in exclusive and replaced != name:
                succ[name].add(replaced)
    names = sorted(exclusive)
    if not succ:
        return names
    component = _components(names, succ)
    members: dict[str, list[str]] = defaultdict(list)
    for name in names:
        members[component[name]].append(name)
    indegree: dict[str, int] = defaultdict(int)
    component_succ: dict[str, set[str]] = defaultdict(set)
    for a, targets in succ.items():
        for b in targets:
            ca, cb = component[a], component[b]
            if ca != cb and cb not in component_succ[ca]:
                component_succ[ca].add(cb)
                indegree[cb] += 1
    ready = [c for c in members if indegree[c] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        c = heapq.heappop(ready)
        order.extend(members[c])
        for d in component_succ[c]:
            indegree[d] -= 1
            if indegree[d] == 0:
                heapq.heappush(ready, d)
    return order


def _components(names: list[str], succ: Mapping[str, set[str]]) -> dict[str, str]:
    """Tarjan's strongly connected components: name -> smallest name of its component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component: dict[str, str] = {}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)

    for root in names:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(succ.get(root, ())))]
        while work:
            v, targets = work[-1]
            for w in targets:
                if w not in index:
                    visit(w)
                    work.append((w, iter(succ.get(w, ()))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    scc = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        scc.append(w)
                        if w == v:
                            break
                    smallest = min(scc)
                    for w in scc:
                        component[w] = smallest
    return component


def describe_metadata(metadata: Mapping[str, frozenset[str]]) -> str:
    """role=controller, region=east|west: the form reason texts use."""
    return ", ".join(f"{k}={'|'.join(sorted(v)) or '(nothing)'}" for k, v in sorted(metadata.items()))


def _describe_machines(machines: Iterable[str]) -> str:
    names = sorted(machines)
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"machine {shown}" if len(names) == 1 else f"machines {shown}"


def _metadata_key(metadata: Mapping[str, frozenset[str]]) -> _MetaKey:
    return tuple(sorted((k, tuple(sorted(v))) for k, v in metadata.items()))


class _Group:
    """The live machines that satisfy one MachineMetadata constraint."""

    def __init__(self, members: set[str]) -> None:
        self.members = members
        self.ordered = sorted(members)
        # Lazy min-heaps of (load, machine), one per kind of unit (see _Relations.kind), built
        # on first use. An entry is current when its load equals the machine's load; a lower one
        # is refreshed on sight, a higher one is dropped because every load decrease pushes a
        # fresh entry (see _Planner._unschedule).
        self.heaps: dict[Hashable, list[tuple[int, str]]] = {}


class _Relations:
    """Which units an exclusive unit must not share a machine with.

    Conflicts are kept per pattern, not per pair of units: thousands of template instances that
    all declare Conflicts=web@*.service would otherwise make millions of pairs.
    """

    def __init__(self, active: Mapping[str, Job], order: list[str]) -> None:
        names = sorted(active)
        self.declares = {n: frozenset(j.constraints.conflicts) for n, j in active.items() if j.constraints.conflicts}
        self.matching: dict[str, list[str]] = {}  # pattern -> the active units it names
        self.declarers: dict[str, list[str]] = defaultdict(list)  # pattern -> units declaring it
        matched: dict[str, set[str]] = defaultdict(set)
        for name in names:
            for pattern in self.declares.get(name, ()):
                self.declarers[pattern].append(name)
                if pattern not in self.matching:
                    self.matching[pattern] = _matching(pattern, names, active)
                    for other in self.matching[pattern]:
                        matched[other].add(pattern)
        self.matched = {n: frozenset(patterns) for n, patterns in matched.items()}
        # A replaces B: B must leave A's machine, A ignores B. Only edges that follow the planning
        # order count: in a Replaces cycle one unit has to win, and it is the one planned first.
        position = {name: i for i, name in enumerate(order)}
        self.ignores = {n: frozenset(active[n].constraints.replaces) for n in order if active[n].constraints.replaces}
        self.replacers: dict[str, set[str]] = defaultdict(set)
        for a, replaced in self.ignores.items():
            for b in replaced:
                if b in position and position[a] < position[b] and a not in self.ignores.get(b, ()):
                    self.replacers[b].add(a)
        self.involved = {n for n in order if n in self.declares or n in self.matched or n in self.replacers}
        # Units of one kind are blocked by exactly the same machines.
        none: frozenset[str] = frozenset()
        self.kind: dict[str, Hashable] = {
            n: (self.declares.get(n, none), self.matched.get(n, none), self.ignores.get(n, none),
                frozenset(self.replacers.get(n, ())))
            for n in self.involved
        }

    def _conflict(self, x: str, y: str) -> bool:
        mine = self.declares.get(x)
        if mine and not mine.isdisjoint(self.matched.get(y, ())):
            return True
        theirs = self.declares.get(y)
        return bool(theirs and not theirs.isdisjoint(self.matched.get(x, ())))

    def avoids(self, x: str, y: str) -> bool:
        """Whether exclusive unit x may not share a machine with unit y."""
        if y == x or y in self.ignores.get(x, ()):
            return False
        return y in self.replacers.get(x, ()) or self._conflict(x, y)

    def _has_partners(self, x: str) -> bool:
        ignore = self.ignores.get(x, frozenset()) | {x}
        return any(y not in ignore for p in self.declares.get(x, ()) for y in self.matching[p]) or \
            any(y not in ignore for p in self.matched.get(x, ()) for y in self.declarers[p])

    def blocked_reason(self, job: Job, candidates: int) -> str:
        conflicts = job.constraints.conflicts
        if not self._has_partners(job.name):
            what = "a unit that replaces it"
        else:
            what = "a conflicting unit" + (f" (Conflicts={', '.join(conflicts)})" if conflicts else "")
            if self.replacers.get(job.name):
                what += " or a unit that replaces it"
        if candidates == 1:
            return f"the only machine that fits its other constraints runs {what}"
        return f"each of the {candidates} machines that fit its other constraints runs {what}"


def _matching(pattern: str, names: list[str], active: Mapping[str, Job]) -> list[str]:
    """The active units a Conflicts= pattern names, with the parser's glob rules."""
    if not any(ch in pattern for ch in "*?[\\"):
        return [pattern] if pattern in active else []
    try:
        match = compile_glob(pattern).fullmatch
    except Problem:  # the parser rejects these; a bad one read back from etcd names nothing
        return []
    return [n for n in names if match(n)]


class _Planner:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.machines = snapshot.machines
        jobs = snapshot.jobs
        self.active = {n: j for n, j in jobs.items() if j.desired != "inactive"}
        self.globals = sorted(n for n, j in self.active.items() if j.constraints.global_)
        self.order = planning_order(jobs)
        self.relations = _Relations(self.active, self.order)
        # The working schedule, its inverse (machine -> units; its size is the machine's load),
        # and why each removed entry was removed, for the final Unschedule actions.
        self.placed: dict[str, dict[str, DesiredState]] = {}
        self.on: dict[str, set[str]] = {m: set() for m in self.machines}
        # Per machine and Conflicts pattern: how many units there match it / declare it.
        self.matching_on: dict[str, Counter[str]] = defaultdict(Counter)
        self.declaring_on: dict[str, Counter[str]] = defaultdict(Counter)
        self.why: dict[tuple[str, str], str] = {}
        self.touched: set[str] = set()
        self.reason: dict[str, str] = {}
        self.groups: dict[_MetaKey, _Group] = {}
        self.group_of_job: dict[str, _Group] = {}
        self.heaps_of_machine: dict[str, list[list[tuple[int, str]]]] = defaultdict(list)
        self.settled: set[str] = set()
        self.changed = False

    def run(self) -> list[Action]:
        self._load_schedule()
        for _ in range(_MAX_ROUNDS):
            self.changed = False
            self.reason = {}
            self.settled = set(self.globals)
            for name in self.globals:
                self._plan_global(self.active[name])
            for name in self.order:
                self._plan_exclusive(self.active[name])
                self.settled.add(name)
            if not self.changed:
                break
        return self._actions()

    # --- the working schedule -------------------------------------------------------------

    def _load_schedule(self) -> None:
        for unit, entries in self.snapshot.schedule.items():
            gone = None
            if unit not in self.active:
                gone = "job destroyed" if unit not in self.snapshot.jobs else "job inactive"
            for machine, desired in entries.items():
                why = gone or (None if machine in self.machines else "machine lost")
                if why is None:
                    self._add(unit, machine, desired)
                else:
                    self.why[unit, machine] = why
                    self.touched.add(unit)

    def _add(self, unit: str, machine: str, desired: DesiredState) -> None:
        entries = self.placed.setdefault(unit, {})
        if machine not in entries:
            self.on[machine].add(unit)
            self._count(unit, machine, 1)
        entries[machine] = desired

    def _count(self, unit: str, machine: str, delta: int) -> None:
        for pattern in self.relations.matched.get(unit, ()):
            self.matching_on[machine][pattern] += delta
        for pattern in self.relations.declares.get(unit, ()):
            self.declaring_on[machine][pattern] += delta

    def _schedule(self, unit: str, machine: str, desired: DesiredState) -> None:
        self._add(unit, machine, desired)
        self.touched.add(unit)
        self.changed = True

    def _unschedule(self, unit: str, machine: str, why: str) -> None:
        entries = self.placed[unit]
        del entries[machine]
        if not entries:
            del self.placed[unit]
        on = self.on[machine]
        on.discard(unit)
        self._count(unit, machine, -1)
        for heap in self.heaps_of_machine.get(machine, ()):
            heapq.heappush(heap, (len(on), machine))
        self.why[unit, machine] = why
        self.touched.add(unit)
        self.changed = True

    def _group(self, job: Job) -> _Group:
        group = self.group_of_job.get(job.name)
        if group is None:
            metadata = job.constraints.machine_metadata
            key = _metadata_key(metadata)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group({
                    m.id for m in self.machines.values()
                    if all(m.metadata.get(k) in allowed for k, allowed in metadata.items())
                })
            self.group_of_job[job.name] = group
        return group

    # --- global units ---------------------------------------------------------------------

    def _plan_global(self, job: Job) -> None:
        group = self._group(job)
        name = job.name
        for machine in sorted(self.placed.get(name, ())):
            if machine not in group.members:
                self._unschedule(name, machine, _NOT_MET)
        for machine in group.ordered:
            if self.placed.get(name, {}).get(machine) != job.desired:
                self._schedule(name, machine, job.desired)
        if not group.members:
            self.reason[name] = self._no_match(job)

    def _no_match(self, job: Job) -> str:
        if not self.machines:
            return "no live machines"
        return f"no machine matches MachineMetadata {describe_metadata(job.constraints.machine_metadata)}"

    # --- exclusive units ------------------------------------------------------------------

    def _plan_exclusive(self, job: Job) -> None:
        name = job.name
        keep = None
        for machine in sorted(self.placed.get(name, ())):
            why = self._why_move(job, machine)
            if why is None and keep is None:
                keep = machine
            else:
                self._unschedule(name, machine, why or f"duplicate of the entry on {keep}")
        if keep is None:
            keep, reason = self._choose(job)
            if keep is None:
                self.reason[name] = reason
                return
        if self.placed.get(name, {}).get(keep) != job.desired:
            self._schedule(name, keep, job.desired)

    def _why_move(self, job: Job, machine: str) -> str | None:
        """None when the unit may stay on `machine`, otherwise why it must leave.

        Conflicts count only against units already planned in this round: of two units that
        must not share a machine, the one planned first stays.
        """
        c = job.constraints
        if c.machine_id is not None and machine != c.machine_id:
            return _NOT_MET
        if machine not in self._group(job).members:
            return _NOT_MET
        if any(machine not in self.placed.get(target, ()) for target in c.machine_of):
            return _NOT_MET
        if job.name in self.relations.involved:
            avoids = self.relations.avoids
            blockers = sorted(u for u in self.on[machine] if u in self.settled and avoids(job.name, u))
            if blockers:
                first = blockers[0]
                replaced = first in self.relations.replacers.get(job.name, ())
                return f"replaced by {first}" if replaced else f"conflicts with {first}"
        return None

    def _choose(self, job: Job) -> tuple[str | None, str]:
        """The least-loaded machine for `job`, or None and the reason nothing fits."""
        c = job.constraints
        group = self._group(job)
        pinned: set[str] | None = None
        pinned_by = ""
        if c.machine_id is not None:
            if c.machine_id not in self.machines:
                return None, f"MachineID={c.machine_id} is not a live machine"
            pinned, pinned_by = {c.machine_id}, f"MachineID={c.machine_id}"
        for target in c.machine_of:
            hosts = set(self.placed.get(target, ()))
            if not hosts:
                return None, f"MachineOf={target} is not scheduled"
            if pinned is not None:
                if not pinned & hosts:
                    return None, (f"MachineOf={target} is on {_describe_machines(hosts)}, "
                                  f"not on the {_describe_machines(pinned)} required by {pinned_by}")
                hosts &= pinned
            pinned = hosts
            pinned_by = f"{pinned_by} and MachineOf={target}" if pinned_by else f"MachineOf={target}"

        blocked = self._blocked_for(job.name) if job.name in self.relations.involved else None
        if pinned is None:
            if not group.members:
                return None, self._no_match(job)
            machine = self._least_loaded(group, job, blocked)
            candidates = len(group.members)
        else:
            fitting = sorted(m for m in pinned if m in group.members)
            if not fitting:
                return None, (f"the {_describe_machines(pinned)} required by {pinned_by} "
                              f"does not match MachineMetadata {describe_metadata(c.machine_metadata)}")
            machine = self._scan(fitting, blocked)
            candidates = len(fitting)
        if machine is None:
            return None, self.relations.blocked_reason(job, candidates)
        return machine, ""

    def _blocked_for(self, x: str) -> Callable[[str], bool]:
        """Whether a machine hosts a unit that x must avoid; x itself is on no machine yet."""
        rel = self.relations
        replacers = rel.replacers.get(x, set())
        declares = rel.declares.get(x, frozenset())
        matched = rel.matched.get(x, frozenset())
        ignores = rel.ignores.get(x, frozenset())

        def blocked(machine: str) -> bool:
            on = self.on[machine]
            if not replacers.isdisjoint(on):
                return True
            # The counters include units x ignores (those it replaces); take them back out.
            ignored = [y for y in ignores if y in on]
            matching, declaring = self.matching_on[machine], self.declaring_on[machine]
            return any(
                matching[p] > sum(p in rel.matched.get(y, ()) for y in ignored) for p in declares
            ) or any(
                declaring[p] > sum(p in rel.declares.get(y, ()) for y in ignored) for p in matched
            )

        return blocked

    def _least_loaded(self, group: _Group, job: Job, blocked: Callable[[str], bool] | None) -> str | None:
        """The least-loaded machine of the group that `blocked` does not exclude.

        Most units take the top of the group's heap; a few blocked machines are skipped and put
        back. When more are blocked, the unit switches to the heap of its kind (units with the
        same conflict relations, e.g. template instances). That heap may forget a blocked machine
        for good: only a removal on that machine can unblock it, and removals push fresh entries.
        """
        kind = self.relations.kind.get(job.name)
        if blocked is None or kind not in group.heaps:  # a kind gets its heap once it needs one
            heap = self._heap(group, None)
            skipped: list[tuple[int, str]] = []
            machine = self._top(heap)
            while machine is not None and blocked is not None and blocked(machine) and len(skipped) < _SKIP_LIMIT:
                skipped.append(heapq.heappop(heap))
                machine = self._top(heap)
            for entry in skipped:
                heapq.heappush(heap, entry)
            if machine is None or blocked is None or not blocked(machine):
                return machine
        heap = self._heap(group, kind)
        machine = self._top(heap)
        while machine is not None and blocked(machine):
            heapq.heappop(heap)
            machine = self._top(heap)
        return machine

    def _heap(self, group: _Group, kind: Hashable) -> list[tuple[int, str]]:
        heap = group.heaps.get(kind)
        if heap is None:
            heap = group.heaps[kind] = [(len(self.on[m]), m) for m in group.ordered]
            heapq.heapify(heap)
            for m in group.ordered:
                self.heaps_of_machine[m].append(heap)
        return heap

    def _top(self, heap: list[tuple[int, str]]) -> str | None:
        """The machine of the heap's least current entry, after dropping or refreshing stale ones."""
        while heap:
            load, machine = heap[0]
            now = len(self.on[machine])
            if load == now:
                return machine
            if load < now:
                heapq.heapreplace(heap, (now, machine))
            else:
                heapq.heappop(heap)
        return None

    def _scan(self, machines: Iterable[str], blocked: Callable[[str], bool] | None) -> str | None:
        on = self.on
        best = min(((len(on[m]), m) for m in machines if blocked is None or not blocked(m)), default=None)
        return None if best is None else best[1]

    # --- result ---------------------------------------------------------------------------

    def _actions(self) -> list[Action]:
        recorded = self.snapshot.reasons
        for unit in recorded.keys() | self.reason.keys():
            if recorded.get(unit) != self.reason.get(unit):
                self.touched.add(unit)
        # A replaced unit body must reach the machines that already have the unit scheduled.
        hashes = self.snapshot.hashes
        for unit, entries in self.placed.items():
            body, had = self.active[unit].hash, hashes.get(unit, {})
            if any(had.get(m, "") != body for m in entries):
                self.touched.add(unit)
        # Removals come first so that an applier working in several steps frees machines (and
        # the exclusive locks there) before it fills them; then units in planning order.
        units = sorted(u for u in self.touched if u not in self.active)
        units += [u for u in self.globals + self.order if u in self.touched]
        before = self.snapshot.schedule
        removals: list[Action] = []
        placements: list[Action] = []
        reasons: list[Action] = []
        for unit in units:
            old = before.get(unit, {})
            old_hashes = hashes.get(unit, {})
            new = self.placed.get(unit, {})
            removals.extend(Unschedule(unit, m, self.why[unit, m]) for m in sorted(old) if m not in new)
            if new:
                body = self.active[unit].hash
                placements.extend(Schedule(unit, m, d, body) for m, d in sorted(new.items())
                                  if old.get(m) != d or old_hashes.get(m, "") != body)
            reason = self.reason.get(unit)
            if reason != recorded.get(unit):
                reasons.append(ClearReason(unit) if reason is None else RecordReason(unit, reason))
        return removals + placements + reasons
