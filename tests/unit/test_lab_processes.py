"""The per-machine process list (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackfleet.lab.processes import MachineContext, machine_processes


def ctx(role: str = "controller", name: str = "controller-02", ip: str = "192.168.10.12") -> MachineContext:
    return MachineContext(
        name=name,
        role=role,
        machine_id="0123456789abcdef0123456789abcdef",
        mgmt_ip=ip,
        state_dir=Path("/lab/machines") / name,
        shared_dir=Path("/lab/shared"),
        endpoints=("http://192.168.10.11:2379", "http://192.168.10.12:2379"),
        initial_cluster="controller-01=https://192.168.10.11:2380,controller-02=https://192.168.10.12:2380",
        cluster_token="stackfleet-lab-abc",
        ttl=5,
        venv=Path("/venv"),
        pki_dir=Path("/lab/pki"),
    )


def test_controller_runs_etcd_engine_and_agent() -> None:
    assert [p.name for p in machine_processes(ctx())] == ["etcd", "engine", "agent"]


def test_other_roles_run_only_an_agent() -> None:
    specs = machine_processes(ctx("compute", "compute-01", "192.168.10.31"))
    assert [p.name for p in specs] == ["agent"]
    argv = specs[0].argv
    assert argv[:2] == ("/venv/bin/stackfleet", "agent")
    options: dict[str, str] = {}
    for flag, value in zip(argv[2::2], argv[3::2], strict=True):
        assert flag not in options, flag
        options[flag] = value
    assert options == {
        "--machine-id": "0123456789abcdef0123456789abcdef",
        "--name": "compute-01",
        "--metadata": "role=compute",
        "--public-ip": "192.168.10.31",
        "--state-dir": "/lab/machines/compute-01",
        "--shared-dir": "/lab/shared",
        "--endpoints": "http://192.168.10.11:2379,http://192.168.10.12:2379",
        "--ttl": "5",
        "--netns": "compute-01",
        "--ca-file": "/lab/pki/ca.crt",
        "--cert-file": "/lab/pki/agent-compute-01.crt",
        "--key-file": "/lab/pki/agent-compute-01.key",
        "--unit-cert-file": "/lab/pki/units-compute-01.crt",
        "--unit-key-file": "/lab/pki/units-compute-01.key",
        "--private-dir": "/lab/pki",
    }


def test_engine_command() -> None:
    engine = next(p for p in machine_processes(ctx()) if p.name == "engine")
    assert engine.argv == (
        "/venv/bin/stackfleet", "engine",
        "--endpoints", "http://192.168.10.11:2379,http://192.168.10.12:2379",
        "--name", "controller-02", "--ttl", "5",
        "--ca-file", "/lab/pki/ca.crt", "--cert-file", "/lab/pki/engine-controller-02.crt",
        "--key-file", "/lab/pki/engine-controller-02.key",
    )


def test_kinds_restrict_the_list() -> None:
    assert [p.name for p in machine_processes(ctx(), ("etcd",))] == ["etcd"]
    assert machine_processes(ctx("network", "network-01", "192.168.10.21"), ("etcd",)) == []


@pytest.mark.parametrize("existing,state", [(False, "new"), (True, "existing")])
def test_etcd_member_flags(existing: bool, state: str) -> None:
    argv = machine_processes(ctx(), ("etcd",), etcd_existing=existing)[0].argv
    assert argv[0] == "etcd"
    assert f"--initial-cluster-state={state}" in argv
    assert "--name=controller-02" in argv
    assert "--data-dir=/lab/machines/controller-02/etcd" in argv
    assert "--listen-client-urls=https://192.168.10.12:2379,https://127.0.0.1:2379" in argv
    assert "--listen-peer-urls=https://192.168.10.12:2380" in argv
    # TLS for clients and peers, each with a certificate of the lab's CA.
    for flag in ("--cert-file=/lab/pki/member-controller-02.crt", "--key-file=/lab/pki/member-controller-02.key",
                 "--trusted-ca-file=/lab/pki/ca.crt", "--client-cert-auth",
                 "--peer-cert-file=/lab/pki/member-controller-02.crt",
                 "--peer-key-file=/lab/pki/member-controller-02.key",
                 "--peer-trusted-ca-file=/lab/pki/ca.crt", "--peer-client-cert-auth"):
        assert flag in argv
    assert not any("http://" in a for a in argv)
    assert "--initial-cluster-token=stackfleet-lab-abc" in argv
    for flag in ("--pre-vote=true", "--heartbeat-interval=100", "--election-timeout=500",
                 "--max-txn-ops=1024", "--auto-compaction-retention=1h"):
        assert flag in argv
