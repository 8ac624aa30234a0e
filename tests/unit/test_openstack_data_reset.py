"""`data reset` refuses while a controller role runs on the data: its record lives as long as the
role (an etcd lease in the cluster, the publisher's pid stand-alone)."""
import asyncio
import os
import shutil
import subprocess
import sys

import pytest

from stackfleet.openstack import commands, shared_data
from stackfleet.openstack.link import FileClusterLink
from stackfleet.openstack.venv import REPO_ROOT


def prepared(tmp_path) -> shared_data.SharedLayout:
    shared = shared_data.SharedLayout(tmp_path / "shared")
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    return shared


def test_stand_alone_reset_refuses_while_the_publishing_process_lives(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("STACKFLEET_STANDALONE_DIR", str(tmp_path / "cluster"))
    shared = prepared(tmp_path)
    link = FileClusterLink(tmp_path / "cluster")
    asyncio.run(link.publish_controller("127.0.0.9", {}, "ctl-7"))  # this test's own, live, pid
    assert commands.main(["data", "reset", "--yes", "--shared-dir", str(shared.root)]) == 1
    err = capsys.readouterr().err
    assert "a controller role runs on this data on machine ctl-7 (127.0.0.9)" in err
    assert "Nothing was deleted" in err and shared.marker.exists()
    record = (tmp_path / "cluster" / "controller.json")
    record.write_text(record.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    assert asyncio.run(link.controller()) == {}
    assert commands.main(["data", "reset", "--yes", "--shared-dir", str(shared.root)]) == 0
    assert not shared.marker.exists()


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed")
def test_cluster_reset_refuses_while_the_controller_lease_lives_and_names_the_machine(tmp_path):
    from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file
    from stackfleet.registry.localetcd import LocalEtcd
    from stackfleet.registry.records import MachineRecord
    from stackfleet.registry.store import Registry

    shared = prepared(tmp_path)
    with LocalEtcd() as etcd:
        env = {k: v for k, v in os.environ.items() if k != "STACKFLEET_STANDALONE_DIR"} | {
            "STACKFLEET_ENDPOINT": etcd.endpoint, "STACKFLEET_SHARED_DIR": str(shared.root),
            "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO_ROOT / "src"))}

        async def reset() -> subprocess.CompletedProcess:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "stackfleet.openstack", "data", "reset", "--yes", env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())

        async def go() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
            registry = Registry.open([etcd.endpoint])
            machine_lease = registry.lease_keeper(60)
            await registry.register_machine(
                MachineRecord(id="m1", name="ctl-7", public_ip="10.9.0.5"),
                await machine_lease.grant())
            link = EtcdClusterLink(registry, key_file(shared.root), ttl=2)
            await link.publish_controller("10.9.0.5", {}, "ctl-7")
            refused = await reset()
            await link._keeper.revoke()  # what the role's death does, within its TTL
            link._keeping.cancel()
            done = await reset()
            await registry.close()
            return refused, done

        refused, done = asyncio.run(go())
    assert refused.returncode == 1, refused
    assert "a controller role runs on this data on machine ctl-7 (10.9.0.5)" in refused.stderr
    assert "Nothing was deleted" in refused.stderr
    assert done.returncode == 0, done
    assert not shared.marker.exists()
