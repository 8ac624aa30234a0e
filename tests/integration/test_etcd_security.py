"""etcd as the lab runs it (TLS, client certificates, users and roles) on loopback: each
daemon's certificate may write only what that daemon writes, and the CLI talks TLS only."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from stackfleet.pki import ClusterCA
from stackfleet.registry.connection import AccessDenied, EtcdConnection, EtcdUnavailable
from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import JobRecord, MachineRecord, ScheduleEntry, UnitState
from stackfleet.registry.store import Registry
from stackfleet.registry.tlsfiles import CertFiles

from .tlscluster import MACHINES, SecureEtcd, secure_etcd

M1, M2 = MACHINES["m1"], MACHINES["m2"]
UNIT = Path(__file__).resolve().parents[2] / "units" / "examples" / "beacon.service"


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureEtcd]:
    with secure_etcd(tmp_path) as s:
        yield s


def as_user(s: SecureEtcd, files: CertFiles, body: Callable[[Registry], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Registry(EtcdConnection([s.endpoint], timeout=3.0, tls=files.tls())) as registry:
            await body(registry)

    asyncio.run(main())


def machine(machine_id: str) -> MachineRecord:
    return MachineRecord(id=machine_id, name="m", public_ip="127.0.0.1", metadata={}, state_dir="/s", netns="")


def test_an_agent_certificate_writes_only_what_agents_write(secure: SecureEtcd) -> None:
    async def admin(r: Registry) -> None:
        await r.submit(JobRecord("a.service", "h1", "inactive"), "[Service]\nExecStart=/bin/true\n",
                       replace=False)
        await r.set_setting("region", "one")

    as_user(secure, secure.pki.admin(), admin)

    async def agent(r: Registry) -> None:
        lease = await r.lease_keeper(10).grant()
        await r.register_machine(machine(M1), lease)  # its own machine record
        await r.report_state(UnitState("a.service", M1, "h1", "loaded", "inactive", "dead"), lease)
        assert await r.acquire_lock("a.service", M1, lease)
        await r.log_event("machine", "", M1, "joined")
        assert await r.body("h1") is not None
        with pytest.raises(AccessDenied):  # the schedule is the engine's
            await r.put_many([r.schedule_op("a.service", M1, ScheduleEntry("launched", "h1", True))])
        with pytest.raises(AccessDenied):  # the desired state is the admin's
            await r.set_desired("a.service", "launched")
        with pytest.raises(AccessDenied):
            await r.register_machine(machine(M2), lease)  # another machine's record
        with pytest.raises(AccessDenied):
            await r.report_state(UnitState("a.service", M2, "h1", "loaded", "active", "running"), lease)
        with pytest.raises(AccessDenied):  # the sealed passwords
            await r.settings()

    as_user(secure, secure.pki.agent("m1"), agent)


def test_an_engine_schedules_but_cannot_change_jobs_nor_read_settings(secure: SecureEtcd) -> None:
    async def engine(r: Registry) -> None:
        lease = await r.lease_keeper(10).grant()
        revision = await r.campaign("e1", lease)
        assert revision is not None
        op = r.schedule_op("a.service", M1, ScheduleEntry("launched", "h1", True))
        assert await r.commit_as_leader([op, r.reason_op("b.service", "no machine")], revision)
        assert (await r.schedule())["a.service"][M1].desired == "launched"
        with pytest.raises(AccessDenied):
            await r.submit(JobRecord("x.service", "h2", "launched"), "x", replace=False)
        with pytest.raises(AccessDenied):
            await r.settings()

    as_user(secure, secure.pki.engine("e1"), engine)


def test_the_units_certificate_reaches_settings_and_services_only(secure: SecureEtcd) -> None:
    async def units(r: Registry) -> None:
        assert await r.setting_if_absent("region", "one") == "one"
        assert (await r.settings())["region"] == "one"
        lease = await r.lease_keeper(10).grant()
        await r.publish("controller", "{}", lease)
        await r.schedule()
        with pytest.raises(AccessDenied):
            await r.put_many([r.schedule_op("a.service", M1, ScheduleEntry("launched", "h1", True))])
        with pytest.raises(AccessDenied):
            await r.register_machine(machine(M1), lease)

    as_user(secure, secure.pki.units("m1"), units)


def test_no_certificate_no_access(secure: SecureEtcd, tmp_path: Path) -> None:
    other = ClusterCA(tmp_path / "other")
    other.create()
    stranger = other.issue("root", "root")  # the right name, from the wrong CA

    async def main() -> None:
        async with Registry(EtcdConnection([secure.endpoint], timeout=1.0, tls=stranger.tls())) as r:
            with pytest.raises(EtcdUnavailable):
                await r.settings()
        async with Registry(EtcdConnection([secure.endpoint.replace("https", "http")], timeout=1.0)) as r:
            with pytest.raises(EtcdUnavailable):
                await r.settings()

    asyncio.run(main())
    plain = subprocess.run(["curl", "-sS", "--max-time", "5", f"{secure.endpoint.replace('https', 'http')}/version"],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "etcdserver" not in plain.stdout
    no_cert = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(secure.pki.admin().ca_file),
                              f"{secure.endpoint}/version"], capture_output=True, text=True)
    assert no_cert.returncode != 0 and "etcdserver" not in no_cert.stdout


def cli(endpoint: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKFLEET_")}
    return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "--endpoint", endpoint, *args],
                          capture_output=True, text=True, timeout=60, env={**clean, **(env or {})})


def flags(files: CertFiles) -> list[str]:
    return ["--ca-file", str(files.ca_file), "--cert-file", str(files.cert_file), "--key-file", str(files.key_file)]


def test_the_cli_takes_fleetctls_certificate_flags_and_their_environment(secure: SecureEtcd) -> None:
    admin = secure.pki.admin()
    started = cli(secure.endpoint, *flags(admin), "submit", str(UNIT))
    assert started.returncode == 0, started.stderr
    listed = cli(secure.endpoint, *flags(admin), "list-unit-files", "--no-legend")
    assert listed.returncode == 0 and "beacon.service" in listed.stdout, listed.stderr
    env = {"STACKFLEET_CA_FILE": str(admin.ca_file), "STACKFLEET_CERT_FILE": str(admin.cert_file),
           "STACKFLEET_KEY_FILE": str(admin.key_file)}
    assert "beacon.service" in cli(secure.endpoint, "list-unit-files", env=env).stdout
    assert cli(secure.endpoint, "status", "beacon.service", env=env).returncode == 3  # read, not running


def test_https_never_falls_back_to_plaintext_and_says_why(secure: SecureEtcd, tmp_path: Path) -> None:
    admin = secure.pki.admin()
    for verb in (["list-units"], ["submit", str(UNIT)]):
        missing = cli(secure.endpoint, *verb)
        assert missing.returncode == 1 and "--ca-file" in missing.stderr, missing.stderr
        no_client_cert = cli(secure.endpoint, "--ca-file", str(admin.ca_file), *verb)
        assert no_client_cert.returncode == 69 and "--cert-file" in no_client_cert.stderr, no_client_cert.stderr
        denied = cli(secure.endpoint, *flags(secure.pki.agent("m1")), *verb)
        assert denied.returncode == 1 and "permission denied" in denied.stderr, denied.stderr
        assert "Traceback" not in denied.stderr
    other = ClusterCA(tmp_path / "other")
    other.create()
    stranger = other.issue("root", "root")
    with LocalEtcd() as plaintext:  # a server that presents no certificate at all
        for endpoint, files in ((secure.endpoint, stranger), (plaintext.endpoint.replace("http", "https"), admin)):
            for verb in (["list-units"], ["submit", str(UNIT)]):
                bad = cli(endpoint, *flags(files), *verb)
                assert bad.returncode == 69, bad.stderr
                assert "TLS handshake failed" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        # ... and the plaintext server got nothing: no unit was submitted to it.
        assert "beacon" not in cli(plaintext.endpoint, "list-unit-files").stdout


def test_cluster_init_pki_and_enable_auth_secure_a_cluster_of_ones_own(tmp_path: Path) -> None:
    from stackfleet.clusterpki import ClusterPKI

    directory = tmp_path / "pki"
    init = cli("http://127.0.0.1:1", "cluster", "init-pki", str(directory), "--member", "local=127.0.0.1",
               "--machine", f"m1={M1}", "--engine", "e1")
    assert init.returncode == 0, init.stderr
    pki = ClusterPKI(directory)
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in directory.glob("*.key"))
    (tmp_path / "etcd").mkdir()
    with LocalEtcd(data_dir=tmp_path / "etcd", tls=pki.member("local")) as etcd:
        enabled = cli(etcd.endpoint, "cluster", "enable-auth", str(directory))
        assert enabled.returncode == 0, enabled.stderr
        again = cli(etcd.endpoint, "cluster", "enable-auth", str(directory))  # idempotent
        assert again.returncode == 0, again.stderr
        s = SecureEtcd(etcd, pki)

        async def agent(r: Registry) -> None:
            with pytest.raises(AccessDenied):
                await r.set_desired("a.service", "launched")

        as_user(s, pki.agent("m1"), agent)
        assert cli(etcd.endpoint, *flags(pki.admin()), "list-machines").returncode == 0
