import argparse
import asyncio
import io
import json
import stat

import pytest

from stackfleet.openstack import commands, shared_data
from stackfleet.openstack.cell_hosts import new_hosts
from stackfleet.openstack.link import FileClusterLink
from stackfleet.openstack.workflow import SeedRecord, image_payload


@pytest.fixture
def standalone(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKFLEET_STANDALONE_DIR", str(tmp_path / "cluster"))
    return tmp_path / "cluster"


def main(*argv: str) -> int:
    return commands.main(list(argv))


def test_register_adds_every_command():
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    for argv in (["role", "run", "compute", "--address", "127.0.0.1"], ["config", "show"],
                 ["config", "set", "HA_MODE", "DVR"], ["config", "get", "region"],
                 ["data", "reset", "--yes"], ["openstack", "credentials"]):
        assert callable(parser.parse_args(argv).func)


def test_config_set_validates_and_changes_nothing_on_bad_input(standalone, capsys):
    assert main("config", "set", "HA_MODE", "dvr2") == 1  # README: bad input exits 1
    assert "L3_HA or DVR" in capsys.readouterr().err
    assert not (standalone / "settings.json").exists()
    assert main("config", "set", "HA_MODE", "dvr") == 0
    assert main("config", "get", "ha_mode") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "DVR"
    mode = stat.S_IMODE((standalone / "settings.json").stat().st_mode)
    assert mode == 0o600


def test_config_show_masks_passwords(standalone, capsys):
    asyncio.run(FileClusterLink(standalone).add_settings({"admin_password": "s3cret-long-enough"}))
    assert main("config", "show") == 0
    out = capsys.readouterr().out
    assert "admin_password = ********" in out and "s3cret" not in out
    assert "region = RegionOne" in out


def test_data_reset_without_confirmation_deletes_nothing(standalone, tmp_path, monkeypatch, capsys):
    shared = shared_data.SharedLayout(tmp_path / "shared")
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert main("data", "reset", "--shared-dir", str(shared.root)) == 1
    assert shared.marker.exists() and shared.glance_images.exists()
    assert "Nothing was deleted" in capsys.readouterr().err
    assert main("data", "reset", "--yes", "--shared-dir", str(shared.root)) == 0
    assert not shared.marker.exists() and not shared.glance_images.exists()


def test_credentials_need_a_published_controller(standalone, capsys):
    link = FileClusterLink(standalone, poll_interval=0.01)
    assert main("openstack", "credentials", "--timeout", "0.2") == 1
    from stackfleet.openstack.settings import DEFAULTS, missing_defaults
    asyncio.run(link.add_settings({**DEFAULTS, **missing_defaults({})}))
    asyncio.run(link.publish_controller("127.0.0.9", {"keystone": True}, "ctl-7"))
    capsys.readouterr()
    assert main("openstack", "credentials") == 0
    out = capsys.readouterr().out
    assert 'auth_url: "http://127.0.0.9:5000/v3"' in out and "export OS_PASSWORD=" in out


def test_file_link_add_settings_keeps_existing_values(tmp_path):
    link = FileClusterLink(tmp_path)
    first = asyncio.run(link.add_settings({"nova_password": "a" * 20}))
    second = asyncio.run(link.add_settings({"nova_password": "b" * 20, "region": "R2"}))
    assert first["nova_password"] == second["nova_password"] == "a" * 20
    assert second["region"] == "R2"


def test_file_link_yields_each_new_controller_address(tmp_path):
    link = FileClusterLink(tmp_path, poll_interval=0.01)

    async def go():
        seen = []
        changes = link.controller_address_changes()
        await link.publish_controller("127.0.0.2", {"keystone": True}, "ctl-7")
        seen.append(await anext(changes))
        await link.publish_controller("127.0.0.2", {"x": True}, "ctl-7")
        # A controller announces itself before its services boot: followers stay where they are.
        await link.publish_controller("127.0.0.3", {}, "ctl-7")
        following = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.2)
        assert not following.done()
        await link.publish_controller("127.0.0.3", {"keystone": False}, "ctl-7")
        seen.append(await following)
        await changes.aclose()
        return seen
    assert asyncio.run(go()) == ["127.0.0.2", "127.0.0.3"]


def test_caretaker_discovers_only_new_compute_hosts():
    services = [("nova-compute", "c1"), ("nova-scheduler", "ctl"), ("nova-compute", "c2")]
    assert new_hosts(services, {"c1"}) == {"c2"}
    assert new_hosts(services, {"c1", "c2"}) == set()


def test_image_payload_is_deterministic_per_seed():
    assert image_payload("a", 1000) == image_payload("a", 1000)
    assert image_payload("a", 1000) != image_payload("b", 1000)
    assert len(image_payload("a", 1000)) == 1000


def test_seed_record_round_trips():
    record = SeedRecord(*["x"] * 3, 5, *["y"] * 11)
    assert SeedRecord.from_json(record.to_json()) == record
    assert json.loads(record.to_json())["image_size"] == 5
