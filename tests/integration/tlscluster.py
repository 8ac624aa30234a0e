"""A single-member etcd on loopback as the lab runs it: TLS, client certificates, users and roles."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stackfleet.clusterpki import ClusterPKI, Roster
from stackfleet.registry.authsetup import apply_policy
from stackfleet.registry.connection import EtcdConnection
from stackfleet.registry.keys import KeySchema
from stackfleet.registry.localetcd import LocalEtcd

MACHINES = {"m1": "a" * 32, "m2": "b" * 32}


@dataclass
class SecureEtcd:
    etcd: LocalEtcd
    pki: ClusterPKI

    @property
    def endpoint(self) -> str:
        return self.etcd.endpoint


@contextmanager
def secure_etcd(directory: Path) -> Iterator[SecureEtcd]:
    pki = ClusterPKI(directory / "pki")
    roster = pki.issue(Roster(members={"local": ["127.0.0.1"]}, machines=MACHINES, engines=["e1"]))
    (directory / "etcd").mkdir()
    with LocalEtcd(data_dir=directory / "etcd", tls=pki.member("local")) as etcd:

        async def enable() -> None:
            conn = EtcdConnection([etcd.endpoint], timeout=5.0, tls=pki.admin().tls())
            try:
                await apply_policy(conn, roster.policy(KeySchema()))
            finally:
                await conn.close()

        asyncio.run(enable())
        yield SecureEtcd(etcd, pki)
