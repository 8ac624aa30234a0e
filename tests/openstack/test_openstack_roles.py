"""The roles with real services, stand-alone on 127.0.0.1.

One cloud per module, in order: cold start and the README's workflow; the dashboard in chromium
lists its server; a dead service restarted; SIGKILL of the whole control plane and a restart on
the same data with nothing lost, then at another address with compute following, and the
dashboard there; a forced second bootstrap that changes nothing; SIGTERM
that leaves no process behind; the HA_MODE guard; and a DVR cloud whose routers are distributed,
with SNAT on the network machine.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import pytest

from stackfleet.openstack.probes import http_answers, http_status
from stackfleet.openstack.services import port
from stackfleet.openstack.venv import default_venv

from .conftest import ADDRESS, descendants
from .test_dashboard import the_dashboard_lists_the_server

pytestmark = pytest.mark.openstack

# Passwords that break every format written unescaped: shell ($(...), quotes), URL (@ / # : ? %),
# oslo.config ($ interpolation, quotes around the value) and YAML.
HOSTILE = {
    "nova_db_password": "'p@ss:w/rd#?%41$(touch /tmp/sf-pwned)${x};`id` \"q\\'",
    "nova_password": '"n0va $HOME #not-a-comment: *x &y !z"',
    "neutron_db_password": "x%2Fy@h:1/db?q=1#frag$$ $",
    "rabbit_password": "r@bbit#:?%$(x) \"q\\ ünï",  # no "/": see settings.FORBIDDEN
}


def test_cold_start_then_the_sample_workflow_boots_a_server(cloud):
    for key, value in HOSTILE.items():
        assert cloud.cli("config", "set", key, value).returncode == 0
    started = time.monotonic()
    cloud.start("controller", "ctl1")
    cloud.measured["cold start to healthy, s"] = cloud.wait_ready()
    cloud.start("compute", "cmp1")
    out = cloud.workflow("seed", cloud.root / "record.json")
    cloud.measured["cold start to a seeded cloud with a server, s"] = time.monotonic() - started
    record = json.loads((cloud.root / "record.json").read_text())
    assert record["server_host"] == "cmp1"
    assert record["router_mode"] == "ha"  # HA_MODE defaults to L3_HA
    assert "seeded in" in out
    cloud.measured["controller PSS, MiB"] = cloud.pss_mib("controller")
    cloud.measured["compute PSS, MiB"] = cloud.pss_mib("compute")
    # No default password anywhere: the admin's comes from the generated settings.
    settings = json.loads((cloud.cluster / "settings.json").read_text())
    assert settings["admin_password"] != "adminpass" and len(settings["admin_password"]) >= 24
    assert {key: settings[key] for key in HOSTILE} == HOSTILE
    assert not os.path.exists("/tmp/sf-pwned")
    assert oct((cloud.cluster / "settings.json").stat().st_mode & 0o777) == "0o600"


def test_the_dashboard_lists_the_seeded_server(cloud, browser):
    # Ready included the dashboard: its login page answered 200 before the controller said so.
    assert cloud.published()["ready"]["horizon"] is True
    assert asyncio.run(http_status(ADDRESS, port("horizon"), "/auth/login/")) == 200
    the_dashboard_lists_the_server(cloud, browser, ADDRESS, "roles-1-at-127.0.0.1")


def _api_pid(cloud, module: str) -> int:
    """The uWSGI process serving a WSGI module."""
    for pid in descendants(cloud.procs["controller"].pid):
        try:
            if f"{module}:application" in open(f"/proc/{pid}/cmdline").read().split("\0"):
                return pid
        except OSError:
            continue
    raise AssertionError(f"no process serves {module}")


def test_a_killed_service_is_restarted(cloud):
    old = _api_pid(cloud, "glance.wsgi.api")
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "glance exited" in cloud.output("controller") and \
                asyncio.run(http_answers(ADDRESS, port("glance"))):
            break
        time.sleep(0.5)
    assert "glance exited" in cloud.output("controller")
    assert _api_pid(cloud, "glance.wsgi.api") != old
    assert asyncio.run(http_answers(ADDRESS, port("glance")))


def test_sigkill_of_the_control_plane_then_restart_loses_nothing(cloud):
    killed = cloud.kill_role("controller")
    assert killed > 20
    (cloud.cluster / "controller.json").unlink()  # what the etcd lease does in the cluster
    started = time.monotonic()
    cloud.start("controller", "ctl1")
    cloud.measured["restart on existing data to healthy, s"] = cloud.wait_ready()
    assert "skipping the schema syncs" in (
        cloud.root / "state" / "controller" / "log" / "bootstrap.log").read_text()
    out = cloud.workflow("verify", cloud.root / "record.json")
    assert "everything intact" in out
    cloud.workflow("boot-check", cloud.root / "record.json")
    cloud.measured["restart to the first new server ACTIVE, s"] = time.monotonic() - started


def test_the_controller_moves_to_another_address_and_compute_follows(cloud):
    """A failover in miniature: same data, new address (127.0.0.2 is loopback too)."""
    cloud.kill_role("controller")
    (cloud.cluster / "controller.json").unlink()
    started = time.monotonic()
    cloud.start("controller", "ctl2", address="127.0.0.2")
    cloud.measured["restart at a new address to healthy, s"] = cloud.wait_ready()
    assert cloud.published()["address"] == "127.0.0.2"
    log = (cloud.root / "state" / "controller" / "log" / "bootstrap.log").read_text()
    assert "re-pointing the public endpoint http://127.0.0.1:8774/v2.1 to " \
           "http://127.0.0.2:8774/v2.1" in log
    assert "everything intact" in cloud.workflow("verify", cloud.root / "record.json")
    cloud.workflow("boot-check", cloud.root / "record.json")
    cloud.measured["new address to the first new server ACTIVE, s"] = time.monotonic() - started
    assert "controller moved to 127.0.0.2; restarting nova-compute" in cloud.output("compute")


def test_the_dashboard_at_the_new_address_lists_the_same_server(cloud, browser):
    """The browser, still open from before the move, logs in again at the new address. (This
    one-host cloud runs with `vip none`; the lab's test_openstack_lab.py reloads the same URL, the
    VIP, after a controller halt.)"""
    assert cloud.published()["ready"]["horizon"] is True
    the_dashboard_lists_the_server(cloud, browser, "127.0.0.2", "roles-2-at-127.0.0.2")



def test_a_second_full_bootstrap_changes_nothing(cloud):
    site_json = cloud.root / "state" / "controller" / "run" / "site.json"
    result = subprocess.run(
        [str(default_venv() / "bin" / "python"), "-m", "stackfleet.openstack.bootstrap",
         str(site_json), "databases", "keystone", "syncs", "cells", "catalog", "flavors"],
        env={**cloud.env, "STACKFLEET_FORCE_SYNC": "1"}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "db_sync: exit 0" in result.stdout and "upgrade heads: exit 0" in result.stdout
    for created in ("creating", "removing duplicate", "re-pointing", "create_cell", "templating"):
        assert created not in result.stdout
    assert "everything intact" in cloud.workflow("verify", cloud.root / "record.json")


def test_sigterm_stops_every_child(cloud):
    started = time.monotonic()
    code, survivors = cloud.stop_role("compute")
    assert code == 0 and survivors == []
    code, survivors = cloud.stop_role("controller")
    cloud.measured["SIGTERM to stopped (controller), s"] = time.monotonic() - started
    assert code == 0
    assert survivors == []
    assert "stopped epmd" in cloud.output("controller")
    out = cloud.output("controller")
    assert out.index("stopped rabbitmq") < out.index("stopped epmd")


def test_a_changed_ha_mode_is_refused_until_data_reset(cloud):
    assert cloud.cli("config", "set", "HA_MODE", "dvr2").returncode == 1  # bad input (README: exit 1, nothing changed)
    assert cloud.cli("config", "set", "HA_MODE", "DVR").returncode == 0
    proc = cloud.start("controller", "ctl1")
    assert proc.wait(60) == 3
    cloud.procs.pop("controller")
    out = cloud.output("controller")
    assert "ha_mode is L3_HA in the data but DVR in the settings" in out
    assert "stackfleet data reset" in out
    mysql = cloud.shared / "mysql"
    assert mysql.is_dir()
    refused = cloud.cli("data", "reset", "--shared-dir", str(cloud.shared))
    assert refused.returncode == 1 and "Nothing was deleted" in refused.stderr
    assert mysql.is_dir() and any((cloud.shared / "glance" / "images").iterdir())
    done = cloud.cli("data", "reset", "--yes", "--shared-dir", str(cloud.shared))
    assert done.returncode == 0 and not mysql.exists()


def test_dvr_cloud_makes_distributed_routers_with_snat_on_the_network_machine(cloud):
    cloud.start("controller", "ctl1")
    cloud.wait_ready()
    cloud.start("compute", "cmp1")
    cloud.start("network", "net1")
    agents = cloud.wait_agents("net1")
    assert [a["agent_mode"] for a in agents if a["type"] == "L3 agent"] == ["dvr_snat"]
    cloud.workflow("seed", cloud.root / "record-dvr.json")
    record = json.loads((cloud.root / "record-dvr.json").read_text())
    assert record["router_mode"] == "distributed"
    report = json.loads(cloud.workflow("network-report", cloud.root / "record-dvr.json"))
    assert [h["host"] for h in report["router_hosts"]] == ["net1"]
    deadline = time.monotonic() + 60
    while f"snat-{record['router_id']}" not in cloud.role_namespaces("network"):
        assert time.monotonic() < deadline, cloud.role_namespaces("network")
        time.sleep(1)
    for role in ("network", "compute"):
        code, survivors = cloud.stop_role(role)
        assert code == 0 and survivors == []
    code, survivors = cloud.stop_role("controller")
    assert code == 0 and survivors == []
