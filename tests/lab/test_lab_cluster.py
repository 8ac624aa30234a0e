"""The lab's machines, networks and etcd cluster as built by `lab up`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.lab import client, ops
from stackfleet.lab.state import LabInfo, default_endpoints, load_lab

pytestmark = pytest.mark.lab


def test_etcd_cluster_has_three_healthy_members(lab: LabInfo, etcdctl) -> None:
    health = etcdctl("endpoint", "health")
    assert health.returncode == 0, health.stderr
    assert health.stderr.count("is healthy") == 3
    members = etcdctl("member", "list", "-w", "json")
    names = sorted(m["name"] for m in json.loads(members.stdout)["members"])
    assert names == ["controller-01", "controller-02", "controller-03"]


def test_lab_json_describes_every_machine(lab: LabInfo) -> None:
    loaded = load_lab(Path(lab.root))
    assert loaded == lab
    assert lab.endpoints == [f"https://192.168.10.1{i}:2379" for i in (1, 2, 3)]
    compute = lab.machine("compute-01")
    assert compute is not None and compute.role == "compute"
    assert compute.ips == {"mgmt": "192.168.10.31", "tunnel": "172.16.0.31", "external": "10.0.5.31"}
    assert Path(compute.state_dir, "machine-id").read_text().strip() == compute.machine_id
    assert len({m.machine_id for m in lab.machines}) == len(lab.machines)


def test_default_endpoints_follow_the_lab_root_env(lab: LabInfo, monkeypatch) -> None:
    monkeypatch.setenv("STACKFLEET_LAB_ROOT", lab.root)
    assert default_endpoints() == lab.endpoints
    monkeypatch.setenv("STACKFLEET_LAB_ROOT", str(Path(lab.root) / "nothing-here"))
    assert default_endpoints() is None


LISTENER = """
import socket, sys
server = socket.create_server(("0.0.0.0", 7777))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"hello")
    conn.close()
"""

CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], 7777), timeout=3) as s:
    sys.exit(0 if s.recv(5) == b"hello" else 1)
"""


def test_machines_reach_each_other_on_every_network_and_nothing_else(lab: LabInfo) -> None:
    def run(machine: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", machine, *cmd],
                              capture_output=True, text=True, timeout=10)

    routes = run("compute-01", "ip", "-4", "route").stdout
    assert "default" not in routes
    for subnet in ("10.0.5.0/24", "172.16.0.0/24", "192.168.10.0/24"):
        assert subnet in routes
    assert run("compute-01", "ip", "route", "get", "192.0.2.1").returncode != 0

    listener = subprocess.Popen(
        ["ip", "netns", "exec", "controller-01", sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
        for target in ("10.0.5.11", "172.16.0.11", "192.168.10.11"):
            assert run("compute-01", sys.executable, "-c", CONNECT, target).returncode == 0, target
        # the host has an address on the management bridge only
        host = subprocess.run([sys.executable, "-c", CONNECT, "192.168.10.11"], timeout=10)
        assert host.returncode == 0
        assert subprocess.run(["ip", "-o", "addr", "show", "sf-tun"], capture_output=True,
                              text=True).stdout.count(" inet ") == 0
    finally:
        listener.kill()
        listener.wait()


def test_up_again_is_idempotent(lab: LabInfo) -> None:
    before = {c["pid"] for c in client.request(Path(lab.root), {"op": "status"})["children"]
              if c["running"]}
    again = ops.up(Path(lab.root))
    after = {c["pid"] for c in client.request(Path(lab.root), {"op": "status"})["children"]
             if c["running"]}
    assert again == lab
    assert after == before


def test_status_counts_the_processes_of_each_machine(lab: LabInfo) -> None:
    rows = {r.name: r for r in ops.status(Path(lab.root))}
    assert set(rows) == set(lab.machine_names())
    assert all(r.state == "running" for r in rows.values())
    per_controller = len([k for k in lab.processes if k in ("etcd", "engine", "agent")])
    assert rows["controller-01"].processes == per_controller
    assert rows["controller-01"].rss > 1024 * 1024
    assert rows["compute-01"].processes == (1 if "agent" in lab.processes else 0)


def test_exec_runs_inside_the_machine_and_returns_its_exit_code(lab: LabInfo) -> None:
    has_address = ["sh", "-c", "ip -o -4 addr show eth3 | grep -q ' 192.168.10.12/24 '"]
    assert ops.exec_in(Path(lab.root), "controller-02", has_address) == 0
    assert ops.exec_in(Path(lab.root), "compute-01", has_address) == 1
    assert ops.exec_in(Path(lab.root), "controller-02", ["sh", "-c", "exit 7"]) == 7
