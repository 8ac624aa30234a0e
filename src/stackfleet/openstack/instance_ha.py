"""The evacuator: the `instance-ha` role (units/instance-ha.service, one copy on a controller).

A thin runner around the pure planner (evacuation.py): each pass reads stackfleet's membership
(a watch of machines/), its own records in etcd (registry/progress.py) and Nova's state (through
nova_ha.py in the OpenStack venv), plans, and carries the actions out in order; the evacuations of
one pass run in parallel. Every step goes to the cluster's event log and to the unit's output
(`stackfleet journal instance-ha.service`). It keeps nothing between passes but what is in etcd,
so the copy that takes over after a failover continues where the last one stopped.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from stackfleet.openstack import evacuation as ev
from stackfleet.openstack import settings as settings_mod
from stackfleet.openstack.role_context import RoleRun

UNIT = "instance-ha.service"
# A pass at once when a machine leaves or joins; else this often while a host is dead or not yet
# back in service, soon after a pass that acted (its next step may be due), and rarely when all is
# well: each pass asks Nova's API three times, on a controller that serves the users too.
PASS_INTERVAL = 1.0
AFTER_ACTION = 0.2
IDLE_INTERVAL = 15.0
EVENT_KIND = "instance-ha"


class Records(Protocol):
    async def all(self) -> dict[str, dict[str, Any]]: ...
    async def create(self, path: str, value: dict[str, Any]) -> bool: ...
    async def put(self, path: str, value: dict[str, Any]) -> None: ...
    async def delete_below(self, path: str) -> None: ...


class NovaAPI(Protocol):
    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """The op's answer; raises NovaError with Nova's message."""
        ...


class NovaError(RuntimeError):
    pass


# -- records in etcd ------------------------------------------------------------------------
def host_path(host: str) -> str:
    return f"hosts/{host}"


def progress_path(epoch: str, instance_id: str) -> str:
    return f"evacuations/{epoch}/{instance_id}"


def read_records(raw: dict[str, dict[str, Any]]) -> tuple[dict[str, ev.HostDown], dict[tuple[str, str], ev.Progress]]:
    hosts: dict[str, ev.HostDown] = {}
    progress: dict[tuple[str, str], ev.Progress] = {}
    for path, value in raw.items():
        parts = path.split("/")
        if parts[0] == "hosts" and len(parts) == 2:
            hosts[parts[1]] = ev.HostDown(parts[1], str(value["epoch"]), float(value["since"]),
                                          value.get("back_since"))
        elif parts[0] == "evacuations" and len(parts) == 3:
            progress[(parts[1], parts[2])] = ev.Progress(parts[1], parts[2], str(value["host"]),
                                                         value["state"], str(value.get("detail", "")))
    return hosts, progress


def _progress_value(p: ev.Progress, now: float) -> dict[str, Any]:
    return {"host": p.host, "state": p.state, "detail": p.detail, "at": now}


def world_of(members: frozenset[str], nova: dict[str, Any], raw: dict[str, dict[str, Any]], enabled: bool,
             now: float, bound: int = ev.DEFAULT_BOUND) -> ev.World:
    hosts, progress = read_records(raw)
    return ev.World(
        members=members,
        services=tuple(ev.ComputeService(s["host"], s["service_id"], s["forced_down"], s["updated_at"])
                       for s in nova["services"]),
        instances=tuple(ev.Instance(i["id"], i["name"], i["host"], i["vm_state"], i["task_state"], i["metadata"])
                        for i in nova["instances"]),
        migrations=tuple(ev.Migration(m["id"], m["instance_id"], m["source"], m["dest"], m["status"],
                                      m["created_at"]) for m in nova["migrations"]),
        hosts_down=hosts, progress=progress, enabled=enabled, now=now, bound=bound)


# -- the runner -----------------------------------------------------------------------------
class Evacuator:
    def __init__(self, records: Records, nova: NovaAPI, event: Callable[[str, str], Awaitable[None]],
                 members: Callable[[], frozenset[str]], enabled: Callable[[], Awaitable[bool]],
                 bound: int = ev.DEFAULT_BOUND, clock: Callable[[], float] = time.time) -> None:
        self.records = records
        self.nova = nova
        self.event = event  # (host, text): the event log and the unit's output
        self.members = members
        self.enabled = enabled
        self.bound = bound
        self.clock = clock
        self.interval = PASS_INTERVAL

    async def observe(self) -> ev.World:
        raw = await self.records.all()
        hosts, _ = read_records(raw)
        members = self.members()
        nova = await self.nova.call("observe", hosts=sorted(hosts), members=sorted(members))
        return world_of(members, nova, raw, await self.enabled(), self.clock(), self.bound)

    async def step(self) -> list[ev.Action]:
        """One pass; the actions it carried out. Sets `interval`, the wait before the next."""
        self.interval = PASS_INTERVAL
        world = await self.observe()
        actions = ev.plan(world)
        self.interval = AFTER_ACTION if actions else PASS_INTERVAL if world.hosts_down else IDLE_INTERVAL
        index = 0
        while index < len(actions):
            action = actions[index]
            if isinstance(action, ev.Evacuate):  # this pass's evacuations, all at once
                batch = [a for a in actions[index:] if isinstance(a, ev.Evacuate)]
                await asyncio.gather(*(self._evacuate(a) for a in batch))
                index += len(batch)
                continue
            await self._do(action)
            index += 1
        return actions

    async def _do(self, action: ev.Action) -> None:
        now = self.clock()
        match action:
            case ev.OpenEpoch(host):
                epoch = f"{host}@{int(now * 1000)}"
                if not await self.records.create(host_path(host), {"epoch": epoch, "since": now}):
                    return
            case ev.ForceDown(_, service_id) | ev.LiftForcedDown(_, service_id):
                await self.nova.call("force_down", service_id=service_id, down=isinstance(action, ev.ForceDown))
            case ev.Note(progress):
                await self.records.put(progress_path(progress.epoch, progress.instance_id),
                                       _progress_value(progress, now))
            case ev.MarkReturned(host):
                current = (await self.records.all()).get(host_path(host))
                if current is None:
                    return
                await self.records.put(host_path(host), {**current, "back_since": now})
            case ev.CloseEpoch(host, epoch):
                await self.records.delete_below(f"evacuations/{epoch}")
                await self.records.delete_below(host_path(host))
        await self.event(getattr(action, "host", ""), action.event)

    async def _evacuate(self, action: ev.Evacuate) -> None:
        path = progress_path(action.epoch, action.instance_id)
        claimed = ev.Progress(action.epoch, action.instance_id, action.host, "claimed")
        if not action.retry and not await self.records.create(path, _progress_value(claimed, self.clock())):
            return  # recorded already: never a second evacuation in this epoch
        try:
            await self.nova.call("evacuate", instance_id=action.instance_id)
        except NovaError as err:
            failed = ev.Progress(action.epoch, action.instance_id, action.host, "failed", str(err))
            await self.records.put(path, _progress_value(failed, self.clock()))
            await self.event(action.host, f"{action.event}: Nova refused: {err}")
            return
        requested = ev.Progress(action.epoch, action.instance_id, action.host, "requested")
        await self.records.put(path, _progress_value(requested, self.clock()))
        await self.event(action.host, action.event)

    async def run(self, wake: asyncio.Event, say: Callable[[str], None]) -> None:
        while True:
            wake.clear()
            try:
                await self.step()
            except Exception as exc:  # etcd or Nova unavailable for a moment: the next pass retries
                say(f"instance-ha: pass failed: {type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(wake.wait(), self.interval)
            except TimeoutError:
                pass


# -- the worker in the OpenStack venv -------------------------------------------------------
class NovaWorker:
    """nova_ha.py as a child process, spoken to in JSON lines; calls may overlap."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, python: str, env: dict[str, str], log: Any) -> NovaWorker:
        process = await asyncio.create_subprocess_exec(
            python, "-m", "stackfleet.openstack.nova_ha", env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=log)
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            reply = json.loads(line)
            future = self._waiting.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(NovaError("the Nova worker exited"))

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        if self._reader.done():
            raise NovaError("the Nova worker exited")
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self.process.stdin.write((json.dumps({"id": self._next, "op": op, **args}) + "\n").encode())
        await self.process.stdin.drain()
        reply = await future
        if "error" in reply:
            raise NovaError(reply["error"])
        result: dict[str, Any] = reply["ok"]
        return result

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


# -- the role -------------------------------------------------------------------------------
async def serve(run: RoleRun) -> None:
    # Imported here: the CLI's offline commands load the role table without the etcd client.
    from stackfleet.openstack.admin import admin_environment
    from stackfleet.openstack.etcdlink import EtcdClusterLink
    from stackfleet.registry.progress import ProgressRecords
    from stackfleet.registry.records import MachineRecord
    from stackfleet.registry.store import Registry

    link = run.ctx.link
    if not isinstance(link, EtcdClusterLink) or not isinstance(link.registry, Registry):
        raise RuntimeError("instance-ha needs the cluster's etcd: it watches the machines' membership")
    registry = link.registry
    say = run.ctx.say
    machines: dict[str, MachineRecord] = {}
    known = asyncio.Event()
    wake = asyncio.Event()

    async def watch() -> None:
        async for changes in registry.watch_machines():
            changes.merge_into(machines)
            known.set()
            wake.set()

    def members() -> frozenset[str]:
        return frozenset(m.name for m in machines.values())

    async def event(host: str, text: str) -> None:
        say(f"instance-ha: {text}")
        machine = next((i for i, m in machines.items() if m.name == host), "")
        await registry.log_event(EVENT_KIND, UNIT, machine, text)

    async def enabled() -> bool:
        return settings_mod.switched_on(await link.settings(), "instance_ha")

    watcher = asyncio.create_task(watch())
    worker: NovaWorker | None = None
    passes: asyncio.Task[None] | None = None
    run.log("nova-ha").parent.mkdir(parents=True, exist_ok=True)
    try:
        await known.wait()
        say("instance-ha: waiting for the controller's address")
        async for address in link.controller_address_changes():  # new credentials on each move
            if passes is not None:
                passes.cancel()
                await asyncio.gather(passes, return_exceptions=True)
            if worker is not None:
                await worker.close()
            await run.settings()  # first-use defaults, instance_ha among them
            env = {**(await admin_environment(link, address)), **run.helper_env()}
            with open(run.log("nova-ha"), "ab") as log:  # the child keeps its own copy of the file
                worker = await NovaWorker.start(run.bin("python"), env, log)
            say(f"instance-ha: watching compute machines; Nova at {address}")
            evacuator = Evacuator(ProgressRecords(registry), worker, event, members, enabled)
            passes = asyncio.create_task(evacuator.run(wake, say))
    finally:
        for task in (watcher, passes):
            if task is not None:
                task.cancel()
        if worker is not None:
            await worker.close()
