"""The original's story end to end on the lab: a real OpenStack cloud (Keystone, Glance,
Placement, Nova, Neutron on MariaDB and RabbitMQ) started from unit files, seeded through the
real APIs, then the controller's machine halted, and later cut off: every record and byte is
still there on another controller, and two MariaDB servers never ran on the shared data."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.failover import patiently
from stackfleet.lab import ops
from stackfleet.lab.state import LabInfo
from stackfleet.openstack.admin import admin_environment, wait_controller_ready, workflow
from stackfleet.openstack.controller_failover import ControllerFailover, fail_over_controller
from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file
from stackfleet.openstack.venv import default_venv
from stackfleet.registry.store import Registry

from .faults import REPO, cli

pytestmark = [pytest.mark.lab, pytest.mark.openstack]
UNITS = [str(REPO / "units" / n) for n in ("controller.service", "network.service", "compute.service")]
READY_TIMEOUT = 420.0
FAILOVER_TIMEOUT = 180.0

if not (default_venv() / "bin" / "nova-compute").exists():
    pytest.skip("needs the OpenStack venv (scripts/install-openstack)", allow_module_level=True)


def on_link(lab: LabInfo, body):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        registry = Registry.open(lab.endpoints, tls=ops.admin_tls(lab))
        try:
            return await body(EtcdClusterLink(registry, key_file(Path(lab.shared_dir))))
        finally:
            await registry.close()

    return asyncio.run(main())


class MariadbWatch(threading.Thread):
    """Polls /proc (one PID namespace for the whole lab) for mariadbd on the shared datadir."""

    def __init__(self, datadir: Path) -> None:
        super().__init__(daemon=True)
        self.needle = f"--datadir={datadir}".encode()
        self.most = 0
        self.seen: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            live = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    if self.needle in (entry / "cmdline").read_bytes() and \
                            (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        live.append(int(entry.name))
                except OSError:
                    continue
            self.seen.update(live)
            self.most = max(self.most, len(live))
            time.sleep(0.02)


@pytest.fixture(scope="module")
def cloud(lab_session) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    lab = lab_session.ensure_up()
    if "agent" not in lab.processes:
        pytest.skip("this lab runs no agents")
    started = time.monotonic()
    result = cli(lab, "start", "--block-attempts", "120", *UNITS, timeout=300)
    assert result.returncode == 0, result.stderr
    address = on_link(lab, lambda link: wait_controller_ready(link, READY_TIMEOUT))
    env = on_link(lab, lambda link: admin_environment(link, address))
    record = Path(lab.shared_dir) / "seed-record.json"
    seeded = workflow("seed", record, env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    yield {"lab": lab, "session": lab_session, "record": record, "cold_start": time.monotonic() - started}
    cli(lab, "destroy", "controller.service", "network.service", "compute.service")


def _fail_over(cloud: dict[str, object], fault: str) -> ControllerFailover:
    # Every machine back first (an earlier test halted one): etcd needs two of three members.
    lab: LabInfo = cloud["session"].ensure_up()  # type: ignore[attr-defined]
    on_link(lab, lambda link: _all_machines_present(link.registry, lab))
    watch = MariadbWatch(Path(lab.shared_dir) / "mysql")
    watch.start()
    faulted: list[str] = []

    def inject(machine: str) -> None:
        faulted.append(machine)
        getattr(ops, fault)(Path(lab.root), machine)

    try:
        moved = on_link(lab, lambda link: fail_over_controller(link.registry, link, inject, FAILOVER_TIMEOUT))
    finally:
        if fault == "partition" and faulted:
            ops.heal(Path(lab.root), faulted[0])
        watch.done.set()
        watch.join()
    assert watch.most == 1, f"{watch.most} MariaDB servers ran on the shared datadir at once"
    assert len(watch.seen) >= 2, "the new controller started its own MariaDB"
    assert moved.machine != moved.victim
    print(f"{fault}: " + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in moved.rows()))
    return moved


async def _all_machines_present(registry: Registry, lab: LabInfo) -> None:
    wanted = {m.machine_id for m in lab.machines}
    deadline = time.monotonic() + 60
    while not wanted <= set(await patiently(registry.machines, {})):
        assert time.monotonic() < deadline, "a machine did not rejoin"
        await asyncio.sleep(0.2)


def _everything_intact(cloud: dict[str, object], moved: ControllerFailover) -> None:
    lab: LabInfo = cloud["lab"]  # type: ignore[assignment]
    env = on_link(lab, lambda link: admin_environment(link, moved.address))
    verified = workflow("verify", cloud["record"], env)  # type: ignore[arg-type]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    booted = workflow("boot-check", cloud["record"], env)  # type: ignore[arg-type]
    assert booted.returncode == 0, "compute must serve the new controller: " + booted.stdout + booted.stderr


def test_controller_halt_loses_nothing(cloud: dict[str, object]) -> None:
    _everything_intact(cloud, _fail_over(cloud, "halt"))


def test_controller_partition_never_runs_two_databases(cloud: dict[str, object]) -> None:
    _everything_intact(cloud, _fail_over(cloud, "partition"))
