#!/usr/bin/env python3
"""What the lab costs at rest: CPU and memory per component, and etcd's request rates.

It brings the lab up (with --cloud also controller.service, network.service and
compute.service, until the cloud reports ready), lets it settle, then reads /proc and each etcd
member's /metrics at the start and the end of a window and prints, per component (agents,
engines, shims, the lab supervisor, etcd, each OpenStack service), CPU in per cent of one core
and RSS, and per member the rates of etcd's requests. Processes are told apart by the lab's own
records (the supervisor's PIDs) and their command lines; only those in a lab machine's network
namespace (and the supervisor) count. It destroys the lab at the end unless --keep or --reuse.

With --leader-kills N it then kills the etcd leader's process N times (SIGKILL, by PID), and
times until another member reports itself leader and until a write succeeds; --raft-timers
brings the lab up with other raft timers for that comparison.

    .venv/bin/python bench/idle.py                        # the lab alone, 30 s (needs root)
    .venv/bin/python bench/idle.py --cloud                # with the OpenStack roles running
    .venv/bin/python bench/idle.py --reuse --seconds 60   # whatever lab is up now; leaves it up
    .venv/bin/python bench/idle.py --raft-timers 100,1000 --leader-kills 5 --json
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
from aetcd import rpc

from stackfleet.lab import client, nsprocs, ops, processes
from stackfleet.lab.state import LabInfo, default_root, load_lab
from stackfleet.lab.usage import (
    ProcSample,
    busy_ticks,
    gauge,
    parse_metrics,
    raft_timers,
    rate_by,
    total,
    usage_by_component,
    with_raft_timers,
)
from stackfleet.registry.tls import channel_credentials
from stackfleet.runtime import procfs
from stackfleet.runtime.procfs import send

HZ = os.sysconf("SC_CLK_TCK")
# No proxy: a proxy from the environment would carry lab traffic off the host.
PROBE_KEY = b"/stackfleet-bench/leader-failover"
FAILOVER_TIMEOUT = 30.0
PROBE_INTERVAL = 0.02


# -- reading -------------------------------------------------------------------------------------


def read_sample(pid: int, machines: dict[nsprocs.NsId, str]) -> ProcSample | None:
    proc = nsprocs.PROC / str(pid)
    try:
        st = os.stat(proc / "ns" / "net")
        stat = procfs.parse_stat(pid, (proc / "stat").read_text())
        argv = tuple(a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a)
    except (OSError, IndexError, ValueError):
        return None  # gone meanwhile, or a zombie
    return ProcSample(pid, stat.start_time, stat.cpu_ticks, stat.reaped_ticks, stat.rss_pages * nsprocs.PAGE_SIZE,
                      stat.comm, argv, machines.get((st.st_dev, st.st_ino)))


def lab_samples(lab: LabInfo, supervisor: int | None) -> list[ProcSample]:
    """Every live process in a lab machine's namespace, and the supervisor."""
    machines = {ns: m.name for m in lab.machines if (ns := nsprocs.netns_id(m.netns)) is not None}
    found = []
    for pid in nsprocs.all_pids():
        s = read_sample(pid, machines)
        if s is not None and (s.machine is not None or pid == supervisor) and nsprocs.is_alive(pid):
            found.append(s)
    return found


def supervisor_children(root: Path) -> list[dict[str, Any]]:
    return [c for c in client.request(root, {"op": "status"})["children"] if c["running"]]


def recorded_pids(root: Path) -> dict[int, str]:
    """The PIDs the lab knows by name: its supervisor and the daemons it started."""
    named = {int(c["pid"]): str(c["name"]) for c in supervisor_children(root)}
    supervisor = client.ping(root)
    return named | ({supervisor: "supervisor"} if supervisor else {})


def running_raft_timers(root: Path) -> tuple[int, int]:
    """The raft timers of the lab's etcd members, from the first one's command line."""
    pid = next(int(c["pid"]) for c in supervisor_children(root) if c["name"] == "etcd")
    argv = (nsprocs.PROC / str(pid) / "cmdline").read_bytes().decode().split("\0")
    return raft_timers(argv)


def metrics(lab: LabInfo) -> dict[str, dict[Any, float]]:
    """Each member's /metrics, over TLS with the lab's admin certificate."""
    tls = ops.admin_tls(lab)
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    # No proxy: a proxy from the environment would carry lab traffic off the host.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    result = {}
    for endpoint in lab.endpoints:
        with opener.open(f"{endpoint}/metrics", timeout=2.0) as response:
            result[endpoint] = parse_metrics(response.read().decode())
    return result


def machine_busy() -> int:
    return busy_ticks(Path("/proc/stat").read_text())


# -- the window ----------------------------------------------------------------------------------


def measure(root: Path, lab: LabInfo, seconds: float) -> dict[str, Any]:
    recorded = recorded_pids(root)
    supervisor = next((p for p, n in recorded.items() if n == "supervisor"), None)
    etcd_before, busy_before = metrics(lab), machine_busy()
    procs_before, started = lab_samples(lab, supervisor), time.monotonic()
    time.sleep(seconds)
    procs_after, etcd_after, busy_after = lab_samples(lab, supervisor), metrics(lab), machine_busy()
    window = time.monotonic() - started
    rows = usage_by_component(procs_before, procs_after, recorded, window, HZ)
    etcd_argv = next((s.argv for s in procs_after if recorded.get(s.pid) == "etcd"), ())
    return {
        "seconds": round(window, 2),
        "raft_timers_ms": list(raft_timers(etcd_argv)),
        "components": [asdict(r) | {"core": r.core} for r in rows],
        "totals": {t.name: asdict(t) for t in (
            total([r for r in rows if r.core], "cluster core"),
            total([r for r in rows if not r.core], "everything else in the lab"),
            total(rows, "all lab processes"),
        )},
        "machine_busy_percent": 100.0 * (busy_after - busy_before) / HZ / window,
        "etcd": {e: etcd_rates(etcd_before[e], etcd_after[e], window) for e in lab.endpoints},
    }


def etcd_rates(before: dict[Any, float], after: dict[Any, float], seconds: float) -> dict[str, Any]:
    def one(name: str) -> float:
        return rate_by(before, after, seconds, name).get((), 0.0)

    started = rate_by(before, after, seconds, "grpc_server_started_total", ("grpc_method", "grpc_type"))
    received = rate_by(before, after, seconds, "grpc_server_msg_received_total", ("grpc_method",))
    return {
        "leader": gauge(after, "etcd_server_is_leader") == 1.0,
        "proposals_committed_per_s": one("etcd_server_proposals_committed_total"),
        "proposals_applied_per_s": one("etcd_server_proposals_applied_total"),
        "lease_renewals_per_s": one("etcd_debugging_lease_renewed_total"),
        "wal_fsyncs_per_s": one("etcd_disk_wal_fsync_duration_seconds_count"),
        "peer_sent_bytes_per_s": one("etcd_network_peer_sent_bytes_total"),
        "peer_received_bytes_per_s": one("etcd_network_peer_received_bytes_total"),
        "client_received_bytes_per_s": one("etcd_network_client_grpc_received_bytes_total"),
        "client_sent_bytes_per_s": one("etcd_network_client_grpc_sent_bytes_total"),
        "grpc_started_per_s": {f"{m} ({t})": r for (m, t), r in sorted(started.items()) if r},
        "grpc_messages_received_per_s": {m: r for (m,), r in sorted(received.items()) if r},
    }


# -- the etcd leader's failover -------------------------------------------------------------------


class Members:
    """A gRPC channel to each member, with the lab's admin certificate: thread-safe, blocking
    calls for the probe threads (etcd's JSON gateway cannot act for a client certificate)."""

    def __init__(self, lab: LabInfo) -> None:
        credentials = channel_credentials(ops.admin_tls(lab))
        self.channels = {e: grpc.secure_channel(e.removeprefix("https://"), credentials) for e in lab.endpoints}

    def status(self, endpoint: str, timeout: float) -> tuple[int, int] | None:
        """(this member's id, the leader it knows; 0 for none), or None if it does not answer."""
        try:
            status = rpc.MaintenanceStub(self.channels[endpoint]).Status(rpc.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
        return int(status.header.member_id), int(status.leader)

    def elected(self, endpoint: str, old_leader: int) -> float | None:
        """When this member, asked now, names a leader other than the old one."""
        status = self.status(endpoint, timeout=0.5)
        return time.monotonic() if status and status[1] not in (0, old_leader) else None

    def written(self, endpoint: str) -> float | None:
        """When a write through this member, started now, is committed."""
        try:
            rpc.KVStub(self.channels[endpoint]).Put(rpc.PutRequest(key=PROBE_KEY, value=str(time.time()).encode()),
                                                     timeout=2.0)
        except grpc.RpcError:
            return None
        return time.monotonic()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


def kill_leader(root: Path, lab: LabInfo) -> dict[str, Any]:
    """SIGKILLs the leader's etcd; seconds until a survivor names a new leader and a write succeeds.

    Probes start every PROBE_INTERVAL on their own threads: a write sent while no leader is
    known may hang until its timeout, and must not hold back the probes after it.
    """
    members = Members(lab)
    statuses = {e: members.status(e, timeout=2.0) for e in lab.endpoints}
    leader_id = next(s[1] for s in statuses.values() if s and s[1])
    leader = next(e for e, s in statuses.items() if s and s[0] == leader_id)
    machine = next(m for m in lab.machines if f"//{m.mgmt_ip}:" in leader)
    pid = next(int(c["pid"]) for c in supervisor_children(root) if c["machine"] == machine.name and c["name"] == "etcd")
    survivors = [e for e in lab.endpoints if e != leader]
    probes: dict[str, list[Future[float | None]]] = {"new_leader_s": [], "write_ok_s": []}
    with ThreadPoolExecutor(max_workers=256) as pool:
        killed_at = time.monotonic()
        send([pid], signal.SIGKILL)
        while time.monotonic() - killed_at < FAILOVER_TIMEOUT and not all(
                any(f.done() and f.result() for f in fs) for fs in probes.values()):
            for e in survivors:
                probes["new_leader_s"].append(pool.submit(members.elected, e, leader_id))
                probes["write_ok_s"].append(pool.submit(members.written, e))
            time.sleep(PROBE_INTERVAL)
        times = {k: min((t for f in fs if (t := f.result()) is not None), default=None) for k, fs in probes.items()}
    members.close()
    ops.up_machine(root, machine.name)  # its etcd rejoins on its data; agent and engine run on
    if ops.wait_etcd(lab.endpoints, ops.admin_tls(lab)):
        raise SystemExit(f"idle: etcd on {machine.name} did not come back")
    return {"killed": machine.name} | {k: None if t is None else t - killed_at for k, t in times.items()}


# -- bringing the lab up and down -----------------------------------------------------------------


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """fd 1 onto fd 2, for this process and the commands it runs: stdout is for --json."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def start_cloud(lab: LabInfo) -> None:
    """The roles as the main job starts them, until every one is active and the APIs answer."""
    from stackfleet.demo import READY_TIMEOUT, REPO, ROLE_UNITS, sh
    from stackfleet.failover import wait_active
    from stackfleet.openstack.admin import wait_controller_ready
    from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file
    from stackfleet.registry.store import Registry

    async def run() -> None:
        registry = Registry.open(lab.endpoints, tls=ops.admin_tls(lab))
        try:
            sh("start", "--no-block", *(str(REPO / "units" / r) for r in ROLE_UNITS))
            link = EtcdClusterLink(registry, key_file(Path(lab.shared_dir)))
            await wait_controller_ready(link, READY_TIMEOUT, progress=lambda s: print(f"  controller {s}", flush=True))
            for role in ROLE_UNITS:
                await wait_active(registry, role, READY_TIMEOUT)
        finally:
            await registry.close()

    asyncio.run(run())


def timers(text: str) -> tuple[int, int]:
    heartbeat, _, election = text.partition(",")
    return int(heartbeat), int(election)


# -- printing ------------------------------------------------------------------------------------


def mib(n: int) -> str:
    return f"{n / 2**20:8.1f}"


def print_report(result: dict[str, Any]) -> None:
    hb, et = result["raft_timers_ms"]
    print(f"\nidle for {result['seconds']:.1f} s; etcd raft timers {hb} ms / {et} ms")
    print(f"{'component':<32} {'procs':>5} {'CPU %':>7} {'RSS MiB':>8}")
    for row in result["components"]:
        print(f"{row['name']:<32} {row['processes']:>5} {row['cpu_percent']:>7.2f} {mib(row['rss'])}")
    print("-" * 55)
    for t in result["totals"].values():
        print(f"{t['name']:<32} {t['processes']:>5} {t['cpu_percent']:>7.2f} {mib(t['rss'])}")
    print(f"{'the whole machine, everyone':<32} {'':>5} {result['machine_busy_percent']:>7.2f}")
    print("\netcd, per second over the same window")
    for endpoint, r in result["etcd"].items():
        print(f"  {endpoint}{' (leader)' if r['leader'] else ''}")
        for key, value in r.items():
            if isinstance(value, dict):
                for name, rate in value.items():
                    print(f"    {key[:-len('_per_s')]:<30} {name:<34} {rate:9.2f}")
            elif key != "leader":
                print(f"    {key[:-len('_per_s')]:<65} {value:9.2f}")
    kills = result.get("leader_failover") or []
    if kills:
        print("\netcd leader SIGKILLed: seconds until")
        print(f"  {'member':<16} {'new leader':>10} {'write ok':>10}")
        for k in kills:
            leader, write = k["new_leader_s"] or float("nan"), k["write_ok_s"] or float("nan")
            print(f"  {k['killed']:<16} {leader:>10.3f} {write:>10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window (default 30)")
    parser.add_argument("--settle", type=float, default=None, metavar="S",
                        help="wait after bringing things up (default 20, with --cloud 60; 0 with --reuse)")
    parser.add_argument("--cloud", action="store_true", help="also start the OpenStack roles (minutes)")
    parser.add_argument("--reuse", action="store_true", help="measure the lab that is up; leave it up")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--raft-timers", type=timers, metavar="HEARTBEAT,ELECTION",
                        help="bring the lab up with these etcd raft timers in ms (e.g. 100,1000)")
    parser.add_argument("--leader-kills", type=int, default=0, metavar="N",
                        help="after the window, kill the etcd leader N times and time the failover")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    root = default_root()
    if args.reuse and args.raft_timers:
        parser.error("--raft-timers applies to a new lab, not with --reuse")
    if not args.reuse and load_lab(root) is not None:
        parser.error(f"a lab is already up at {root}: pass --reuse to measure it, or destroy it first")
    log = sys.stderr if args.json else sys.stdout
    try:
        if args.raft_timers:
            # Measurement only: the lab's own default stays what processes.py says.
            processes.ETCD_TUNING = with_raft_timers(processes.ETCD_TUNING, *args.raft_timers)
        if not args.reuse:
            ops.up(root, say=lambda line: print(line, file=log, flush=True))
        lab = load_lab(root)
        if lab is None:
            raise SystemExit(f"idle: no lab is up at {root}")
        # A member restarted after a kill must run with the same timers as the others.
        processes.ETCD_TUNING = with_raft_timers(processes.ETCD_TUNING, *running_raft_timers(root))
        if args.cloud:
            with stdout_to_stderr():
                start_cloud(lab)
        settle = args.settle if args.settle is not None else 0 if args.reuse else 60 if args.cloud else 20
        print(f"settling for {settle:.0f} s, then measuring for {args.seconds:.0f} s", file=log, flush=True)
        time.sleep(settle)
        result = measure(root, lab, args.seconds)
        result["leader_failover"] = []
        for _ in range(args.leader_kills):
            result["leader_failover"].append(kill_leader(root, lab))
            print(f"  leader failover: {result['leader_failover'][-1]}", file=log, flush=True)
            time.sleep(5)  # the rejoined member catches up before the next kill
    finally:
        if not (args.keep or args.reuse):
            ops.destroy(root, say=lambda line: print(line, file=log, flush=True))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
