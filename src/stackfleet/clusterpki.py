"""A cluster's certificates: which ones it has, their names and where they are.

One directory holds the CA and every certificate (what `stackfleet cluster init-pki` and `lab up`
make), and roster.json, the list they were issued for, from which the etcd users are made:

  ca.crt ca.key           the cluster CA (keep ca.key off the machines on a real cluster)
  admin.crt/.key          CN root: the CLI
  member-NAME.crt/.key    an etcd member: server and peer, its addresses in the SAN
  agent-NAME.crt/.key     the agent of machine NAME (CN agent-MACHINE_ID)
  units-NAME.crt/.key     the units of machine NAME that declare EtcdAccess=true (CN units-MACHINE_ID)
  engine-NAME.crt/.key    an engine (CN engine-NAME)

Keys are 0600 in a 0700 directory (pki.py). A certificate that exists is kept, so adding a
machine to the roster issues only its own.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .registry import access
from .registry.keys import KeySchema
from .registry.tlsfiles import CertFiles

ROSTER = "roster.json"
ADMIN = "admin"
LOCAL_ADDRESSES = ("127.0.0.1", "localhost")  # a member is also reached from its own machine


@dataclass(frozen=True)
class Roster:
    members: dict[str, list[str]] = field(default_factory=dict)  # etcd member name -> addresses
    machines: dict[str, str] = field(default_factory=dict)  # machine name -> machine id
    engines: list[str] = field(default_factory=list)

    def merged(self, other: Roster) -> Roster:
        return Roster({**self.members, **other.members}, {**self.machines, **other.machines},
                      sorted(set(self.engines) | set(other.engines)))

    def policy(self, keys: KeySchema) -> access.Policy:
        return access.policy(keys, list(self.machines.values()), self.engines)


def read_roster(directory: Path) -> Roster:
    try:
        raw = json.loads((directory / ROSTER).read_text())
    except FileNotFoundError:
        return Roster()
    return Roster(**raw)


class ClusterPKI:
    """Paths only, standard library only (the CLI finds the lab's admin certificate on every
    call); issuing imports the CA's cryptography."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def files(self, name: str) -> CertFiles:
        return CertFiles(self.directory / "ca.crt", self.directory / f"{name}.crt", self.directory / f"{name}.key")

    def admin(self) -> CertFiles:
        return self.files(ADMIN)

    def member(self, name: str) -> CertFiles:
        return self.files(f"member-{name}")

    def agent(self, machine: str) -> CertFiles:
        return self.files(f"agent-{machine}")

    def units(self, machine: str) -> CertFiles:
        return self.files(f"units-{machine}")

    def engine(self, name: str) -> CertFiles:
        return self.files(f"engine-{name}")

    def issue(self, roster: Roster) -> Roster:
        """Makes the CA if needed and every missing certificate of the roster (merged with the
        one recorded); returns the whole roster now recorded."""
        from .pki import ClusterCA

        ca = ClusterCA(self.directory)
        ca.create()
        whole = read_roster(self.directory).merged(roster)
        wanted: list[tuple[CertFiles, str, list[str] | None]] = [(self.admin(), access.ROOT, None)]
        for name, addresses in whole.members.items():
            wanted.append((self.member(name), name, [*addresses, *LOCAL_ADDRESSES]))
        for name, machine_id in whole.machines.items():
            wanted.append((self.agent(name), access.agent_user(machine_id), None))
            wanted.append((self.units(name), access.units_user(machine_id), None))
        wanted += [(self.engine(name), access.engine_user(name), None) for name in whole.engines]
        for files, common_name, san in wanted:
            if not (files.cert_file.exists() and files.key_file.exists()):
                ca.issue(files.cert_file.stem, common_name, san)
        (self.directory / ROSTER).write_text(json.dumps(asdict(whole), indent=2, sort_keys=True) + "\n")
        return whole
