"""The L3_HA cloud of the OpenStack lab modules, started from the unit files and seeded once per
session (conftest.py's `l3ha_cloud`): test_openstack_lab.py tells the data-plane and controller
story on it, test_openstack_lab_compute_ha.py then the compute machines' failures. A cloud's cold
start costs minutes; test_openstack_lab_dvr.py resets the data for its own afterwards."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from stackfleet.lab import ops
from stackfleet.openstack.admin import admin_environment, wait_controller_ready, workflow
from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file
from stackfleet.openstack.venv import default_venv
from stackfleet.registry.store import Registry

from .faults import REPO, cli

# The roles, and the evacuator (instance-ha.service) that moves a dead compute machine's guests.
UNITS = [str(REPO / "units" / n)
         for n in ("controller.service", "network.service", "compute.service", "instance-ha.service")]
READY_TIMEOUT = 420.0


def openstack_venv_missing() -> bool:
    return not (default_venv() / "bin" / "nova-compute").exists()


def on_link(lab, body):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        registry = Registry.open(lab.endpoints, tls=ops.admin_tls(lab))
        try:
            return await body(EtcdClusterLink(registry, key_file(Path(lab.shared_dir))))
        finally:
            await registry.close()

    return asyncio.run(main())


def start_and_seed(lab_session, record_name: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The units started on the lab and the sample workflow seeded: what the tests share."""
    lab = lab_session.ensure_up()
    started = time.monotonic()
    result = cli(lab, "start", "--block-attempts", "120", *UNITS, timeout=300)
    assert result.returncode == 0, result.stderr
    address = on_link(lab, lambda link: wait_controller_ready(link, READY_TIMEOUT))
    env = on_link(lab, lambda link: admin_environment(link, address))
    record = Path(lab.shared_dir) / record_name
    seeded = workflow("seed", record, env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    return {"lab": lab, "session": lab_session, "record": record, "env": env,
            "cold_start": time.monotonic() - started}


def stop(lab) -> None:  # type: ignore[no-untyped-def]
    cli(lab, "destroy", *(Path(u).name for u in UNITS))
