"""The service table: consistent in itself, and what every reader derives from it."""
import hashlib
import importlib.metadata
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.openstack import admin, bootstrap, configs, controller, services, settings
from stackfleet.openstack.link import FileClusterLink
from stackfleet.openstack.role_context import RoleContext, RoleRun
from stackfleet.openstack.role_supervisor import Supervisor
from stackfleet.openstack.services import Command, Uwsgi
from test_openstack_configs import make_site

REPO = Path(__file__).resolve().parents[2]


def test_every_port_is_unique_across_the_table():
    ports = [i.port for i in services.INFRA] + [p.port for _, p in services.apis()]
    assert len(ports) == len(set(ports))
    assert services.port("keystone") == 5000 and services.port("mariadb") == 3306


def test_process_names_and_catalog_types_are_unique():
    names = [p.name for _, p in services.processes()] + [i.name for i in services.INFRA]
    assert len(names) == len(set(names))
    types = [p.catalog.type for _, p in services.apis() if p.catalog]
    assert len(types) == len(set(types))


def test_apis_are_served_by_uwsgi_with_a_probe_and_commands_have_no_port():
    for _svc, proc in services.processes():
        if isinstance(proc.served, Uwsgi):
            assert proc.port and proc.probe_path and proc.probe_path.startswith("/"), proc.name
        else:
            assert isinstance(proc.served, Command) and proc.port is None, proc.name
            assert proc.catalog is None and not proc.user_api


def test_every_database_and_service_user_has_a_password_setting():
    for svc in services.SERVICES:
        for key in (svc.db_password_key, svc.user_password_key):
            assert key is None or key in settings.PASSWORD_KEYS
    assert all(key in settings.PASSWORD_KEYS for _, key in services.databases().values())


def test_a_service_without_database_or_user_brings_only_its_secrets():
    dashboard = services.Service("dash", "dash==1", configs=(), processes=(), service_user=False,
                                 secrets=("dash_secret_key",))
    assert services.password_keys((services.service("glance"), dashboard)) == (
        "glance_db_password", "glance_password", "dash_secret_key")


def test_databases_are_the_ones_the_bootstrap_always_made():
    assert services.databases() == {
        "keystone": ("keystone", "keystone_db_password"),
        "glance": ("glance", "glance_db_password"),
        "placement": ("placement", "placement_db_password"),
        "nova": ("nova", "nova_db_password"),
        "nova_api": ("nova", "nova_db_password"),
        "nova_cell0": ("nova", "nova_db_password"),
        "neutron": ("neutron", "neutron_db_password"),
    }


def test_schema_fingerprint_keeps_its_distributions_in_order():
    # The shared data's schema stamp hashes these in this order: a change resyncs every schema.
    assert [s.distribution for s in services.SERVICES if s.databases] == [
        "keystone", "glance", "openstack-placement", "nova", "neutron"]


def test_every_config_file_has_a_renderer_in_its_service_dir():
    site = make_site()
    for svc in services.SERVICES:
        files = configs.render_service(site, svc)
        assert list(files) == [f.path for f in svc.configs]
        assert all(path.startswith(f"{svc.name}/") and text for path, text in files.items())


def test_the_controller_renders_the_same_files_as_before():
    assert sorted(controller.render(make_site())) == sorted([
        "keystone/keystone.conf", "glance/glance-api.conf", "placement/placement.conf",
        "nova/nova.conf", "neutron/neutron.conf", "neutron/ml2_conf.ini",
        "horizon/dashboard.json", "rabbitmq/rabbitmq.conf", "rabbitmq/advanced.config", "rabbitmq/enabled_plugins",
        "rabbitmq/rabbitmq-env.conf"])
    ml2 = controller.render(make_site())["neutron/ml2_conf.ini"]
    assert "stackfleet_fallback" not in ml2 and "openvswitch,l2population" in ml2


def test_pins_printed_for_the_install_script_match_the_table():
    out = subprocess.run([sys.executable, "-m", "stackfleet.openstack.services", "--pins"],
                         capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO / "src")})
    assert out.stdout.split("\n")[:-1] == list(services.pins())
    assert {s.pin for s in services.SERVICES} <= set(services.pins())
    assert "nova==34.0.0" in services.pins() and "uwsgi==2.0.31" in services.pins()
    script = (REPO / "scripts" / "install-openstack").read_text()
    assert "python3 -m stackfleet.openstack.services --pins" in script
    assert "PACKAGES=(" not in script


def run_for(tmp_path: Path) -> RoleRun:
    ctx = RoleContext(address="10.9.0.5", shared_dir=tmp_path / "shared",
                      state_dir=tmp_path / "state", link=FileClusterLink(tmp_path / "link"),
                      venv=Path("/venv"))
    return RoleRun(ctx, Supervisor(lambda m: None))


def test_uwsgi_specs_carry_the_config_env_and_options(tmp_path):
    run, site = run_for(tmp_path), make_site(address="10.9.0.5")
    specs = {p.name: controller.uwsgi_spec(run, site, s, p) for s, p in controller.uwsgi_processes()}
    assert set(specs) == {"keystone", "glance", "placement", "nova-api", "nova-metadata",
                          "neutron-api", "horizon"}
    nova = specs["nova-api"]
    assert nova.env == {"OS_NOVA_CONFIG_DIR": str(tmp_path / "state/etc/nova"),
                        "OS_NOVA_CONFIG_FILES": "/venv/etc/nova/api-paste.ini;nova.conf"}
    assert "nova.wsgi.osapi_compute:application" in nova.argv and "10.9.0.5:8774" in nova.argv
    assert specs["neutron-api"].env["OS_NEUTRON_CONFIG_FILES"] == "neutron.conf;ml2_conf.ini"
    assert "--http-raw-body" in specs["glance"].argv
    assert "--http-raw-body" not in specs["keystone"].argv
    assert specs["keystone"].env == {"OS_KEYSTONE_CONFIG_DIR": str(tmp_path / "state/etc/keystone")}
    assert all(s.stop_signal == signal.SIGINT for s in specs.values())


def test_horizon_is_served_on_port_80_with_its_static_files_from_the_venv(tmp_path):
    run, site = run_for(tmp_path), make_site(address="10.9.0.5")
    svc, proc = services.process("horizon")
    spec = controller.uwsgi_spec(run, site, svc, proc)
    assert "openstack_dashboard.wsgi:application" in spec.argv and "10.9.0.5:80" in spec.argv
    static = spec.argv[spec.argv.index("--static-map") + 1]
    assert static == "/static=/venv/var/horizon/static"
    assert spec.env == {"STACKFLEET_HORIZON_CONFIG_DIR": str(tmp_path / "state/etc/horizon")}
    # Its secret key is a generated setting like a password; it has no database and no user.
    assert "horizon_secret_key" in settings.PASSWORD_KEYS
    assert svc.databases == () and svc.user_password_key is None
    assert "horizon==27.0.0" in services.pins()


def test_horizon_is_ready_only_when_its_login_page_answers_200():
    assert services.process("horizon")[1].probe_status == 200
    assert all(p.probe_status is None for _, p in services.apis() if p.name != "horizon")


def test_command_specs_pass_each_config_file(tmp_path):
    run = run_for(tmp_path)
    specs = {p.name: controller.command_spec(run, s, p) for s, p in controller.command_processes()}
    etc = tmp_path / "state" / "etc"
    assert specs["nova-conductor"].argv == ["/venv/bin/nova-conductor",
                                            "--config-file", str(etc / "nova/nova.conf")]
    assert specs["neutron-rpc-server"].argv[1:] == [
        "--config-file", str(etc / "neutron/neutron.conf"),
        "--config-file", str(etc / "neutron/ml2_conf.ini")]
    assert set(specs) == {"nova-conductor", "nova-scheduler", "neutron-rpc-server",
                          "neutron-periodic-workers"}


def test_readiness_names_are_the_published_ones(tmp_path):
    assert set(controller.probes(make_site())) == {
        "mariadb", "rabbitmq", "memcached", "keystone", "glance", "placement", "nova-api",
        "nova-metadata", "neutron-api", "horizon"}
    assert admin.user_apis() == {"keystone": (5000, "/v3"), "glance": (9292, "/"),
                                 "nova": (8774, "/"), "neutron": (9696, "/")}


@pytest.mark.parametrize("name", ["nova-conductor", "placement"])
def test_a_process_knows_its_service(name):
    svc, proc = services.process(name)
    assert proc in svc.processes
    with pytest.raises(KeyError):
        services.port("nova-conductor")


def test_schema_fingerprint_is_the_one_existing_stamps_hold(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "1.0")
    legacy = "2026.2 keystone=1.0 glance=1.0 openstack-placement=1.0 nova=1.0 neutron=1.0"
    assert bootstrap.schema_fingerprint(make_site()) == hashlib.sha256(legacy.encode()).hexdigest()

