"""The CLI against a real etcd on loopback, without agents: the cluster it names, exit codes,
placement warnings, and the JSON gateway's reads agreeing with the registry's."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from stackfleet.registry.gateway import GatewayReader
from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.registry.records import MachineRecord, ScheduleEntry, UnitState
from stackfleet.registry.store import Registry


def cli(etcd: LocalEtcd, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STACKFLEET_SHARED_DIR": str(tmp)}
    env.pop("STACKFLEET_ENDPOINT", None)
    return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", *args, "--endpoint", etcd.endpoint],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp)


def settings(etcd: LocalEtcd) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with Registry.open([etcd.endpoint]) as registry:
            return await registry.settings()

    return asyncio.run(read())


def test_config_set_writes_to_the_cluster_that_endpoint_names(etcd: LocalEtcd, tmp_path: Path) -> None:
    result = cli(etcd, tmp_path, "config", "set", "region", "RegionTwo")
    assert result.returncode == 0, result.stderr
    assert settings(etcd).get("region") == "RegionTwo"
    shown = cli(etcd, tmp_path, "config", "get", "region")
    assert shown.returncode == 0 and shown.stdout.strip() == "RegionTwo"


def test_a_bad_config_value_exits_1_and_changes_nothing(etcd: LocalEtcd, tmp_path: Path) -> None:
    result = cli(etcd, tmp_path, "config", "set", "HA_MODE", "dvr2")
    assert result.returncode == 1 and "Nothing was changed" in result.stderr
    assert settings(etcd) == {}


def test_no_such_unit_exits_4_for_every_verb(etcd: LocalEtcd, tmp_path: Path) -> None:
    for verb in ("start", "load", "stop", "unload", "destroy", "status", "cat", "journal", "submit"):
        result = cli(etcd, tmp_path, verb, "nosuch.service")
        assert result.returncode == 4, (verb, result.stderr)
        assert "Traceback" not in result.stderr
    assert cli(etcd, tmp_path, "list-unit-files", "--no-legend").stdout == ""


def unit(tmp: Path, name: str, fleet: str, extra: str = "") -> Path:
    path = tmp / name
    path.write_text(f"[Unit]\nDescription=test\n{extra}\n[Service]\nExecStart=/bin/sleep 600\n\n[X-Fleet]\n{fleet}\n")
    return path


def test_start_warns_when_no_machine_matches_now_and_the_unit_waits(etcd: LocalEtcd, tmp_path: Path) -> None:
    path = unit(tmp_path, "later.service", "MachineMetadata=role=compute")
    result = cli(etcd, tmp_path, "start", "--no-block", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}:8: warning: no machine in the cluster has metadata role=compute now" in result.stderr
    [row] = [line.split() for line in cli(etcd, tmp_path, "list-unit-files", "--no-legend").stdout.splitlines()]
    assert row[0] == "later.service" and row[2] == "launched"


def test_start_refuses_a_constraint_that_can_never_match_and_changes_nothing(etcd: LocalEtcd, tmp_path: Path) -> None:
    path = unit(tmp_path, "never.service", "MachineMetadata=role=a,b")
    result = cli(etcd, tmp_path, "start", "--no-block", str(path))
    assert result.returncode == 1
    assert f"{path}:8: MachineMetadata role=a,b can never match" in result.stderr
    assert cli(etcd, tmp_path, "list-unit-files", "--no-legend").stdout == ""


def test_submit_load_and_start_print_the_unit_file_warnings(etcd: LocalEtcd, tmp_path: Path) -> None:
    path = unit(tmp_path, "warned.service", "", extra="After=network.target")
    expected = subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "verify", str(path)],
                              capture_output=True, text=True, timeout=60).stderr
    assert f"{path}:3: warning:" in expected
    for verb in (["submit"], ["load", "--no-block"], ["start", "--no-block"]):
        result = cli(etcd, tmp_path, *verb, str(path))
        assert result.returncode == 0, result.stderr
        assert expected.strip() in result.stderr, verb


def test_the_json_gateway_reads_the_same_records_as_the_registry(etcd: LocalEtcd) -> None:
    async def seed_and_read() -> tuple[object, ...]:
        async with Registry.open([etcd.endpoint]) as r:
            await r.register_machine(MachineRecord("a" * 32, "m1", "127.0.0.1", {"role": "web"}, "/s"), 0)
            await r.register_machine(MachineRecord("b" * 32, "m2", "127.0.0.2", {}, "/t", "ns"), 0)
            from stackfleet.registry.records import JobRecord

            for i in range(3):
                await r.submit(JobRecord(f"u{i}.service", f"h{i}", "launched", {"Global": i == 1}), f"body {i}", False)
            await r.put_many([r.schedule_op("u0.service", "a" * 32, ScheduleEntry("launched", "h0", True)),
                              r.reason_op("u2.service", "no machine has role=db")])
            await r.report_state(UnitState("u0.service", "a" * 32, "h0", "loaded", "active", "running", "now", 7), 0)
            return (await r.machines(), await r.jobs(), await r.schedule(), await r.states(), await r.reasons(),
                    {h: await r.body(h) for h in ("h0", "h1", "h2")})

    *grpc_view, grpc_bodies = asyncio.run(seed_and_read())
    # A dead first endpoint: the reader moves on to the next one.
    reader = GatewayReader(["http://127.0.0.1:1", etcd.endpoint])
    try:
        assert list(reader.cluster()) == grpc_view
        assert reader.bodies(["h0", "h1", "h2", "nope"]) == grpc_bodies
    finally:
        reader.close()
