"""The controller's "caretaker" service: maps newly registered compute hosts into cell1. It runs
inside the OpenStack venv on the controller.

    python -m stackfleet.openstack.cell_hosts SITE_JSON

Nova's periodic host discovery (discover_hosts_in_cells_interval) did not fire reliably here, and a
compute host that is not mapped takes no servers (docs/openstack-notes.md). This watches the compute
services through the API and runs `nova-manage cell_v2 discover_hosts` whenever one appears that
was not seen before.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from stackfleet.openstack.bootstrap import admin_connection, conf, say
from stackfleet.openstack.configs import site_from_dict

POLL_SECONDS = 2.0


def new_hosts(services: list[tuple[str, str]], seen: set[str]) -> set[str]:
    """Hosts of nova-compute services not seen yet (pure)."""
    return {host for binary, host in services if binary == "nova-compute"} - seen


def main(argv: list[str]) -> int:
    site = site_from_dict(json.loads(Path(argv[0]).read_text()))
    conn = admin_connection(site)
    seen: set[str] = set()
    while True:
        try:
            services = [(s.binary, s.host) for s in conn.compute.services()]
        except Exception as exc:  # the API may be restarting; try again next round
            say(f"listing compute services failed: {exc}")
            time.sleep(POLL_SECONDS)
            continue
        fresh = new_hosts(services, seen)
        if fresh:
            proc = subprocess.run(
                [str(site.venv / "bin" / "nova-manage"), "--config-file",
                 conf(site, "nova", "nova.conf"), "cell_v2", "discover_hosts", "--verbose"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            say(f"discover_hosts for {', '.join(sorted(fresh))}: exit {proc.returncode}\n"
                f"{proc.stdout.strip()}")
            if proc.returncode == 0:
                seen |= fresh
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
