"""The pure parts of etcd security: the access policy, the PKI roster, which certificates the CLI
picks, and what a unit sees of the credentials."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stackfleet import discovery
from stackfleet.agent.unitaccess import UnitAccess, wants_etcd
from stackfleet.cli.main import command_verb
from stackfleet.clusterpki import ClusterPKI, Roster, read_roster
from stackfleet.registry import access
from stackfleet.registry.keys import KeySchema, prefix_end
from stackfleet.registry.store import Registry
from stackfleet.registry.tlsfiles import CertFiles, TLSConfigError, TLSFiles
from stackfleet.registry.watch import WatchUpdate
from stackfleet.unit import parse_unit

KEYS = KeySchema()
M = "0123456789abcdef0123456789abcdef"


def writable(policy: access.Policy, user: str, key: bytes) -> bool:
    """Whether etcd would let `user` write `key` under the policy (prefix or exact grants)."""
    roles = {r.name: r for r in policy.roles}
    [entry] = [u for u in policy.users if u.name == user]
    if access.ROOT in entry.roles:
        return True
    return any(g.kind in (access.WRITE, access.READWRITE) and (key.startswith(g.key) if g.prefix else key == g.key)
               for name in entry.roles for g in roles[name].grants)


def test_an_agent_may_write_its_own_keys_and_nothing_that_decides_what_runs() -> None:
    policy = access.policy(KEYS, [M, "f" * 32], ["controller-01"])
    agent = access.agent_user(M)
    assert writable(policy, agent, KEYS.machine(M))
    assert writable(policy, agent, KEYS.state(M, "a.service"))
    assert writable(policy, agent, KEYS.lock("a.service"))
    assert not writable(policy, agent, KEYS.schedule(M, "a.service"))
    assert not writable(policy, agent, KEYS.job("a.service"))
    assert not writable(policy, agent, KEYS.setting("ADMIN_PASSWORD"))
    assert not writable(policy, agent, KEYS.machine("f" * 32))
    assert not writable(policy, agent, KEYS.state("f" * 32, "a.service"))
    assert not writable(policy, agent, KEYS.machine(M) + b"x")  # an exact key, not a prefix
    engine = access.engine_user("controller-01")
    assert writable(policy, engine, KEYS.schedule(M, "a.service")) and writable(policy, engine, KEYS.leader())
    assert not writable(policy, engine, KEYS.job("a.service"))
    assert not writable(policy, engine, KEYS.setting("ADMIN_PASSWORD"))
    units = access.units_user(M)
    assert writable(policy, units, KEYS.setting("ADMIN_PASSWORD"))
    assert not writable(policy, units, KEYS.schedule(M, "a.service"))
    assert writable(policy, access.ROOT, KEYS.job("a.service"))


def readable_range(policy: access.Policy, user: str, key: bytes, range_end: bytes) -> bool:
    """Whether etcd would let `user` read [key, range_end): one of its grants covers the whole range
    (etcd checks a range against each granted range; an exact grant covers that key alone)."""
    roles = {r.name: r for r in policy.roles}
    [entry] = [u for u in policy.users if u.name == user]
    return any(g.kind in (access.READ, access.READWRITE) and
               (g.key <= key and range_end <= g.range_end if g.prefix else (key, range_end) == (g.key, b""))
               for name in entry.roles for g in roles[name].grants)


def test_the_engine_may_read_every_prefix_it_watches() -> None:
    """The standby engines' watch of the leader once needed a range that only an exact grant
    covered: each pass was refused, and they started over twice a second."""
    watched: list[bytes] = []

    async def recorded(prefix: bytes) -> AsyncIterator[WatchUpdate]:
        watched.append(prefix)
        return
        yield  # an async generator that ends at once: no call reaches etcd

    async def drain(changes: AsyncIterator[object]) -> None:
        async for _ in changes:
            pass

    registry = Registry(conn=None, prefix=KEYS.prefix)  # type: ignore[arg-type]
    registry.watch = recorded  # type: ignore[method-assign]
    for watch in (registry.watch_leader, registry.watch_machines, registry.watch_jobs,
                  registry.watch_schedule, registry.watch_reasons):
        asyncio.run(drain(watch()))
    assert len(watched) == 5
    policy = access.policy(KEYS, [M], ["controller-01"])
    engine = access.engine_user("controller-01")
    for prefix in watched:
        assert readable_range(policy, engine, prefix, prefix_end(prefix)), prefix
    settings = KEYS.settings()
    assert not readable_range(policy, engine, settings, prefix_end(settings))  # the check can fail


def test_a_prefix_grant_ends_where_etcd_ends_the_range() -> None:
    grant = access.Grant(access.READ, b"/stackfleet/states/m/", prefix=True)
    assert grant.range_end == b"/stackfleet/states/m0"
    assert access.Grant(access.READ, b"/stackfleet/engine/leader").range_end == b""


def test_the_pki_issues_a_roster_once_and_keeps_its_keys_private(tmp_path: Path) -> None:
    pki = ClusterPKI(tmp_path / "pki")
    roster = pki.issue(Roster(members={"c1": ["10.0.0.1"]}, machines={"c1": M}, engines=["c1"]))
    assert (tmp_path / "pki").stat().st_mode & 0o777 == 0o700
    for files in (pki.admin(), pki.member("c1"), pki.agent("c1"), pki.units("c1"), pki.engine("c1")):
        assert files.cert_file.exists() and files.key_file.stat().st_mode & 0o777 == 0o600
    from cryptography import x509

    agent = x509.load_pem_x509_certificate(pki.agent("c1").cert_file.read_bytes())
    assert agent.subject.rfc4514_string() == f"CN={access.agent_user(M)}"
    member = x509.load_pem_x509_certificate(pki.member("c1").cert_file.read_bytes())
    san = member.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"10.0.0.1", "127.0.0.1"}
    before = pki.agent("c1").cert_file.read_bytes()
    more = pki.issue(Roster(machines={"n1": "e" * 32}))
    assert pki.agent("c1").cert_file.read_bytes() == before  # kept
    assert more.machines == {"c1": M, "n1": "e" * 32} == read_roster(pki.directory).machines
    assert roster.engines == more.engines == ["c1"]


def test_the_cli_takes_certificates_from_the_environment_for_https_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stackfleet.lab.state.load_lab", lambda root=None: None)
    for name in discovery.TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    assert discovery.resolve_tls(["https://h:2379"]) is None  # no certificate known: the connection refuses
    monkeypatch.setenv(discovery.CA_FILE_ENV, "/pki/ca.crt")
    monkeypatch.setenv(discovery.CERT_FILE_ENV, "/pki/admin.crt")
    monkeypatch.setenv(discovery.KEY_FILE_ENV, "/pki/admin.key")
    assert discovery.resolve_tls(["https://h:2379"]) == TLSFiles(Path("/pki/ca.crt"), Path("/pki/admin.crt"),
                                                                  Path("/pki/admin.key"))
    assert discovery.resolve_tls(["http://h:2379"]) is None
    monkeypatch.delenv(discovery.CA_FILE_ENV)
    with pytest.raises(TLSConfigError, match="--ca-file"):
        discovery.resolve_tls(["https://h:2379"])


def test_the_certificate_flags_are_set_for_the_process_and_skipped_when_finding_the_verb(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stackfleet.cli.main import build_parser, export_tls_flags

    assert command_verb(["--ca-file", "ca.crt", "--cert-file", "a.crt", "list-units"]) == "list-units"
    args = build_parser("list-units").parse_args(["list-units", "--ca-file", "ca.crt", "--key-file", "/k"])
    # A copy of the environment: export_tls_flags sets os.environ, which must not leak into
    # later tests (the lab tests' CLI then found a CA and a key without a certificate).
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in discovery.TLS_ENV})
    export_tls_flags(args)
    assert os.environ[discovery.CA_FILE_ENV] == os.path.abspath("ca.crt")
    assert os.environ[discovery.KEY_FILE_ENV] == "/k" and discovery.CERT_FILE_ENV not in os.environ


UNITS_CERT = CertFiles(Path("/pki/ca.crt"), Path("/pki/units-m.crt"), Path("/pki/units-m.key"))


def test_a_plain_unit_sees_neither_the_pki_nor_the_sealing_key() -> None:
    confined = UnitAccess((Path("/pki"),), Path("/shared/secrets"), UNITS_CERT).confinement(etcd_access=False)
    assert confined.hidden_dirs == ["/pki", "/shared/secrets"]
    assert confined.kept_files == [] and confined.environment == {}


def test_a_unit_with_etcd_access_keeps_its_own_certificate_and_the_sealing_key() -> None:
    confined = UnitAccess((Path("/pki"),), Path("/shared/secrets"), UNITS_CERT).confinement(etcd_access=True)
    assert confined.hidden_dirs == ["/pki"]
    assert confined.kept_files == ["/pki/ca.crt", "/pki/units-m.crt", "/pki/units-m.key"]
    assert confined.environment == {discovery.CA_FILE_ENV: "/pki/ca.crt", discovery.CERT_FILE_ENV: "/pki/units-m.crt",
                                    discovery.KEY_FILE_ENV: "/pki/units-m.key"}


def test_an_agent_that_cannot_confine_hides_nothing() -> None:
    access_ = UnitAccess((Path("/pki"),), Path("/shared/secrets"), UNITS_CERT, confine=False)
    assert access_.confinement(etcd_access=False).hidden_dirs == []
    assert access_.confinement(etcd_access=True).kept_files == []


@pytest.mark.parametrize("section,expected", [
    ("", False),
    ("[X-Stackfleet]\nEtcdAccess=true\n", True),
    ("[X-Stackfleet]\nEtcdAccess=yes\nEtcdAccess=\n", False),  # an empty value resets
    ("[X-Stackfleet]\nEtcdAccess=false\n", False),
])
def test_etcd_access_is_declared_in_the_x_stackfleet_section(section: str, expected: bool) -> None:
    unit = parse_unit(f"[Service]\nExecStart=/bin/true\n{section}", "a.service")
    assert wants_etcd(unit) is expected


def test_the_role_units_declare_etcd_access() -> None:
    units = Path(__file__).resolve().parents[2] / "units"
    for name in ("controller.service", "network.service", "compute.service", "instance-ha.service"):
        assert wants_etcd(parse_unit((units / name).read_text(), name)), name
    assert not wants_etcd(parse_unit((units / "examples" / "beacon.service").read_text(), "beacon.service"))
