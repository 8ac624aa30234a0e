"""The controller role: MariaDB, RabbitMQ, memcached and the OpenStack control plane.

RabbitMQ is recreated from the settings on every start, in the machine's local state dir, rather
than kept on the shared storage. OpenStack keeps nothing in it that outlives a process: oslo.messaging
declares its queues and exchanges anew on every (re)connect, and its messages are in flight only.
The one piece of state, the `openstack` user and its password, comes from the settings. A mnesia
directory is also bound to the node name and host that made it, and one left by a SIGKILLed node is
what makes RabbitMQ slow or stuck at boot; a fresh one starts in the same 9-17 s every time.

Start order: RabbitMQ first (the slowest to boot), MariaDB, memcached; schema syncs; Keystone; the
service users and catalog before nova-conductor and nova-scheduler, which exit on HTTP 401 otherwise.
The OpenStack services and their processes come from services.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from stackfleet.openstack import configs, services, shared_data, vip
from stackfleet.openstack.configs import Site
from stackfleet.openstack.probes import http_ready, tcp_open, wait_until
from stackfleet.openstack.role_context import RoleRun
from stackfleet.openstack.role_supervisor import ServiceSpec
from stackfleet.openstack.services import Command, Process, Service, Uwsgi, port
from stackfleet.openstack.settings import NO_VIP, Settings

BOOT_TIMEOUT = 300.0
CARETAKER = "caretaker"  # maps new compute hosts into cell1: see cell_hosts.py


def render(site: Site) -> dict[str, str]:
    files: dict[str, str] = {}
    for svc in services.SERVICES:
        files.update(configs.render_service(site, svc))
    return files | {
        "rabbitmq/rabbitmq.conf": configs.rabbitmq_conf(site),
        "rabbitmq/advanced.config": configs.rabbitmq_advanced_config(site),
        "rabbitmq/enabled_plugins": "[].\n",
        "rabbitmq/rabbitmq-env.conf": "",
    }


def uwsgi_spec(run: RoleRun, site: Site, svc: Service, proc: Process) -> ServiceSpec:
    served = proc.served
    assert isinstance(served, Uwsgi) and proc.port is not None
    argv = [run.bin("uwsgi"), "--home", str(site.venv), "--module", f"{served.module}:application",
            "--http-socket", f"{site.address}:{proc.port}",
            # uWSGI's http-socket closes a connection after one answer without saying so, and
            # keystoneauth's pooled sessions then send their next request on a dead connection
            # and fail. With this header the clients open a new connection for each request.
            "--add-header", "Connection: close",
            # One process, no master: the runner supervises it, and a master would double the
            # memory (its copy of the app diverges from the worker's as Python touches it).
            "--processes", "1", "--threads", "4", "--enable-threads",
            "--die-on-term", "--need-app", "--buffer-size", "65535",
            *(option.format(venv=site.venv) for option in served.options)]
    env = {served.config_dir_env: run.etc(svc.name)}
    env.update({name: value.format(venv=site.venv) for name, value in served.env})
    # SIGINT is uWSGI's immediate shutdown; the APIs hold no state of their own.
    return ServiceSpec(proc.name, argv, run.log(proc.name), env, stop_signal=signal.SIGINT,
                       stop_timeout=5)


def command_spec(run: RoleRun, svc: Service, proc: Process) -> ServiceSpec:
    served = proc.served
    assert isinstance(served, Command)
    args = [a for f in served.config_files for a in ("--config-file", run.etc(f"{svc.name}/{f}"))]
    return ServiceSpec(proc.name, [run.bin(proc.name), *args], run.log(proc.name))


def uwsgi_processes() -> list[tuple[Service, Process]]:
    return [(svc, p) for svc, p in services.processes() if isinstance(p.served, Uwsgi)]


def command_processes() -> list[tuple[Service, Process]]:
    return [(svc, p) for svc, p in services.processes() if isinstance(p.served, Command)]


def infra_specs(run: RoleRun, site: Site) -> list[ServiceSpec]:
    state = run.ctx.state_dir
    rabbit = state / "rabbitmq"
    rabbit_env = {
        "HOME": str(rabbit), "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": site.address, "RABBITMQ_NODE_PORT": str(port("rabbitmq")),
        "RABBITMQ_MNESIA_BASE": str(rabbit / "mnesia"), "RABBITMQ_LOG_BASE": str(rabbit / "log"),
        "RABBITMQ_LOGS": "-", "RABBITMQ_PID_FILE": str(rabbit / "rabbit.pid"),
        "RABBITMQ_CONFIG_FILE": run.etc("rabbitmq/rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": run.etc("rabbitmq/advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": run.etc("rabbitmq/enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": run.etc("rabbitmq/rabbitmq-env.conf"),
        "ERL_EPMD_PORT": str(port("epmd")),
        # Makes the script exec the Erlang VM: our child is beam.smp itself, and SIGTERM to it is
        # a clean stop in about a second (rabbitmqctl stop can hang for minutes).
        "RUNNING_UNDER_SYSTEMD": "1",
    }
    return [
        # epmd in the foreground as our own child; RabbitMQ finds it and starts no daemonized one.
        ServiceSpec("epmd", ["epmd", "-port", str(port("epmd"))], run.log("epmd"), stop_last=True),
        ServiceSpec("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], run.log("rabbitmq"),
                    rabbit_env, stop_last=True),
        ServiceSpec("mariadb", [
            "mariadbd", "--no-defaults", f"--datadir={site.shared.mysql}",
            f"--socket={state / 'run' / 'mysqld.sock'}", f"--port={port('mariadb')}",
            f"--bind-address={site.address}", "--user=root",
            f"--pid-file={state / 'run' / 'mysqld.pid'}", "--skip-name-resolve",
            "--max-connections=1000", "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4"], run.log("mariadb"), stop_last=True,
            stop_timeout=60),
        ServiceSpec("memcached", ["memcached", "-u", "root", "-l", site.address,
                                  "-p", str(port("memcached")), "-m", "64", "-U", "0"],
                    run.log("memcached"), stop_last=True),
    ]


async def init_mysql_datadir(run: RoleRun, datadir: Path) -> None:
    """Creates the datadir once. It is made beside the target and renamed, so a crash half-way
    leaves no datadir that looks complete."""
    if datadir.exists():
        return
    partial = datadir.with_name(datadir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # our own half-made directory, never user data
    run.ctx.say(f"creating the MariaDB datadir {datadir}")
    code = await run.sup.run_once("mariadb-install-db", [
        "mariadb-install-db", "--no-defaults", f"--datadir={partial}", "--user=root",
        "--auth-root-authentication-method=normal", "--skip-test-db"], run.log("mariadb-install-db"))
    if code != 0:
        raise RuntimeError(f"mariadb-install-db failed; see {run.log('mariadb-install-db')}")
    partial.rename(datadir)


def probes(site: Site) -> dict[str, Callable[[], Awaitable[bool]]]:
    """Readiness checks of the infrastructure's ports and the APIs, by name."""
    a = site.address
    checks: dict[str, Callable[[], Awaitable[bool]]] = {
        item.name: functools.partial(tcp_open, a, item.port)
        for item in services.INFRA if item.probed}
    for _, proc in services.apis():
        assert proc.port is not None and proc.probe_path is not None
        checks[proc.name] = functools.partial(http_ready, a, proc.port, proc.probe_path,
                                              proc.probe_status)
    return checks


async def readiness(run: RoleRun, site: Site) -> dict[str, bool]:
    checks = probes(site)
    results = await asyncio.gather(*(check() for check in checks.values()))
    ready = dict(zip(checks, results, strict=True))
    alive = [p.name for _, p in command_processes() if p.ready_when_alive] + [CARETAKER]
    for name in alive:
        entry = run.sup.running.get(name)
        ready[name] = entry is not None and entry.proc.returncode is None
    return ready


def controller_site(run: RoleRun, settings: Settings) -> Site:
    """This machine as the controller: at the VIP where one is set (else at its own address),
    and under the one host name by which Nova and Neutron know the controller, whichever
    machine runs it, so that a move leaves no services of the old machine behind."""
    address = run.ctx.address if settings.vip == NO_VIP else settings.vip
    return dataclasses.replace(run.site(settings, controller=address), address=address,
                               host=configs.CONTROLLER_HOST)


async def serve(run: RoleRun) -> None:
    settings = await run.settings()
    site = controller_site(run, settings)
    if settings.vip == NO_VIP:
        await serve_at(run, site)
        return
    claims = vip.claims_file(run.ctx.state_dir / "addresses")
    async with vip.claimed(settings.vip, run.ctx.address, claims, run.ctx.say):
        await serve_at(run, site)


async def serve_at(run: RoleRun, site: Site) -> None:
    say = run.ctx.say
    settings = site.settings
    # Present before the data is touched, so that `data reset` refuses from now on.
    await run.ctx.link.publish_controller(site.address, {}, run.ctx.host)
    shared_data.prepare(site.shared, shared_data.Marker(settings.ha_mode, settings.release))
    run.write_configs(render(site))
    site_json = str(run.write_site(site))
    state = run.ctx.state_dir
    for d in ("run", "glance/staging", "glance/tasks", "nova", "neutron"):
        (state / d).mkdir(parents=True, exist_ok=True)
    rabbit = state / "rabbitmq"
    shutil.rmtree(rabbit / "mnesia", ignore_errors=True)  # recreated by design, see above
    rabbit.mkdir(parents=True, exist_ok=True)

    await init_mysql_datadir(run, site.shared.mysql)
    for spec in infra_specs(run, site):
        run.sup.start(spec)
    checks = probes(site)
    await wait_until(checks["mariadb"], "mariadb", BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "databases", "keystone", log="bootstrap")
    apis = uwsgi_processes()
    for svc, proc in apis:
        if proc.name == "keystone":
            run.sup.start(uwsgi_spec(run, site, svc, proc))
    await run.helper("bootstrap", site_json, "syncs", "cells", "heartbeats", "ghosts",
                     log="bootstrap")
    # The APIs only need their schemas to start; they load while Keystone and RabbitMQ come up.
    for svc, proc in apis:
        if proc.name != "keystone":
            run.sup.start(uwsgi_spec(run, site, svc, proc))
    await wait_until(checks["keystone"], "keystone", BOOT_TIMEOUT, say)
    # The service users and the catalog before nova-conductor and nova-scheduler, which exit on
    # HTTP 401 without them.
    await run.helper("bootstrap", site_json, "catalog", log="bootstrap")
    await wait_until(checks["rabbitmq"], "rabbitmq", BOOT_TIMEOUT, say)
    for svc, proc in command_processes():
        run.sup.start(command_spec(run, svc, proc))
    await wait_until(checks["nova-api"], "nova-api", BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "flavors", log="bootstrap")
    run.sup.start(ServiceSpec(
        CARETAKER, [run.bin("python"), "-m", "stackfleet.openstack.cell_hosts", site_json],
        run.log(CARETAKER), run.helper_env()))
    for _, proc in apis:
        if proc.name not in ("keystone", "nova-api"):
            await wait_until(checks[proc.name], proc.name, BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "images", log="bootstrap")

    published: dict[str, bool] | None = None
    try:
        while True:
            ready = await readiness(run, site)
            if ready != published:
                await run.ctx.link.publish_controller(site.address, ready, run.ctx.host)
                down = [name for name, ok in ready.items() if not ok]
                say("controller ready: every service answers" if not down
                    else f"controller degraded: {', '.join(down)} not ready")
                published = ready
            await asyncio.sleep(2)
    finally:
        if published is not None:
            # Stopping: nobody should take this controller for a healthy one any more.
            await run.ctx.link.publish_controller(site.address, dict.fromkeys(published, False),
                                                  run.ctx.host)
