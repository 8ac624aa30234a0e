"""The OpenStack services of the controller role, one record each (pure, standard library only).

Everything about a service is read from here: the ports, how each process is served, the config
files and their renderers, the databases, the service user, the catalog entries, the readiness
probes and the package pin of the OpenStack venv. scripts/install-openstack reads the pins with
the system python3:

    PYTHONPATH=src python3 -m stackfleet.openstack.services --pins

To add a service: one `Service` entry in SERVICES, and its renderers in configs.py (named by
`ConfigFile.renderer`). Its settings (passwords), databases, users, catalog entries, readiness and
the install follow from the entry. See docs/architecture.md.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Uwsgi:
    """A WSGI app served by one uWSGI process of its own."""
    module: str                     # served as MODULE:application
    config_dir_env: str             # the variable that points the app at STATE/etc/SERVICE
    # More variables; "{venv}" stands for the OpenStack venv, here and in the options.
    env: tuple[tuple[str, str], ...] = ()
    options: tuple[str, ...] = ()   # more uWSGI options


@dataclass(frozen=True)
class Command:
    """A plain program of the OpenStack venv, with --config-file for each file of its service."""
    config_files: tuple[str, ...]   # under STATE/etc/SERVICE


@dataclass(frozen=True)
class Catalog:
    type: str                       # Keystone's service type ("compute")
    path: str = ""                  # appended to http://CONTROLLER:PORT


@dataclass(frozen=True)
class Process:
    """One process of a service, under the name the supervisor and the readiness report use."""
    name: str
    served: Uwsgi | Command
    port: int | None = None         # APIs only
    probe_path: str | None = None   # APIs: GET this without auth; any answer below 500 is ready
    probe_status: int | None = None  # ... unless this is set: then only this status is
    catalog: Catalog | None = None
    user_api: bool = False          # clients talk to it; a controller failover is timed until it answers
    ready_when_alive: bool = True   # commands: reported ready while the process runs


@dataclass(frozen=True)
class ConfigFile:
    path: str                       # under STATE/etc
    renderer: str                   # the function in configs.py: (Site) -> str


@dataclass(frozen=True)
class Service:
    """One OpenStack service; `name` is also its config dir, database user and service user."""
    name: str
    pin: str                        # its requirement in the OpenStack venv
    configs: tuple[ConfigFile, ...]
    processes: tuple[Process, ...]
    databases: tuple[str, ...] = ()  # owned by user NAME with the password NAME_db_password
    service_user: bool = True        # a Keystone user NAME with the password NAME_password
    secrets: tuple[str, ...] = ()    # more settings generated at first use (e.g. a signing key)

    @property
    def distribution(self) -> str:
        """The installed distribution's name, as importlib.metadata knows it."""
        return self.pin.split("==")[0]

    @property
    def db_password_key(self) -> str | None:
        return f"{self.name}_db_password" if self.databases else None

    @property
    def user_password_key(self) -> str | None:
        return f"{self.name}_password" if self.service_user else None


@dataclass(frozen=True)
class Infra:
    """Infrastructure the controller role starts itself (Debian packages, not in the venv)."""
    name: str
    port: int
    probed: bool = True             # readiness: the port accepts connections


INFRA = (
    Infra("mariadb", 3306),
    Infra("rabbitmq", 5672),
    Infra("memcached", 11211),
    Infra("epmd", 4369, probed=False),  # RabbitMQ's; RabbitMQ's own probe covers it
)

# Glance takes image bodies in chunks from clients that stream them.
GLANCE_UWSGI = ("--http-raw-body", "--http-auto-chunked", "--chunked-input-limit", "10485760")
NEUTRON_FILES = ("neutron.conf", "ml2_conf.ini")
# Horizon's static files, collected and compressed by scripts/install-openstack, served by uWSGI.
HORIZON_STATIC = "{venv}/var/horizon/static"

SERVICES = (
    Service(
        "keystone", "keystone==30.0.0",
        configs=(ConfigFile("keystone/keystone.conf", "keystone_conf"),),
        processes=(Process("keystone", Uwsgi("keystone.wsgi.api", "OS_KEYSTONE_CONFIG_DIR"),
                           port=5000, probe_path="/v3", catalog=Catalog("identity", "/v3"),
                           user_api=True),),
        databases=("keystone",), service_user=False),
    Service(
        "glance", "glance==33.0.0",
        configs=(ConfigFile("glance/glance-api.conf", "glance_api_conf"),),
        processes=(Process("glance", Uwsgi("glance.wsgi.api", "OS_GLANCE_CONFIG_DIR",
                                           options=GLANCE_UWSGI),
                           port=9292, probe_path="/", catalog=Catalog("image"), user_api=True),),
        databases=("glance",)),
    Service(
        "placement", "openstack-placement==16.0.0",
        configs=(ConfigFile("placement/placement.conf", "placement_conf"),),
        processes=(Process("placement", Uwsgi("placement.wsgi.api", "OS_PLACEMENT_CONFIG_DIR"),
                           port=8778, probe_path="/", catalog=Catalog("placement")),),
        databases=("placement",)),
    Service(
        "nova", "nova==34.0.0",
        configs=(ConfigFile("nova/nova.conf", "nova_conf"),),
        processes=(
            # Nova loads its paste pipeline from the first file; an absolute path survives the join.
            Process("nova-api", Uwsgi("nova.wsgi.osapi_compute", "OS_NOVA_CONFIG_DIR", env=(
                ("OS_NOVA_CONFIG_FILES", "{venv}/etc/nova/api-paste.ini;nova.conf"),)),
                port=8774, probe_path="/", catalog=Catalog("compute", "/v2.1"), user_api=True),
            Process("nova-metadata", Uwsgi("nova.wsgi.metadata", "OS_NOVA_CONFIG_DIR", env=(
                ("OS_NOVA_CONFIG_FILES", "{venv}/etc/nova/api-paste.ini;nova.conf"),)),
                port=8775, probe_path="/"),
            Process("nova-conductor", Command(("nova.conf",))),
            Process("nova-scheduler", Command(("nova.conf",))),
        ),
        databases=("nova", "nova_api", "nova_cell0")),
    Service(
        "neutron", "neutron==29.0.0",
        configs=(ConfigFile("neutron/neutron.conf", "neutron_conf"),
                 ConfigFile("neutron/ml2_conf.ini", "server_ml2_conf")),
        processes=(
            Process("neutron-api", Uwsgi("neutron.wsgi.api", "OS_NEUTRON_CONFIG_DIR", env=(
                ("OS_NEUTRON_CONFIG_FILES", ";".join(NEUTRON_FILES)),)),
                port=9696, probe_path="/", catalog=Catalog("network"), user_api=True),
            Process("neutron-rpc-server", Command(NEUTRON_FILES)),
            Process("neutron-periodic-workers", Command(NEUTRON_FILES), ready_when_alive=False),
        ),
        databases=("neutron",)),
    Service(
        # The dashboard: its settings are stackfleet.openstack.dashboard_settings, where the values
        # that reach the offline-compressed templates are fixed and the per-site ones come from
        # horizon/dashboard.json. Port 80, so the dashboard is at http://CONTROLLER/.
        "horizon", "horizon==27.0.0",
        configs=(ConfigFile("horizon/dashboard.json", "horizon_dashboard_json"),),
        processes=(Process("horizon", Uwsgi(
            "openstack_dashboard.wsgi", "STACKFLEET_HORIZON_CONFIG_DIR",
            options=("--static-map", f"/static={HORIZON_STATIC}")),
            # The login page renders the compressed assets' manifest: a 500 there is not ready.
            port=80, probe_path="/auth/login/", probe_status=200),),
        service_user=False, secrets=("horizon_secret_key",)),
)

# The venv's other requirements: the admin's client, the DB driver, the memcache clients of
# keystonemiddleware and oslo.cache, and the WSGI server.
# libvirt-python builds against Debian's libvirt-dev (libvirt 9.0), so its pin follows that release.
TOOL_PINS = ("python-openstackclient==10.5.0", "PyMySQL", "pymemcache", "python-memcached",
             "uwsgi==2.0.31", "libvirt-python==9.0.0")


def service(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(name)


def processes() -> list[tuple[Service, Process]]:
    return [(svc, proc) for svc in SERVICES for proc in svc.processes]


def process(name: str) -> tuple[Service, Process]:
    for svc, proc in processes():
        if proc.name == name:
            return svc, proc
    raise KeyError(name)


def apis() -> list[tuple[Service, Process]]:
    """The processes that answer HTTP, in table order."""
    return [(svc, proc) for svc, proc in processes() if proc.port is not None]


def port(name: str) -> int:
    """The port of an API process or of a piece of infrastructure, by name."""
    for item in INFRA:
        if item.name == name:
            return item.port
    proc = process(name)[1]
    if proc.port is None:
        raise KeyError(f"{name} has no port")
    return proc.port


def databases() -> dict[str, tuple[str, str]]:
    """Database -> (user, password setting)."""
    return {db: (svc.name, svc.db_password_key) for svc in SERVICES if svc.db_password_key
            for db in svc.databases}


def password_keys(table: tuple[Service, ...] = SERVICES) -> tuple[str, ...]:
    """The services' secret settings: per service its database's, its user's, then its own."""
    keys = [(svc.db_password_key, svc.user_password_key, *svc.secrets) for svc in table]
    return tuple(k for group in keys for k in group if k)


def pins() -> tuple[str, ...]:
    """What scripts/install-openstack installs into the OpenStack venv."""
    return (*(svc.pin for svc in SERVICES), *TOOL_PINS)


def main(argv: list[str]) -> int:
    if argv != ["--pins"]:
        print("usage: python3 -m stackfleet.openstack.services --pins", file=sys.stderr)
        return 2
    print("\n".join(pins()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
