"""fleetctl's verbs end to end on loopback: real etcd, a real engine, two real agents and
real unit processes, without the lab (no root needed)."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.registry.localetcd import LocalEtcd
from stackfleet.runtime import ProcessRuntime


class Cluster:
    def __init__(self, etcd: LocalEtcd, root: Path) -> None:
        self.etcd = etcd
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str) -> None:
        log = open(self.root / f"{len(self.procs)}.log", "wb")
        argv = [sys.executable, "-m", "stackfleet.cli.main", "--endpoint", self.etcd.endpoint, *args]
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "--endpoint", self.etcd.endpoint, *args],
                              capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(10)


@pytest.fixture
def cluster(etcd: LocalEtcd, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(etcd, tmp_path)
    c.spawn("engine", "--name", "e1", "--ttl", "3")
    for i in (1, 2):
        state = tmp_path / f"m{i}"
        c.spawn("agent", "--machine-id", f"{i:032x}", "--name", f"m{i}",
                "--metadata", f"role={'web' if i == 1 else 'db'}", "--public-ip", f"127.0.0.{i}",
                "--state-dir", str(state), "--shared-dir", str(tmp_path), "--ttl", "3")
    deadline = time.monotonic() + 20
    while c.cli("list-machines", "--no-legend").stdout.count("\n") < 2:
        assert time.monotonic() < deadline, "agents did not register"
        time.sleep(0.2)
    try:
        yield c
    finally:
        c.stop()
        # Units outlive their agent by design (a restarted agent adopts them): end them here.
        for i in (1, 2):
            runtime = ProcessRuntime(tmp_path / f"m{i}" / "runtime")
            for name in runtime.units():
                runtime.kill(name)
        time.sleep(0.5)
        shims_left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and str(tmp_path) in _cmdline(p)]
        assert not shims_left or all(_state(p) == "Z" for p in shims_left)


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _state(p: Path) -> str:
    try:
        return (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def unit(tmp: Path, name: str, text: str, role: str = "web") -> Path:
    path = tmp / name
    path.write_text(f"[Service]\n{text}\n\n[X-Fleet]\nMachineMetadata=role={role}\n")
    return path


def rows(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()[1:]]


def test_submit_load_start_stop_unload_destroy(cluster: Cluster, tmp_path: Path) -> None:
    path = unit(tmp_path, "hello.service",
                "ExecStart=/bin/sh -c 'echo hello from $STACKFLEET_MACHINE_NAME; exec sleep 600'")
    assert cluster.cli("submit", str(path)).returncode == 0
    assert rows(cluster.cli("list-unit-files"))[0][2:4] == ["inactive", "inactive"]
    assert rows(cluster.cli("list-units")) == []

    loaded = cluster.cli("load", "--block-attempts", "20", "hello.service")
    assert loaded.returncode == 0, loaded.stderr
    assert rows(cluster.cli("list-unit-files"))[0][2:4] == ["loaded", "loaded"]

    started = cluster.cli("start", "--block-attempts", "20", "hello.service")
    assert started.returncode == 0 and "launched on" in started.stdout
    [[name, machine, active, sub]] = rows(cluster.cli("list-units"))
    assert (name, active, sub) == ("hello.service", "active", "running") and machine.endswith("/127.0.0.1")
    journal = cluster.cli("journal", "hello.service")
    assert "hello from m1" in journal.stdout
    assert cluster.cli("status", "hello.service").returncode == 0

    assert cluster.cli("stop", "--block-attempts", "20", "hello.service").returncode == 0
    [[_, _, active, _]] = rows(cluster.cli("list-units"))
    assert active in ("inactive", "failed")
    assert cluster.cli("status", "hello.service").returncode == 3

    assert cluster.cli("unload", "--block-attempts", "20", "hello.service").returncode == 0
    assert rows(cluster.cli("list-units")) == []
    assert cluster.cli("destroy", "hello.service").returncode == 0
    assert rows(cluster.cli("list-unit-files")) == []
    assert cluster.cli("status", "hello.service").returncode == 4


def test_replace_restarts_the_unit_with_its_new_body(cluster: Cluster, tmp_path: Path) -> None:
    path = unit(tmp_path, "ver.service", "ExecStart=/bin/sh -c 'echo version one; exec sleep 600'")
    assert cluster.cli("start", "--block-attempts", "20", str(path)).returncode == 0
    unit(tmp_path, "ver.service", "ExecStart=/bin/sh -c 'echo version two; exec sleep 600'")
    refused = cluster.cli("start", str(path))
    assert refused.returncode == 1 and "--replace" in refused.stderr
    assert cluster.cli("start", "--replace", "--block-attempts", "20", str(path)).returncode == 0
    deadline = time.monotonic() + 20
    while "version two" not in cluster.cli("journal", "--lines", "50", "ver.service").stdout:
        assert time.monotonic() < deadline, "the new body did not start"
        time.sleep(0.3)
    assert "version two" in cluster.cli("cat", "ver.service").stdout


def test_template_instances_and_metadata_placement(cluster: Cluster, tmp_path: Path) -> None:
    unit(tmp_path, "db@.service", "ExecStart=/bin/sh -c 'echo instance %i; exec sleep 600'", role="db")
    started = cluster.cli("start", "--block-attempts", "20",
                          str(tmp_path / "db@1.service"), str(tmp_path / "db@2.service"))
    assert started.returncode == 0, started.stderr
    listed = rows(cluster.cli("list-units"))
    assert [r[0] for r in listed] == ["db@1.service", "db@2.service"]
    assert all(r[1].endswith("/127.0.0.2") and r[2] == "active" for r in listed)  # only m2 has role=db
    assert "instance 2" in cluster.cli("journal", "db@2.service").stdout
    template = cluster.cli("start", str(tmp_path / "db@.service"))
    assert template.returncode == 1 and "template" in template.stderr
