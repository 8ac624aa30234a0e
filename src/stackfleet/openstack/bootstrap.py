"""Idempotent bootstrap of the controller's data, in phases; runs inside the OpenStack venv.

    python -m stackfleet.openstack.bootstrap SITE_JSON PHASE...

Phases, in the order the controller runs them:
  databases  databases and users (created once; passwords follow the settings)
  keystone   keystone db_sync, fernet/credential keys (once), keystone-manage bootstrap
  syncs      glance, placement, nova (api db, cell0, cell1 once, db) and neutron schema syncs
  cells      cell mappings hold URL templates, not the controller's address (survives a move)
  heartbeats every nova-compute counts as down until it reports to this controller (see below)
  ghosts     the controller services of each machine that once ran the role, from before the
             services took one host name (configs.CONTROLLER_HOST), deleted
  catalog    service project, users, role grants, services and endpoints: each checked before it is
             created, endpoints re-pointed when the controller's address moved
  flavors    a tiny flavor, once
  images     the guest image (scripts/build-guest-image) as kernel, ramdisk and machine, once
Every step checks before it acts, so running a phase again on existing data changes nothing.
Setup talks to Keystone through openstacksdk in this one process (one CLI call costs ~2 s).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stackfleet.openstack import services
from stackfleet.openstack.configs import CONTROLLER_HOST, Site, site_from_dict, url
from stackfleet.runtime.files import write_json_atomic

T = TypeVar("T")

INTERFACES = ("public", "internal", "admin")
# Cell mappings as templates that each nova service fills from its own [database] connection and
# transport_url, so a controller that moved to another address needs no change in the database.
CELL0_UUID = "00000000-0000-0000-0000-000000000000"
CELL0_DB = "{scheme}://{username}:{password}@{hostname}:{port}/nova_cell0?{query}"
CELL_DB = "{scheme}://{username}:{password}@{hostname}:{port}/{path}?{query}"
CELL_MQ = "{scheme}://{username}:{password}@{hostname}:{port}/"
# Sized for the guest image (its min_ram): the cloud kernel, a 3 MiB initramfs and busybox.
TINY_FLAVOR = {"name": "m1.tiny", "ram": 128, "vcpus": 1, "disk": 1}
GUEST_DIR_ENV = "STACKFLEET_GUEST_DIR"


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def conf(site: Site, service: str, name: str) -> str:
    return str(site.state / "etc" / service / name)


def run(site: Site, tool: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a venv tool; its output goes to our log. Raises if it fails."""
    argv = [str(site.venv / "bin" / tool), *args]
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **(env or {})})
    words = [a for a in args if not a.startswith("/")]  # config paths make the log unreadable
    say(f"{tool} {' '.join(words)}: exit {proc.returncode} in {time.monotonic() - started:.1f} s")
    if proc.returncode != 0:
        print(proc.stdout, flush=True)
        raise SystemExit(f"{tool} failed with exit code {proc.returncode}")
    return proc.stdout


def databases(site: Site) -> None:
    import pymysql

    root_pw = site.settings.password("mysql_root_password")
    try:
        db = _mysql_root(site)
    except pymysql.err.OperationalError:
        # A datadir fresh from mariadb-install-db: root has no password yet.
        db = pymysql.connect(unix_socket=str(site.state / "run" / "mysqld.sock"), user="root",
                             password="")
        with db.cursor() as c:
            c.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (root_pw,))
            c.execute("DELETE FROM mysql.global_priv WHERE User=''")
            c.execute("FLUSH PRIVILEGES")
        say("set the MariaDB root password and removed anonymous users")
    wanted = services.databases()
    with db.cursor() as c:
        for database, (user, key) in wanted.items():
            c.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            password = site.settings.password(key)
            c.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            # Keeps the DB in step with the settings, the one source of truth for passwords.
            c.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
            c.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (user,))
    db.commit()
    db.close()
    say(f"databases and users present: {', '.join(wanted)}")


def schema_fingerprint(site: Site) -> str:
    """Changes when the installed services change, i.e. when the schemas may have to move."""
    from importlib.metadata import version

    versions = [f"{svc.distribution}={version(svc.distribution)}" for svc in services.SERVICES
                if svc.databases]
    return hashlib.sha256(" ".join([site.settings.release, *versions]).encode()).hexdigest()


def schemas_current(site: Site) -> bool:
    """True when an earlier run synced every schema with this install (skips ~35 s of syncs on a
    restart or failover). STACKFLEET_FORCE_SYNC=1 syncs anyway, which must then change nothing."""
    if os.environ.get("STACKFLEET_FORCE_SYNC") == "1":
        return False
    try:
        stamp = json.loads(site.shared.schema_stamp.read_text())
    except FileNotFoundError:
        return False
    return bool(stamp.get("fingerprint") == schema_fingerprint(site))


def keystone_bootstrap(site: Site) -> None:
    """Admin user, project, roles and the identity endpoint; updates what exists."""
    public = url(site, "keystone", "/v3")
    s = site.settings
    run(site, "keystone-manage", "--config-file", conf(site, "keystone", "keystone.conf"),
        "bootstrap", "--bootstrap-username", s.admin_user,
        "--bootstrap-project-name", s.admin_project, "--bootstrap-admin-url", public,
        "--bootstrap-internal-url", public, "--bootstrap-public-url", public,
        "--bootstrap-region-id", s.region,
        env={"OS_BOOTSTRAP_PASSWORD": s.password("admin_password")})


def keystone(site: Site) -> None:
    if schemas_current(site):
        say("schemas are current for this install: skipping keystone db_sync and bootstrap")
        return
    kconf = ["--config-file", conf(site, "keystone", "keystone.conf")]
    run(site, "keystone-manage", *kconf, "db_sync")
    for kind in ("fernet", "credential"):
        repo = site.shared.keystone_keys / f"{kind}-keys"
        if not (repo / "0").exists():
            repo.mkdir(parents=True, exist_ok=True)
            run(site, "keystone-manage", *kconf, f"{kind}_setup",
                "--keystone-user", "root", "--keystone-group", "root")
    keystone_bootstrap(site)


def syncs(site: Site) -> None:
    if schemas_current(site):
        say("schemas are current for this install: skipping the schema syncs")
        return
    run(site, "glance-manage", "--config-file", conf(site, "glance", "glance-api.conf"), "db_sync")
    run(site, "placement-manage", "--config-file", conf(site, "placement", "placement.conf"),
        "db", "sync")
    nconf = ["--config-file", conf(site, "nova", "nova.conf")]
    run(site, "nova-manage", *nconf, "api_db", "sync")
    run(site, "nova-manage", *nconf, "cell_v2", "map_cell0", "--database_connection", CELL0_DB)
    cells = run(site, "nova-manage", *nconf, "cell_v2", "list_cells")
    if " cell1 " not in cells:
        run(site, "nova-manage", *nconf, "cell_v2", "create_cell", "--name", "cell1",
            "--database_connection", CELL_DB, "--transport-url", CELL_MQ)
    run(site, "nova-manage", *nconf, "db", "sync")
    run(site, "neutron-db-manage", "--config-file", conf(site, "neutron", "neutron.conf"),
        "--config-file", conf(site, "neutron", "ml2_conf.ini"), "upgrade", "heads")
    write_json_atomic(site.shared.schema_stamp, {"fingerprint": schema_fingerprint(site)})


def _mysql_root(site: Site, database: str | None = None) -> Any:
    import pymysql

    return pymysql.connect(unix_socket=str(site.state / "run" / "mysqld.sock"), user="root",
                           password=site.settings.password("mysql_root_password"),
                           database=database)


def cells(site: Site) -> None:
    """Makes literal cell URLs (data from before the templates) into templates; checked on every
    start because it costs one query. Written in SQL: nova-manage would cost seconds per cell."""
    db = _mysql_root(site, "nova_api")
    with db.cursor() as c:
        c.execute("SELECT uuid, name, database_connection, transport_url FROM cell_mappings")
        for uuid, name, database, transport in c.fetchall():
            want_db = CELL0_DB if uuid == CELL0_UUID else CELL_DB
            want_mq = transport if uuid == CELL0_UUID else CELL_MQ
            if (database, transport) != (want_db, want_mq):
                say(f"cell {name}: templating its database and transport URLs")
                c.execute("UPDATE cell_mappings SET database_connection=%s, transport_url=%s "
                          "WHERE uuid=%s", (want_db, want_mq, uuid))
    db.commit()
    db.close()


def heartbeats(site: Site) -> None:
    """Dates every nova-compute's last heartbeat back a day, before the scheduler starts.

    This controller's RabbitMQ is a new broker (controller.py): a compute queue exists only once
    that nova-compute has connected to it, and a cast to a queue that does not exist is dropped.
    A heartbeat sent to the old controller seconds ago would still let the scheduler choose a host
    whose nova-compute has not reconnected yet, and that server would stay BUILD forever (seen in
    CI after a controller halt). Dated back, the host is down (Nova's service_down_time) and a
    boot fails with NoValidHost until its first heartbeat through the new broker."""
    db = _mysql_root(site, "nova")
    with db.cursor() as c:
        count = c.execute("UPDATE services SET last_seen_up = UTC_TIMESTAMP() - INTERVAL 1 DAY "
                          "WHERE `binary` = 'nova-compute' AND deleted = 0")
    db.commit()
    db.close()
    if count:
        say(f"{count} nova-compute service(s) down until they report to this controller")


CONTROLLER_BINARIES = ("nova-scheduler", "nova-conductor")


def ghosts(site: Site) -> None:
    """Soft-deletes, as `openstack compute service delete` does, the scheduler and conductor
    records of machines: earlier versions registered them under each machine's own name, and
    every machine that the controller left showed them `down` for ever."""
    db = _mysql_root(site, "nova")
    with db.cursor() as c:
        count = c.execute(
            "UPDATE services SET deleted = id, deleted_at = UTC_TIMESTAMP() WHERE deleted = 0 "
            "AND `binary` IN %s AND host <> %s", (CONTROLLER_BINARIES, CONTROLLER_HOST))
    db.commit()
    db.close()
    if count:
        say(f"deleted {count} controller service record(s) of machines the controller left")


def admin_connection(site: Site) -> Any:
    import openstack

    s = site.settings
    keystone = url(site, "keystone", "/v3")
    return openstack.connect(
        auth_url=keystone, username=s.admin_user,
        password=s.password("admin_password"), project_name=s.admin_project,
        user_domain_name="Default", project_domain_name="Default", region_name=s.region,
        # After a failover the catalog still names the old address until `catalog` re-points it.
        identity_endpoint_override=keystone)


def _password_works(site: Site, user: str, password: str) -> bool:
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url=url(site, "keystone", "/v3"), username=user,
                       password=password, user_domain_name="Default", unscoped=True)
    try:
        session.Session(auth=auth).get_token()
        return True
    except exceptions.Unauthorized:
        return False


def _ensure(find: Callable[[], T | None], create: Callable[[], T], what: str) -> T:
    found = find()
    if found is not None:
        return found
    say(f"creating {what}")
    return create()


def catalog(site: Site) -> None:
    from keystoneauth1 import exceptions

    conn = admin_connection(site)
    try:
        conn.authorize()
    except exceptions.Unauthorized:
        # The admin password in the settings changed since keystone-manage bootstrap last ran.
        say("admin credentials from the settings were refused: running keystone-manage bootstrap")
        keystone_bootstrap(site)
        conn = admin_connection(site)
    ident = conn.identity
    domain = ident.find_domain("default", ignore_missing=False)
    project = _ensure(lambda: ident.find_project("service", domain_id=domain.id),
                      lambda: ident.create_project(name="service", domain_id=domain.id),
                      "project service")
    roles = [ident.find_role(name, ignore_missing=False) for name in ("admin", "service")]
    for svc in services.SERVICES:
        if svc.user_password_key is None:
            continue
        user_name = svc.name
        password = site.settings.password(svc.user_password_key)
        user = ident.find_user(user_name, domain_id=domain.id)
        if user is None:
            say(f"creating user {user_name}")
            user = ident.create_user(name=user_name, password=password, domain_id=domain.id)
        elif not _password_works(site, user_name, password):
            # The settings own the password. Only on drift: a password update revokes tokens.
            say(f"resetting the password of {user_name} to the one in the settings")
            ident.update_user(user, password=password)
        for role in roles:
            if not ident.validate_user_has_project_role(project, user, role):
                ident.assign_project_role_to_user(project, user, role)
    for svc, proc in services.apis():
        if proc.catalog is None:
            continue
        service = _ensure_service(ident, svc.name, proc.catalog.type)
        wanted = url(site, proc.name, proc.catalog.path)
        for interface in INTERFACES:
            _ensure_endpoint(ident, service.id, interface, site.settings.region, wanted)
    say("catalog complete")


def _ensure_service(ident: Any, name: str, service_type: str) -> Any:
    return _ensure(lambda: next(iter(ident.services(type=service_type)), None),
                   lambda: ident.create_service(name=name, type=service_type),
                   f"service {name}")


def _ensure_endpoint(ident: Any, service_id: str, interface: str, region: str, wanted: str) -> None:
    """Exactly one endpoint per service, interface and region, at the controller's address."""
    existing = list(ident.endpoints(service_id=service_id, interface=interface, region_id=region))
    if not existing:
        say(f"creating {interface} endpoint {wanted}")
        ident.create_endpoint(service_id=service_id, interface=interface, url=wanted,
                              region_id=region)
        return
    for extra in existing[1:]:
        say(f"removing duplicate endpoint {extra.url}")
        ident.delete_endpoint(extra)
    if existing[0].url != wanted:
        say(f"re-pointing the {interface} endpoint {existing[0].url} to {wanted}")
        ident.update_endpoint(existing[0], url=wanted)


def flavors(site: Site) -> None:
    conn = admin_connection(site)
    if conn.compute.find_flavor(TINY_FLAVOR["name"]) is None:
        say(f"creating flavor {TINY_FLAVOR['name']}")
        conn.compute.create_flavor(**TINY_FLAVOR)


def guest_dir() -> Path:
    from stackfleet.openstack.venv import REPO_ROOT

    return Path(os.environ.get(GUEST_DIR_ENV, REPO_ROOT / ".guest"))


def _ensure_image(conn: Any, name: str, path: Path, formats: dict[str, Any],
                  **properties: Any) -> Any:
    """An active public image `name`; one left half-uploaded by a dead controller is replaced."""
    for image in conn.image.images(name=name):
        if image.status == "active":
            return image
        say(f"deleting image {name} in state {image.status}")
        conn.image.delete_image(image)
    say(f"uploading image {name} ({path.stat().st_size} bytes)")
    return conn.image.create_image(
        name=name, filename=str(path), disk_format=formats["disk_format"],
        container_format=formats["container_format"], visibility="public", validate_checksum=False,
        wait=True, **properties)


def images(site: Site) -> None:
    """stackfleet-guest, as the original's cirros: direct kernel boot needs kernel_id and
    ramdisk_id on the machine image, and the command line the guest's console markers use."""
    root = guest_dir()
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        say(f"no guest image in {root}: run scripts/build-guest-image; skipping")
        return
    manifest = json.loads(manifest_path.read_text())
    glance, name = manifest["glance"], manifest["name"]
    conn = admin_connection(site)
    kernel = _ensure_image(conn, f"{name}-kernel", root / glance["kernel"]["file"], glance["kernel"])
    ramdisk = _ensure_image(conn, f"{name}-ramdisk", root / glance["ramdisk"]["file"],
                            glance["ramdisk"])
    machine = glance["machine"]
    props = dict(machine["properties"], kernel_id=kernel.id, ramdisk_id=ramdisk.id)
    _ensure_image(conn, name, root / machine["file"], machine, min_ram=machine["min_ram_mib"],
                  **props)


PHASES = {"databases": databases, "keystone": keystone, "syncs": syncs, "cells": cells,
          "heartbeats": heartbeats, "ghosts": ghosts, "catalog": catalog, "flavors": flavors,
          "images": images}


def main(argv: list[str]) -> int:
    site_json, *phases = argv
    site = site_from_dict(json.loads(Path(site_json).read_text()))
    for phase in phases:
        started = time.monotonic()
        PHASES[phase](site)
        say(f"phase {phase} done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
