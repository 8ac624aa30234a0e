"""The controller role: MariaDB, RabbitMQ, memcached and the OpenStack control plane.

RabbitMQ is recreated from the settings on every start, in the machine's local state dir, rather
than kept on the shared storage. OpenStack keeps nothing in it that outlives a process: oslo.messaging
declares its queues and exchanges anew on every (re)connect, and its messages are in flight only.
The one piece of state, the `openstack` user and its password, comes from the settings. A mnesia
directory is also bound to the node name and host that made it, and one left by a SIGKILLed node is
what makes RabbitMQ slow or stuck at boot; a fresh one starts in the same 9-17 s every time.

Start order (gotcha 2): RabbitMQ first (slowest), MariaDB, memcached; schema syncs; Keystone; the
service users and catalog before nova-conductor and nova-scheduler, which exit on HTTP 401 otherwise.
"""
from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path

from stackfleet.openstack import configs, layout
from stackfleet.openstack.configs import PORTS, Site
from stackfleet.openstack.probes import http_answers, tcp_open, wait_until
from stackfleet.openstack.roles import RoleRun
from stackfleet.openstack.supervisor import ServiceSpec

# API name -> (uWSGI module, port name, config env var, files of that service's config dir)
APIS = {
    "keystone": ("keystone.wsgi.api", "keystone", "OS_KEYSTONE_CONFIG_DIR", "keystone"),
    "glance": ("glance.wsgi.api", "glance", "OS_GLANCE_CONFIG_DIR", "glance"),
    "placement": ("placement.wsgi.api", "placement", "OS_PLACEMENT_CONFIG_DIR", "placement"),
    "nova-api": ("nova.wsgi.osapi_compute", "nova", "OS_NOVA_CONFIG_DIR", "nova"),
    "nova-metadata": ("nova.wsgi.metadata", "nova_metadata", "OS_NOVA_CONFIG_DIR", "nova"),
    "neutron-api": ("neutron.wsgi.api", "neutron", "OS_NEUTRON_CONFIG_DIR", "neutron"),
}
NEUTRON_FILES = {"OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"}
# Glance takes image bodies in chunks from clients that stream them.
GLANCE_UWSGI = ("--http-raw-body", "--http-auto-chunked", "--chunked-input-limit", "10485760")
BOOT_TIMEOUT = 300.0


def render(site: Site) -> dict[str, str]:
    return {
        "keystone/keystone.conf": configs.keystone_conf(site),
        "glance/glance-api.conf": configs.glance_api_conf(site),
        "placement/placement.conf": configs.placement_conf(site),
        "nova/nova.conf": configs.nova_conf(site),
        "neutron/neutron.conf": configs.neutron_conf(site),
        "neutron/ml2_conf.ini": configs.ml2_conf(site, fallback=True),
        "rabbitmq/rabbitmq.conf": configs.rabbitmq_conf(site),
        "rabbitmq/enabled_plugins": "[].\n",
        "rabbitmq/rabbitmq-env.conf": "",
    }


def uwsgi_spec(run: RoleRun, site: Site, name: str) -> ServiceSpec:
    module, port, env_var, service = APIS[name]
    extra = GLANCE_UWSGI if name == "glance" else ()
    argv = [run.bin("uwsgi"), "--home", str(site.venv), "--module", f"{module}:application",
            "--http-socket", f"{site.address}:{PORTS[port]}",
            # keystoneauth reuses connections; uWSGI's http-socket then drops them (gotcha 1).
            "--add-header", "Connection: close",
            # One process, no master: the runner supervises it, and a master would double the
            # memory (its copy of the app diverges from the worker's as Python touches it).
            "--processes", "1", "--threads", "4", "--enable-threads",
            "--die-on-term", "--need-app", "--buffer-size", "65535", *extra]
    env = {env_var: run.etc(service)}
    if service == "nova":
        # Nova loads its paste pipeline from the first file; an absolute path survives the join.
        env["OS_NOVA_CONFIG_FILES"] = f"{site.venv / 'etc/nova/api-paste.ini'};nova.conf"
    if service == "neutron":
        env.update(NEUTRON_FILES)
    # SIGINT is uWSGI's immediate shutdown; the APIs hold no state of their own.
    return ServiceSpec(name, argv, run.log(name), env, stop_signal=signal.SIGINT, stop_timeout=5)


def infra_specs(run: RoleRun, site: Site) -> list[ServiceSpec]:
    state = run.ctx.state_dir
    rabbit = state / "rabbitmq"
    rabbit_env = {
        "HOME": str(rabbit), "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": site.address, "RABBITMQ_NODE_PORT": str(PORTS["rabbit"]),
        "RABBITMQ_MNESIA_BASE": str(rabbit / "mnesia"), "RABBITMQ_LOG_BASE": str(rabbit / "log"),
        "RABBITMQ_LOGS": "-", "RABBITMQ_PID_FILE": str(rabbit / "rabbit.pid"),
        "RABBITMQ_CONFIG_FILE": run.etc("rabbitmq/rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": run.etc("rabbitmq/enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": run.etc("rabbitmq/rabbitmq-env.conf"),
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        # Makes the script exec the Erlang VM: our child is beam.smp itself, and SIGTERM to it is
        # a clean stop in about a second (rabbitmqctl stop can hang for minutes).
        "RUNNING_UNDER_SYSTEMD": "1",
    }
    return [
        # epmd in the foreground as our own child; RabbitMQ finds it and starts no daemonized one.
        ServiceSpec("epmd", ["epmd", "-port", str(PORTS["epmd"])], run.log("epmd"), stop_last=True),
        ServiceSpec("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], run.log("rabbitmq"),
                    rabbit_env, stop_last=True),
        ServiceSpec("mariadb", [
            "mariadbd", "--no-defaults", f"--datadir={site.shared.mysql}",
            f"--socket={state / 'run' / 'mysqld.sock'}", f"--port={PORTS['mysql']}",
            f"--bind-address={site.address}", "--user=root",
            f"--pid-file={state / 'run' / 'mysqld.pid'}", "--skip-name-resolve",
            "--max-connections=1000", "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4"], run.log("mariadb"), stop_last=True,
            stop_timeout=60),
        ServiceSpec("memcached", ["memcached", "-u", "root", "-l", site.address,
                                  "-p", str(PORTS["memcached"]), "-m", "64", "-U", "0"],
                    run.log("memcached"), stop_last=True),
    ]


def rpc_specs(run: RoleRun) -> dict[str, ServiceSpec]:
    nova = ["--config-file", run.etc("nova/nova.conf")]
    neutron = ["--config-file", run.etc("neutron/neutron.conf"),
               "--config-file", run.etc("neutron/ml2_conf.ini")]
    return {name: ServiceSpec(name, [run.bin(name), *args], run.log(name)) for name, args in (
        ("nova-conductor", nova), ("nova-scheduler", nova),
        ("neutron-rpc-server", neutron), ("neutron-periodic-workers", neutron))}


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


def api_checks(site: Site) -> dict[str, object]:
    a = site.address
    return {
        "mariadb": lambda: tcp_open(a, PORTS["mysql"]),
        "rabbitmq": lambda: tcp_open(a, PORTS["rabbit"]),
        "memcached": lambda: tcp_open(a, PORTS["memcached"]),
        "keystone": lambda: http_answers(a, PORTS["keystone"], "/v3"),
        "glance": lambda: http_answers(a, PORTS["glance"]),
        "placement": lambda: http_answers(a, PORTS["placement"]),
        "nova-api": lambda: http_answers(a, PORTS["nova"]),
        "nova-metadata": lambda: http_answers(a, PORTS["nova_metadata"]),
        "neutron-api": lambda: http_answers(a, PORTS["neutron"]),
    }


async def readiness(run: RoleRun, site: Site) -> dict[str, bool]:
    checks = api_checks(site)
    results = await asyncio.gather(*(check() for check in checks.values()))
    ready = dict(zip(checks, results))
    for name in ("nova-conductor", "nova-scheduler", "neutron-rpc-server", "caretaker"):
        entry = run.sup.running.get(name)
        ready[name] = entry is not None and entry.proc.returncode is None
    return ready


async def serve(run: RoleRun) -> None:
    say = run.ctx.say
    settings = await run.settings()
    site = run.site(settings, controller=run.ctx.address)
    layout.prepare(site.shared, layout.Marker(settings.ha_mode, settings.release))
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
    checks = api_checks(site)
    await wait_until(checks["mariadb"], "mariadb", BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "databases", "keystone", log="bootstrap")
    run.sup.start(uwsgi_spec(run, site, "keystone"))
    await run.helper("bootstrap", site_json, "syncs", "cells", log="bootstrap")
    # The APIs only need their schemas to start; they load while Keystone and RabbitMQ come up.
    for name in ("glance", "placement", "nova-api", "nova-metadata", "neutron-api"):
        run.sup.start(uwsgi_spec(run, site, name))
    await wait_until(checks["keystone"], "keystone", BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "catalog", log="bootstrap")
    await wait_until(checks["rabbitmq"], "rabbitmq", BOOT_TIMEOUT, say)
    for spec in rpc_specs(run).values():
        run.sup.start(spec)
    await wait_until(checks["nova-api"], "nova-api", BOOT_TIMEOUT, say)
    await run.helper("bootstrap", site_json, "flavors", log="bootstrap")
    run.sup.start(ServiceSpec(
        "caretaker", [run.bin("python"), "-m", "stackfleet.openstack.caretaker", site_json],
        run.log("caretaker"), run.helper_env()))
    for name in ("glance", "placement", "neutron-api", "nova-metadata"):
        await wait_until(checks[name], name, BOOT_TIMEOUT, say)

    published: dict[str, bool] | None = None
    try:
        while True:
            ready = await readiness(run, site)
            if ready != published:
                await run.ctx.link.publish_controller(site.address, ready)
                down = [name for name, ok in ready.items() if not ok]
                say("controller ready: every service answers" if not down
                    else f"controller degraded: {', '.join(down)} not ready")
                published = ready
            await asyncio.sleep(2)
    finally:
        if published is not None:
            # Stopping: nobody should take this controller for a healthy one any more.
            await run.ctx.link.publish_controller(site.address, dict.fromkeys(published, False))
