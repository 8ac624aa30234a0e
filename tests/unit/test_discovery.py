from pathlib import Path

import pytest

from stackfleet import discovery


@pytest.fixture
def no_lab(tmp_path, monkeypatch):
    for name in ("STACKFLEET_ENDPOINT", "STACKFLEET_ENDPOINTS", "STACKFLEET_PREFIX",
                 "STACKFLEET_SHARED_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STACKFLEET_LAB_ROOT", str(tmp_path / "no-lab"))


def test_endpoints_flag_then_env_then_local_etcd(no_lab, monkeypatch):
    assert discovery.resolve_endpoints(None) == ["http://127.0.0.1:2379"]
    monkeypatch.setenv("STACKFLEET_ENDPOINT", "http://a:1, http://b:2,")
    assert discovery.resolve_endpoints(None) == ["http://a:1", "http://b:2"]
    assert discovery.resolve_endpoints("http://c:3") == ["http://c:3"]


def test_prefix_and_shared_dir_follow_the_environment(no_lab, monkeypatch):
    assert discovery.prefix() == "/stackfleet"
    assert discovery.shared_dir() == Path("/var/lib/stackfleet/shared")
    monkeypatch.setenv("STACKFLEET_PREFIX", "/other")
    monkeypatch.setenv("STACKFLEET_SHARED_DIR", "/srv/shared")
    assert discovery.prefix() == "/other"
    assert discovery.shared_dir() == Path("/srv/shared")


def test_open_registry_uses_the_prefix(no_lab, monkeypatch):
    monkeypatch.setenv("STACKFLEET_PREFIX", "/bench-1")
    registry = discovery.open_registry("http://127.0.0.1:1")
    assert registry.keys.machines() == b"/bench-1/machines/"
