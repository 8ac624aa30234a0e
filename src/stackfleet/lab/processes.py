"""The processes each lab machine runs, built in this one place.

Pure: given the lab's description it returns argv lists; the supervisor runs them inside the
machine's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackfleet.clusterpki import ClusterPKI
from stackfleet.lab.plan import ETCD_CLIENT_PORT, ETCD_PEER_PORT
from stackfleet.registry.localetcd import client_tls_flags, peer_tls_flags
from stackfleet.registry.tlsfiles import CertFiles

PROCESS_KINDS: tuple[str, ...] = ("etcd", "engine", "agent")

# A 100 ms heartbeat (etcd's default) with half of etcd's default election timeout. The heartbeat sets
# the members' idle CPU; the election timeout bounds the worst detection: a machine halted together
# with the etcd leader is seen only after the election plus the lease extension that the new
# leader grants (the election timeout), so it must stay within TTL + 2 s. docs/architecture.md has
# the measurements.
ETCD_TUNING: tuple[str, ...] = (
    "--pre-vote=true",
    "--heartbeat-interval=100",
    "--election-timeout=500",
    "--max-txn-ops=1024",
    "--auto-compaction-retention=1h",
)


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # also the log file's stem: logs/<name>.log
    argv: tuple[str, ...]


@dataclass(frozen=True)
class MachineContext:
    """What building a machine's commands needs to know, independent of the lab's storage."""

    name: str
    role: str
    machine_id: str
    mgmt_ip: str
    state_dir: Path
    shared_dir: Path
    endpoints: tuple[str, ...]
    initial_cluster: str
    cluster_token: str
    ttl: int
    venv: Path
    pki_dir: Path  # the lab's CA and certificates (clusterpki.py); hidden from units


def tls_argv(files: CertFiles) -> tuple[str, ...]:
    return ("--ca-file", str(files.ca_file), "--cert-file", str(files.cert_file), "--key-file", str(files.key_file))


def etcd_data_dir(state_dir: Path) -> Path:
    return state_dir / "etcd"


def etcd_argv(m: MachineContext, existing: bool) -> tuple[str, ...]:
    """The member's command; `existing` when its data dir already holds a member (a restart).
    TLS only, for clients and peers, each with a certificate of the lab's CA."""
    client = f"https://{m.mgmt_ip}:{ETCD_CLIENT_PORT}"
    member = ClusterPKI(m.pki_dir).member(m.name)
    return (
        "etcd",
        f"--name={m.name}",
        f"--data-dir={etcd_data_dir(m.state_dir)}",
        f"--listen-client-urls={client},https://127.0.0.1:{ETCD_CLIENT_PORT}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls=https://{m.mgmt_ip}:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=https://{m.mgmt_ip}:{ETCD_PEER_PORT}",
        f"--initial-cluster={m.initial_cluster}",
        f"--initial-cluster-token={m.cluster_token}",
        f"--initial-cluster-state={'existing' if existing else 'new'}",
        *ETCD_TUNING,
        *client_tls_flags(member),
        *peer_tls_flags(member),
    )


def machine_processes(
    m: MachineContext, kinds: tuple[str, ...] = PROCESS_KINDS, etcd_existing: bool = False
) -> list[ProcessSpec]:
    """The processes machine `m` runs, restricted to `kinds` (the lab can run etcd alone)."""
    stackfleet = str(m.venv / "bin" / "stackfleet")
    endpoints = ",".join(m.endpoints)
    pki = ClusterPKI(m.pki_dir)
    specs: list[ProcessSpec] = []
    if m.role == "controller" and "etcd" in kinds:
        specs.append(ProcessSpec("etcd", etcd_argv(m, etcd_existing)))
    if m.role == "controller" and "engine" in kinds:
        specs.append(
            ProcessSpec(
                "engine",
                (stackfleet, "engine", "--endpoints", endpoints, "--name", m.name,
                 "--ttl", str(m.ttl), *tls_argv(pki.engine(m.name))),
            )
        )
    if "agent" in kinds:
        specs.append(
            ProcessSpec(
                "agent",
                (
                    stackfleet, "agent",
                    "--machine-id", m.machine_id,
                    "--name", m.name,
                    "--metadata", f"role={m.role}",
                    "--public-ip", m.mgmt_ip,
                    "--state-dir", str(m.state_dir),
                    "--shared-dir", str(m.shared_dir),
                    "--endpoints", endpoints,
                    "--ttl", str(m.ttl),
                    "--netns", m.name,
                    *tls_argv(pki.agent(m.name)),
                    "--unit-cert-file", str(pki.units(m.name).cert_file),
                    "--unit-key-file", str(pki.units(m.name).key_file),
                    "--private-dir", str(m.pki_dir),
                ),
            )
        )
    return specs
