"""The lab's operations: up, halt, partition, heal, status, exec, destroy.

Each takes the lab root and a `say` callback for progress lines, and raises LabError with a
message meant for the user. The CLI in cli.py is a thin layer over these.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stackfleet.clusterpki import ClusterPKI, Roster
from stackfleet.lab import client, net, nsprocs
from stackfleet.lab.plan import (
    BRIDGES,
    DEFAULT_TTL,
    MACHINE_NAME,
    MAX_PER_ROLE,
    OUTSIDE,
    Counts,
    MachinePlan,
    PlanError,
    build_plan,
    etcd_client_urls,
    etcd_initial_cluster,
    overlapping_routes,
)
from stackfleet.lab.processes import (
    PROCESS_KINDS,
    MachineContext,
    ProcessSpec,
    etcd_data_dir,
    machine_processes,
)
from stackfleet.lab.report import MachineStatus, UnitUsage, machine_state
from stackfleet.lab.state import (
    LabInfo,
    MachineInfo,
    load_lab,
    machine_dir,
    machine_id_for,
    new_machine_id,
    pki_dir,
    read_lab,
    save_lab,
)
from stackfleet.lab.supervisor import LOG_NAME, PID_NAME, SOCKET_NAME, kill_machine, lab_group
from stackfleet.registry.tlsfiles import TLSFiles
from stackfleet.runtime import ProcessRuntime, cgroup

Say = Callable[[str], None]
ETCD_READY_TIMEOUT = 30.0
AGENTS_JOIN_TIMEOUT = 30.0
# Everything `up` puts in a root; destroy removes exactly these, so a mistaken --root
# pointing at a directory with other content loses nothing else. The shared data (the cloud's
# databases, images and instances) goes only with purge=True.
SHARED_ENTRY = "shared"
ROOT_ENTRIES = ("machines", SHARED_ENTRY, "pki", "lab.json", "lab.json.tmp", SOCKET_NAME, PID_NAME,
                LOG_NAME)


class LabError(RuntimeError):
    """A failure with a message for the user; the CLI prints it and exits 1."""


def quiet(_: str) -> None:
    pass


def require_root_user() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (it creates network namespaces and bridges): "
            "run it as root, e.g. sudo stackfleet lab ..."
        )


def require_lab(root: Path) -> LabInfo:
    lab = load_lab(root)
    if lab is None:
        raise LabError(f"no lab is up at {root}: start one with `stackfleet lab up`")
    return lab


def lab_plan(lab: LabInfo) -> dict[str, MachinePlan]:
    counts = Counts(
        controllers=lab.counts["controller"],
        network=lab.counts["network"],
        compute=lab.counts["compute"],
        nova_docker=lab.counts["nova-docker"],
    )
    return {m.name: m for m in build_plan(counts)}


def require_machine(lab: LabInfo, name: str) -> tuple[MachineInfo, MachinePlan]:
    info = lab.machine(name)
    if info is None:
        raise LabError(f"unknown machine {name!r}; the lab has: {', '.join(lab.machine_names())}")
    return info, lab_plan(lab)[name]


# -- building the lab ---------------------------------------------------------------------


def new_lab(root: Path, counts: Counts, ttl: int, kinds: tuple[str, ...]) -> LabInfo:
    try:
        plan = build_plan(counts)
    except PlanError as exc:
        raise LabError(str(exc)) from exc
    machines = [
        MachineInfo(
            name=m.name,
            role=m.role,
            machine_id=machine_id_for(machine_dir(root, m.name)),
            netns=m.netns,
            ips={link.network.key: str(link.address) for link in m.links},
            state_dir=str(machine_dir(root, m.name)),
        )
        for m in plan
    ]
    return LabInfo(
        root=str(root),
        cluster_token=f"stackfleet-lab-{new_machine_id()[:12]}",
        counts=counts.by_role(),
        ttl=ttl,
        processes=list(kinds),
        venv=sys.prefix,
        endpoints=etcd_client_urls(plan),
        shared_dir=str(root / "shared"),
        machines=machines,
    )


def check_subnets_free(ours: set[str]) -> None:
    conflicts = overlapping_routes(net.host_routes(), ours)
    if conflicts:
        lines = "; ".join(f"{subnet} is routed by {route}" for subnet, route in conflicts)
        raise LabError(
            f"the lab's subnets are already in use on this host: {lines}. "
            "Remove that route or interface first (or `stackfleet lab destroy` an old lab)."
        )


def context(lab: LabInfo, m: MachineInfo) -> MachineContext:
    return MachineContext(
        name=m.name,
        role=m.role,
        machine_id=m.machine_id,
        mgmt_ip=m.mgmt_ip,
        state_dir=Path(m.state_dir),
        shared_dir=Path(lab.shared_dir),
        endpoints=tuple(lab.endpoints),
        initial_cluster=etcd_initial_cluster(list(lab_plan(lab).values())),
        cluster_token=lab.cluster_token,
        ttl=lab.ttl,
        venv=Path(lab.venv),
        pki_dir=pki_dir(lab),
    )


def processes_for(lab: LabInfo, m: MachineInfo, only: tuple[str, ...] | None = None) -> list[ProcessSpec]:
    existing = (etcd_data_dir(Path(m.state_dir)) / "member").is_dir()
    kinds = tuple(k for k in lab.processes if only is None or k in only)
    return machine_processes(context(lab, m), kinds, etcd_existing=existing)


def is_tls(lab: LabInfo) -> bool:
    """Whether the lab's etcd is TLS: always, but for a lab described by a test as plaintext."""
    return all(e.startswith("https://") for e in lab.endpoints)


def admin_tls(lab: LabInfo) -> TLSFiles:
    return ClusterPKI(pki_dir(lab)).admin().tls()


def issue_certificates(lab: LabInfo) -> Roster:
    """The lab's CA and every certificate its processes use (kept when they exist)."""
    controllers = [m for m in lab.machines if m.role == "controller"]
    roster = Roster(
        members={m.name: [m.mgmt_ip] for m in controllers},
        machines={m.name: m.machine_id for m in lab.machines},
        engines=[m.name for m in controllers] if "engine" in lab.processes else [],
    )
    return ClusterPKI(pki_dir(lab)).issue(roster)


def enable_auth(lab: LabInfo) -> None:
    """etcd's users and roles for the lab's daemons (registry/access.py), then auth on."""
    import asyncio

    from stackfleet.registry.authsetup import apply_policy
    from stackfleet.registry.connection import EtcdConnection
    from stackfleet.registry.keys import KeySchema

    async def apply() -> None:
        conn = EtcdConnection(lab.endpoints, timeout=5.0, tls=admin_tls(lab))
        try:
            await apply_policy(conn, issue_certificates(lab).policy(KeySchema()))
        finally:
            await conn.close()

    asyncio.run(apply())


def start_machine(root: Path, lab: LabInfo, m: MachineInfo, say: Say, only: tuple[str, ...] | None = None) -> None:
    specs = processes_for(lab, m, only)
    reply = client.request(
        root,
        {"op": "start", "machine": m.name,
         "processes": [{"name": s.name, "argv": list(s.argv)} for s in specs]},
    )
    started = ", ".join(f"{n} (pid {p})" for n, p in reply["started"].items()) or "nothing new"
    say(f"{m.name:<15} {m.mgmt_ip:<15} started: {started}")


def etcd_healthy(endpoint: str, tls: TLSFiles) -> bool:
    # No proxy: a proxy from the environment would carry lab traffic off the host.
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(f"{endpoint}/health", timeout=1.0) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def wait_etcd(endpoints: list[str], tls: TLSFiles, timeout: float = ETCD_READY_TIMEOUT) -> list[str]:
    """Waits until every endpoint reports healthy; returns those that did not in time."""
    deadline = time.monotonic() + timeout
    pending = list(endpoints)
    while pending and time.monotonic() < deadline:
        pending = [e for e in pending if not etcd_healthy(e, tls)]
        if pending:
            time.sleep(0.1)
    return pending


def joined_machines(endpoints: list[str], tls: TLSFiles | None) -> set[str]:
    """The ids of the machines whose agents are registered (their presence lease is alive)."""
    from stackfleet.registry.gateway import GatewayReader
    from stackfleet.registry.grpcreader import GrpcReader
    from stackfleet.registry.keys import DEFAULT_PREFIX
    from stackfleet.registry.records import MachineRecord

    reader = GatewayReader(endpoints, DEFAULT_PREFIX) if tls is None else GrpcReader(endpoints, DEFAULT_PREFIX, tls=tls)
    try:
        (found,) = reader.ranges([reader.keys.machines()])
    finally:
        reader.close()
    return {MachineRecord.decode(raw).id for raw in found.values()}


def wait_agents(lab: LabInfo, timeout: float = AGENTS_JOIN_TIMEOUT) -> list[str]:
    """Waits until every machine's agent has joined; returns the names of those that did not."""
    from stackfleet.registry.endpoints import EtcdUnavailable

    deadline = time.monotonic() + timeout
    missing = [m.name for m in lab.machines]
    while missing and time.monotonic() < deadline:
        try:
            joined = joined_machines(lab.endpoints, admin_tls(lab) if is_tls(lab) else None)
        except EtcdUnavailable:
            joined = set()
        missing = [m.name for m in lab.machines if m.machine_id not in joined]
        if missing:
            time.sleep(0.1)
    return missing


def up(
    root: Path,
    counts: Counts | None = None,
    ttl: int | None = None,
    kinds: tuple[str, ...] | None = None,
    say: Say = quiet,
) -> LabInfo:
    """Creates the lab, or completes it; a lab already up is left as it is.

    `counts`, `ttl` and `kinds` default to the existing lab's, else to 3/2/2/2, 5 s and all
    processes. Asking an existing lab for a different shape is an error: destroy it first.
    """
    require_root_user()
    root = root.resolve()
    lab = read_lab(root)
    if lab is None:
        if any(net.link_exists(b) for b in BRIDGES):
            raise LabError(
                f"a lab bridge ({', '.join(BRIDGES)}) already exists but no lab is recorded at "
                f"{root}: another lab is up under another root; destroy it first"
            )
        check_subnets_free(ours=set())
        unknown = set(kinds or ()) - set(PROCESS_KINDS)
        if unknown:
            raise LabError(f"unknown process kinds {sorted(unknown)}; known: {PROCESS_KINDS}")
        root.mkdir(parents=True, exist_ok=True)
        lab = new_lab(root, counts or Counts(), ttl or DEFAULT_TTL, kinds or PROCESS_KINDS)
        Path(lab.shared_dir).mkdir(parents=True, exist_ok=True)
        save_lab(lab)  # first, so that destroy finds whatever a failed `up` left behind
        say(f"lab root {root}")
    else:
        wanted = (counts.by_role() if counts else lab.counts, ttl or lab.ttl,
                  list(kinds) if kinds else lab.processes)
        if wanted != (lab.counts, lab.ttl, lab.processes):
            raise LabError(
                f"a lab with another shape is already up at {root} ({lab.counts}, ttl "
                f"{lab.ttl}, processes {lab.processes}): `stackfleet lab destroy` it first"
            )
        check_subnets_free(ours=set(BRIDGES))
    issue_certificates(lab)
    net.create_bridges()
    plans = lab_plan(lab)
    for m in lab.machines:
        net.create_machine(plans[m.name])
    net.create_machine(OUTSIDE)
    net.disable_tx_checksum(OUTSIDE)
    client.ensure_running(root)
    if "etcd" in lab.processes:
        # etcd and its users and roles first: no daemon talks to etcd before auth is on.
        for m in lab.machines:
            if m.role == "controller":
                start_machine(root, lab, m, say, only=("etcd",))
        slow = wait_etcd(lab.endpoints, admin_tls(lab))
        if slow:
            raise LabError(
                f"etcd did not become healthy at {', '.join(slow)}; see "
                f"{root}/machines/<controller>/logs/etcd.log"
            )
        enable_auth(lab)
    for m in lab.machines:
        start_machine(root, lab, m, say)
    say(f"etcd endpoints: {','.join(lab.endpoints)}")
    if "agent" in lab.processes and "etcd" in lab.processes:
        # `lab up && stackfleet start ...` must find every machine in the cluster.
        late = wait_agents(lab)
        if late:
            raise LabError(
                f"the agents of {', '.join(late)} did not join within {AGENTS_JOIN_TIMEOUT:.0f} s; "
                f"see {root}/machines/<machine>/logs/agent.log"
            )
        say(f"{len(lab.machines)} machines joined")
    return lab


def up_machine(root: Path, name: str, say: Say = quiet) -> None:
    """Powers a halted machine back on (or heals a partitioned one): links up, processes
    started on the same state dir, so its etcd member rejoins with its data."""
    require_root_user()
    lab = require_lab(root)
    info, plan = require_machine(lab, name)
    net.create_machine(plan)
    client.ensure_running(root)
    start_machine(root, lab, info, say)


# -- faults ---------------------------------------------------------------------------------


def halt(root: Path, name: str, say: Say = quiet) -> list[int]:
    """Pulls the power: SIGKILL every process of the machine (its cgroup, where the host has
    cgroup v2, and everything in its namespace), then cables out; the addresses that its
    software added are lost as in a power cut. Returns the PIDs killed."""
    require_root_user()
    lab = require_lab(root)
    info, plan = require_machine(lab, name)
    try:
        killed = [int(p) for p in client.request(root, {"op": "halt", "machine": name})["killed"]]
    except client.SupervisorUnavailable:
        ns = nsprocs.netns_id(info.netns)
        killed = sorted(kill_machine(cgroup.detect(), name, ns)) if ns else []
    net.set_links(plan, up=False)
    net.forget_runtime_addresses(plan)
    say(f"{name} halted ({len(killed)} processes killed)")
    return killed


def partition(root: Path, name: str, say: Say = quiet) -> None:
    require_root_user()
    _, plan = require_machine(require_lab(root), name)
    net.set_links(plan, up=False)
    say(f"{name} partitioned: links down, processes left running")


def heal(root: Path, name: str, say: Say = quiet) -> None:
    require_root_user()
    _, plan = require_machine(require_lab(root), name)
    net.set_links(plan, up=True)
    say(f"{name} healed: links up")


def exec_in(root: Path, name: str, command: list[str]) -> int:
    """Runs `command` in the machine's namespace in the foreground; its exit code."""
    require_root_user()
    lab = require_lab(root)
    if name != OUTSIDE.name:
        require_machine(lab, name)
    if not command:
        raise LabError("nothing to run: stackfleet lab exec MACHINE -- COMMAND...")
    try:
        return subprocess.run(["ip", "netns", "exec", name, *command]).returncode
    except KeyboardInterrupt:
        return 130


# -- looking --------------------------------------------------------------------------------


def status(root: Path) -> list[MachineStatus]:
    require_root_user()
    lab = require_lab(root)
    plans = lab_plan(lab)
    rows: list[MachineStatus] = []
    for m in lab.machines:
        ns = nsprocs.netns_id(m.netns)
        pids = nsprocs.pids_in_netns(ns) if ns else []
        rows.append(
            MachineStatus(
                name=m.name,
                role=m.role,
                mgmt_ip=m.mgmt_ip,
                state=machine_state(ns is not None, ns is not None and net.links_up(plans[m.name]),
                                    len(pids)),
                processes=len(pids),
                rss=sum(nsprocs.rss_bytes(p) for p in pids),
            )
        )
    return rows


def unit_usage(root: Path) -> list[UnitUsage]:
    """Memory and CPU of every unit the machines' runtimes hold, read from each unit's cgroup
    in the machine's state dir on this host: no request to etcd or to the agents."""
    require_root_user()
    lab = require_lab(root)
    hierarchies = cgroup.detect()
    rows: list[UnitUsage] = []
    for m in lab.machines:
        runtime = ProcessRuntime(Path(m.state_dir) / "runtime", hostname=m.name,
                                 hierarchies=hierarchies)
        for name in runtime.units():
            usage = runtime.usage(name)
            status = runtime.status(name)
            if usage is None or (usage.memory_bytes is None and usage.cpu_usec is None):
                continue  # no cgroup (any more): a stopped unit
            rows.append(UnitUsage(name, m.name, status.active, usage.memory_bytes, usage.cpu_usec))
    return rows


# -- tearing down ---------------------------------------------------------------------------


def lab_machine_plans(lab: LabInfo | None) -> list[MachinePlan]:
    """The machines to tear down: the recorded ones, else any namespace named like one."""
    if lab is not None:
        return [*lab_plan(lab).values(), OUTSIDE]
    found = [n for n in net.netns_list() if MACHINE_NAME.match(n) or n == OUTSIDE.name]
    largest = Counts(MAX_PER_ROLE, MAX_PER_ROLE, MAX_PER_ROLE, MAX_PER_ROLE)
    return [m for m in [*build_plan(largest), OUTSIDE] if m.name in found]


def stop_supervisor(root: Path, say: Say) -> None:
    pid = client.ping(root)
    if pid is not None:
        try:
            client.request(root, {"op": "shutdown"}, timeout=30.0)
        except (client.SupervisorUnavailable, client.SupervisorError, OSError) as exc:
            say(f"supervisor shutdown failed ({exc}); stopping it by PID")
    pid = pid or client.recorded_pid(root)
    if pid is not None and nsprocs.wait_gone([pid], 5.0):
        nsprocs.terminate([pid])


def shared_dir_of(root: Path) -> Path:
    """Where a lab at `root` keeps its shared storage (LabInfo.shared_dir, also without one)."""
    return root.resolve() / SHARED_ENTRY


def remove_root(root: Path, say: Say, purge: bool) -> None:
    for entry in ROOT_ENTRIES:
        if entry == SHARED_ENTRY and not purge:
            continue
        path = root / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    try:
        root.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        if purge or not (root / SHARED_ENTRY).exists():
            say(f"left {root} in place: it holds files the lab did not create")


def remove_cgroups(say: Say) -> None:
    """Kill whatever is left in the lab's cgroups (a process that left every machine
    namespace), then remove them."""
    group = lab_group(cgroup.detect())
    if group is None or not group.path.is_dir():
        return
    leftovers = group.kill()
    if leftovers:
        say(f"killed {len(leftovers)} processes left in the lab's cgroups")
    group.remove()


def destroy(root: Path, say: Say = quiet, purge: bool = False) -> None:
    """Stops every lab process, the supervisor, and removes the links and the root, but for
    the shared data (ROOT/shared: the whole cloud), which only `purge` deletes.

    Works without a supervisor (crashed) and without lab.json (a half-built lab): it falls
    back to the namespaces and PIDs it finds.
    """
    require_root_user()
    root = root.resolve()
    lab = read_lab(root)
    machines = lab_machine_plans(lab)
    stop_supervisor(root, say)
    for m in machines:
        ns = nsprocs.netns_id(m.netns)
        leftovers = nsprocs.pids_in_netns(ns) if ns else []
        if leftovers:
            nsprocs.terminate(leftovers)
            say(f"{m.name}: stopped {len(leftovers)} leftover processes")
        net.delete_machine(m)
    remove_cgroups(say)
    net.delete_bridges()
    remove_root(root, say, purge)
    say(f"lab destroyed ({len(machines)} machines)")
    shared = shared_dir_of(root)
    if not purge and shared.exists():
        say(f"kept the shared data in {shared}; `stackfleet lab destroy --purge` deletes it")
