"""lab.json and machine ids (files in a temporary dir; no root, no namespaces)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackfleet.lab import state
from stackfleet.lab.state import LabInfo, MachineInfo, load_lab, machine_id_for, read_lab, save_lab


def sample(root: Path) -> LabInfo:
    return LabInfo(
        root=str(root), cluster_token="t", counts={"controller": 1, "network": 0, "compute": 0,
                                                  "nova-docker": 0},
        ttl=5, processes=["etcd"], venv="/venv", endpoints=["http://192.168.10.11:2379"],
        shared_dir=str(root / "shared"),
        machines=[MachineInfo("controller-01", "controller", "ab" * 16, "controller-01",
                              {"mgmt": "192.168.10.11", "tunnel": "172.16.0.11",
                               "external": "10.0.5.11"}, str(root / "machines/controller-01"))],
    )


def test_lab_json_round_trips(tmp_path: Path) -> None:
    save_lab(sample(tmp_path))
    assert read_lab(tmp_path) == sample(tmp_path)


def test_load_lab_needs_the_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_lab(sample(tmp_path))
    netns = tmp_path / "netns"
    netns.mkdir()
    monkeypatch.setattr(state, "NETNS_DIR", netns)
    assert load_lab(tmp_path) is None  # recorded, but not up (e.g. after a reboot)
    (netns / "controller-01").touch()
    assert load_lab(tmp_path) == sample(tmp_path)
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    assert state.default_endpoints() == ["http://192.168.10.11:2379"]
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path / "elsewhere"))
    assert state.default_endpoints() is None


def test_machine_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = machine_id_for(tmp_path / "m")
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert machine_id_for(tmp_path / "m") == first
    assert machine_id_for(tmp_path / "other") != first
