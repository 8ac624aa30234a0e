"""Faults: halt a controller and bring it back; partition and heal one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackfleet.lab import client, nsprocs, ops
from stackfleet.lab.state import LabInfo

pytestmark = pytest.mark.lab

REJOIN_TIMEOUT = 20.0
WRITE_TIMEOUT = 5.0


def machine_pids(machine: str) -> list[int]:
    ns = nsprocs.netns_id(machine)
    assert ns is not None
    return nsprocs.pids_in_netns(ns)


def member_ids(etcdctl) -> dict[str, int]:
    out = etcdctl("member", "list", "-w", "json")
    assert out.returncode == 0, out.stderr
    return {m["name"]: m["ID"] for m in json.loads(out.stdout)["members"]}


def test_halted_controller_loses_its_processes_and_the_rest_keeps_serving(
    lab: LabInfo, etcdctl, wait_until
) -> None:
    root = Path(lab.root)
    ids = member_ids(etcdctl)
    victim_endpoint = "https://192.168.10.13:2379"
    survivors = [e for e in lab.endpoints if e != victim_endpoint]
    pids = machine_pids("controller-03")
    assert pids

    killed = ops.halt(root, "controller-03")

    assert set(pids) <= set(killed)
    # gone from /proc entirely: killed, and reaped by the supervisor (no zombie left)
    assert [p for p in pids if nsprocs.proc_state(p) is not None] == []
    assert machine_pids("controller-03") == []
    assert {r.name: r.state for r in ops.status(root)}["controller-03"] == "halted"
    # A write in flight to a dead leader is lost and times out; the cluster must take one
    # again as soon as the survivors have elected a new leader.
    assert wait_until(
        lambda: etcdctl("put", "halt-test", "written-while-down", "--command-timeout=1s",
                        endpoints=survivors).returncode == 0,
        WRITE_TIMEOUT,
    )
    get = etcdctl("get", "halt-test", "--print-value-only", endpoints=survivors)
    assert get.stdout.strip() == "written-while-down"

    ops.up_machine(root, "controller-03")

    def caught_up() -> bool:
        got = etcdctl("get", "halt-test", "--print-value-only", "--consistency=s",
                      endpoints=[victim_endpoint])
        return got.stdout.strip() == "written-while-down"

    assert wait_until(caught_up, REJOIN_TIMEOUT)
    assert member_ids(etcdctl) == ids  # the same member rejoined on its data, none was added
    assert etcdctl("endpoint", "health").returncode == 0


def test_partitioned_controller_keeps_running_but_is_unreachable(
    lab: LabInfo, etcdctl, wait_until
) -> None:
    root = Path(lab.root)
    victim_endpoint = "https://192.168.10.12:2379"
    survivors = [e for e in lab.endpoints if e != victim_endpoint]
    # The etcd member stands for the machine's processes: the others (engine, agent) have
    # their own reactions to losing etcd, which are not the lab's to judge.
    pids = [c["pid"] for c in client.request(root, {"op": "status"})["children"]
            if c["machine"] == "controller-02" and c["name"] == "etcd" and c["running"]]
    assert len(pids) == 1

    ops.partition(root, "controller-02")
    try:
        assert all(nsprocs.is_alive(p) for p in pids)
        assert {r.name: r.state for r in ops.status(root)}["controller-02"] == "partitioned"
        assert etcdctl("endpoint", "health", endpoints=[victim_endpoint]).returncode != 0
        assert wait_until(
            lambda: etcdctl("put", "partition-test", "written-during-partition",
                            "--command-timeout=1s", endpoints=survivors).returncode == 0,
            WRITE_TIMEOUT,
        )
        assert all(nsprocs.is_alive(p) for p in pids)
    finally:
        ops.heal(root, "controller-02")

    def caught_up() -> bool:
        got = etcdctl("get", "partition-test", "--print-value-only", "--consistency=s",
                      endpoints=[victim_endpoint])
        return got.stdout.strip() == "written-during-partition"

    assert wait_until(caught_up, REJOIN_TIMEOUT)
    assert all(nsprocs.is_alive(p) for p in pids)  # the same member: nothing restarted
    assert {r.name: r.state for r in ops.status(root)}["controller-02"] == "running"
