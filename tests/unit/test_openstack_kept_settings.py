"""The settings travel with the shared data: a new etcd cluster on kept data finds the passwords
that the data was made with, not fresh ones (lab destroy keeps the data; lab up makes a new etcd)."""
from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from stackfleet.openstack import settings
from stackfleet.openstack.etcdlink import EtcdClusterLink, kept_settings_file, key_file
from stackfleet.registry.fake import FakeRegistry


def first_use(link: EtcdClusterLink) -> dict[str, str]:
    async def go() -> dict[str, str]:
        return await link.add_settings(settings.missing_defaults(await link.settings()))
    return asyncio.run(go())


def test_a_new_cluster_on_kept_data_gets_the_kept_passwords(tmp_path: Path) -> None:
    key = key_file(tmp_path / "shared")
    first = first_use(EtcdClusterLink(FakeRegistry(), key))
    copy = kept_settings_file(key)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    stored = json.loads(copy.read_text())
    assert all(stored[k].startswith("fernet:") and first[k] not in copy.read_text()
               for k in settings.PASSWORD_KEYS), "the copy holds the passwords sealed, never in clear"
    again = first_use(EtcdClusterLink(FakeRegistry(), key))  # a new, empty etcd
    assert again == first


def test_a_changed_setting_is_kept_too(tmp_path: Path) -> None:
    key = key_file(tmp_path / "shared")
    link = EtcdClusterLink(FakeRegistry(), key)
    first_use(link)
    asyncio.run(link.set_setting("ha_mode", "DVR"))
    assert first_use(EtcdClusterLink(FakeRegistry(), key))["ha_mode"] == "DVR"


def test_without_kept_settings_a_new_cluster_generates_its_own(tmp_path: Path) -> None:
    one = first_use(EtcdClusterLink(FakeRegistry(), key_file(tmp_path / "a")))
    two = first_use(EtcdClusterLink(FakeRegistry(), key_file(tmp_path / "b")))
    assert all(one[k] != two[k] for k in settings.PASSWORD_KEYS)
