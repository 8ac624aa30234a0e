"""`stackfleet cluster init-pki` and `stackfleet cluster enable-auth`: TLS and etcd auth for real hosts.

The lab does both by itself in `lab up`; these are the same steps for a cluster of your own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import EXIT_USAGE, CommandError

DESCRIPTION = """\
Secure a cluster of your own, as `stackfleet lab up` secures the lab: a cluster CA, a
certificate for each etcd member, agent, engine and for the CLI, then etcd users and roles so
that each certificate may touch only what its daemon writes (docs/architecture.md, "Security").
"""

EPILOG = """\
steps, on the admin host:
  1. stackfleet cluster init-pki /etc/stackfleet/pki \\
         --member etcd-1=10.0.0.11 --member etcd-2=10.0.0.12 --member etcd-3=10.0.0.13 \\
         --machine node-1=$(ssh node-1 cat /etc/machine-id) ... --engine etcd-1 ...
     (again with more --machine later: existing certificates are kept)
  2. copy to each host only what it needs (ca.crt always; never ca.key):
       etcd member NAME:  member-NAME.crt/.key; run etcd with https:// URLs and
         --cert-file --key-file --trusted-ca-file --client-cert-auth
         --peer-cert-file --peer-key-file --peer-trusted-ca-file --peer-client-cert-auth
       machine NAME:      agent-NAME.crt/.key and units-NAME.crt/.key, in a directory of their own:
         stackfleet agent --endpoints https://... --ca-file DIR/ca.crt
           --cert-file DIR/agent-NAME.crt --key-file DIR/agent-NAME.key
           --unit-cert-file DIR/units-NAME.crt --unit-key-file DIR/units-NAME.key --private-dir DIR
       engine NAME:       engine-NAME.crt/.key (stackfleet engine --ca-file ... --cert-file ...)
       the CLI:           admin.crt/.key (--ca-file/--cert-file/--key-file or $STACKFLEET_CA_FILE...)
  3. stackfleet --endpoint https://10.0.0.11:2379 cluster enable-auth /etc/stackfleet/pki
     (creates the etcd users and roles of the roster, as root, then turns auth on)
"""


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise CommandError(f"{flag} {value!r}: expected NAME=VALUE", EXIT_USAGE)
        pairs[name] = rest
    return pairs


def init_pki(args: argparse.Namespace) -> int:
    from ..clusterpki import ClusterPKI, Roster

    members = {name: [a.strip() for a in addresses.split(",") if a.strip()]
               for name, addresses in _pairs(args.member, "--member").items()}
    pki = ClusterPKI(Path(args.directory))
    roster = pki.issue(Roster(members, _pairs(args.machine, "--machine"), list(args.engine)))
    print(f"{pki.directory}: CA and certificates for {len(roster.members)} members, "
          f"{len(roster.machines)} machines, {len(roster.engines)} engines (keys 0600)")
    return 0


def enable_auth(args: argparse.Namespace) -> int:
    import asyncio

    from ..clusterpki import ClusterPKI, read_roster
    from ..discovery import prefix, resolve_endpoints
    from ..registry.authsetup import apply_policy
    from ..registry.connection import EtcdConnection
    from ..registry.keys import KeySchema

    pki = ClusterPKI(Path(args.directory))
    endpoints = resolve_endpoints(args.endpoint)
    roster = read_roster(pki.directory)
    if not roster.machines and not roster.engines:
        raise CommandError(f"{pki.directory}: no roster.json with machines or engines; run `cluster init-pki` first")

    async def apply() -> None:
        conn = EtcdConnection(endpoints, timeout=5.0, tls=pki.admin().tls())
        try:
            await apply_policy(conn, roster.policy(KeySchema(prefix())))
        finally:
            await conn.close()

    asyncio.run(apply())
    print(f"etcd auth on at {', '.join(endpoints)}: root, {len(roster.machines)} agents and their units, "
          f"{len(roster.engines)} engines")
    return 0


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    cluster = sub.add_parser("cluster", help="TLS and etcd auth for a cluster of your own hosts",
                             description=DESCRIPTION, epilog=EPILOG, parents=parents,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    init = verbs.add_parser("init-pki", help="make the cluster CA and the certificates of a roster",
                            description=DESCRIPTION, epilog=EPILOG, parents=parents,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    init.add_argument("directory", metavar="DIR", help="where the CA, certificates and roster.json go (made 0700)")
    init.add_argument("--member", action="append", default=[], metavar="NAME=IP[,IP...]",
                      help="an etcd member and the addresses clients and peers reach it at (repeatable)")
    init.add_argument("--machine", action="append", default=[], metavar="NAME=MACHINE_ID",
                      help="a machine that runs an agent, with its /etc/machine-id (repeatable)")
    init.add_argument("--engine", action="append", default=[], metavar="NAME",
                      help="an engine, by its --name (repeatable)")
    init.set_defaults(func=init_pki)
    auth = verbs.add_parser("enable-auth", help="create the etcd users and roles of the roster, then auth on",
                            description=DESCRIPTION, epilog=EPILOG, parents=parents,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    auth.add_argument("directory", metavar="DIR", help="the directory of `cluster init-pki` (its admin certificate)")
    auth.set_defaults(func=enable_auth)
