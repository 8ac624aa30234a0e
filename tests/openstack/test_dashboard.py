"""Horizon in a real browser: Debian's chromium, headless, driven by selenium.

This module's own test needs no cloud: Horizon's uWSGI process, as the controller starts it, at two
addresses with two secret keys, serves the pages and their compressed assets from the manifest that
the install built once. The steps with a cloud (log in as the admin, Project -> Compute -> Instances,
the sample workflow's server listed) run inside test_openstack_roles.py, on its cloud, before and
after the controller moves: see `the_dashboard_lists_the_server`.

The browser is conftest's `browser` (browser.py); screenshots go to $STACKFLEET_ARTIFACTS/dashboard
(default: artifacts/dashboard in the repo), and the run's summary prints where.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stackfleet.openstack import configs, controller, services
from stackfleet.openstack.link import FileClusterLink
from stackfleet.openstack.probes import http_status
from stackfleet.openstack.role_context import RoleContext, RoleRun
from stackfleet.openstack.role_supervisor import Supervisor
from stackfleet.openstack.settings import DEFAULTS, missing_defaults, parse
from stackfleet.openstack.venv import default_venv

from .browser import Browser
from .conftest import SUMMARY

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


def the_dashboard_lists_the_server(cloud, browser: Browser, address: str, step: str) -> None:
    """The admin logs in at http://ADDRESS/ and sees the sample workflow's server, active."""
    settings = json.loads((cloud.cluster / "settings.json").read_text())
    record = json.loads((cloud.root / "record.json").read_text())
    started = time.monotonic()
    row = browser.lists_the_server(f"http://{address}", settings["admin_user"], settings["admin_password"],
                                   record["server_id"], step)
    assert "demo01" in row, row
    cloud.measured[f"dashboard at {address}: log in to the server listed, s"] = \
        time.monotonic() - started


# The cloud-free test: Horizon at two addresses from one install-time manifest.

def _manifest(static: Path) -> Path:
    return static / "dashboard" / "manifest.json"


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _serve_horizon(tmp: Path, address: str) -> tuple[subprocess.Popen, subprocess.Popen]:
    """memcached and Horizon's uWSGI at ADDRESS, with the controller's argv and a fresh site."""
    ctx = RoleContext(address=address, shared_dir=tmp / "shared", state_dir=tmp / address,
                      link=FileClusterLink(tmp / "link"), venv=default_venv())
    run = RoleRun(ctx, Supervisor(lambda _: None))
    settings = parse({**DEFAULTS, **missing_defaults({})})  # a new secret key for each site
    site = run.site(settings, controller=address)
    svc, proc = services.process("horizon")
    run.write_configs(configs.render_service(site, svc))
    spec = controller.uwsgi_spec(run, site, svc, proc)
    memcached = next(s for s in controller.infra_specs(run, site) if s.name == "memcached")
    procs = []
    for argv, env, log in ((memcached.argv, {}, tmp / f"memcached-{address}.log"),
                           (spec.argv, spec.env, spec.log)):
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            procs.append(subprocess.Popen(list(argv), env={**os.environ, **env}, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    return procs[0], procs[1]


def test_horizon_serves_its_pages_from_the_install_manifest_at_any_address(tmp_path, browser):
    static = Path(services.HORIZON_STATIC.format(venv=default_venv()))
    assert (static / ".stackfleet-compressed").exists(), \
        f"no compressed static files in {static}: run scripts/install-openstack"
    manifest = hashlib.sha256(_manifest(static).read_bytes()).hexdigest()
    for n, address in enumerate(("127.0.0.41", "127.0.0.42")):
        started = time.monotonic()
        memcached, horizon = _serve_horizon(tmp_path, address)
        try:
            deadline = started + 180
            while asyncio.run(http_status(address, 80, "/auth/login/")) != 200:
                assert horizon.poll() is None, (tmp_path / address / "log/horizon.log").read_text()
                assert time.monotonic() < deadline, "the login page never answered 200"
                time.sleep(0.25)
            SUMMARY.append(f"MEASURED Horizon start to the first 200 at {address}: "
                           f"{time.monotonic() - started:.1f} s, RSS {_rss_mib(horizon.pid):.0f} MiB")
            status, page = _get(f"http://{address}/auth/login/")
            assert status == 200
            assets = re.findall(rb'(?:href|src)="(/static/dashboard/(?:css|js)/[^"]+)"', page)
            assert len(assets) >= 4, page[:3000]  # the compressed CSS and JS of the page
            for asset in assets:
                assert _get(f"http://{address}{asset.decode()}")[0] == 200, asset
            browser.driver.get(f"http://{address}/auth/login/")
            browser.wait_for("input[name=username]")
            # Styled: the compressed stylesheet colours the button (unstyled it is grey or clear).
            colour = browser.driver.execute_script(
                "return getComputedStyle(document.querySelector('#loginBtn')).backgroundColor")
            assert colour not in ("rgb(239, 239, 239)", "rgba(0, 0, 0, 0)"), colour
            browser.shot(f"standalone-{n + 1}-login-at-{address}")
        finally:
            _stop(horizon)
            _stop(memcached)
    # Nothing was compressed at start: the manifest is the install's.
    assert hashlib.sha256(_manifest(static).read_bytes()).hexdigest() == manifest
