import json

import pytest

from stackfleet.openstack import shared_data


@pytest.fixture
def shared(tmp_path):
    return shared_data.SharedLayout(tmp_path / "shared")


def test_mismatch_message_names_each_difference_and_the_way_out(tmp_path):
    found = shared_data.Marker("L3_HA", "2026.2")
    message = shared_data.mismatch_message(found, shared_data.Marker("DVR", "2027.1"), tmp_path)
    assert "ha_mode is L3_HA in the data but DVR in the settings" in message
    assert "release is 2026.2 in the data but 2027.1" in message
    assert "stackfleet data reset" in message and "--yes" in message


def test_matching_marker_has_no_message(tmp_path):
    marker = shared_data.Marker("DVR", "2026.2")
    assert shared_data.mismatch_message(marker, marker, tmp_path) is None


def test_prepare_creates_layout_and_marker_once(shared):
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    assert shared.glance_images.is_dir() and shared.nova_instances.is_dir()
    assert not shared.mysql.exists()  # left for mariadb-install-db
    assert json.loads(shared.marker.read_text()) == {"ha_mode": "L3_HA", "release": "2026.2"}
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    assert shared_data.read_marker(shared) == shared_data.Marker("L3_HA", "2026.2")


def test_changed_ha_mode_is_refused_and_nothing_changes(shared):
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    (shared.glance_images / "img").write_bytes(b"data")
    with pytest.raises(shared_data.DataMismatch, match="data reset"):
        shared_data.prepare(shared, shared_data.Marker("DVR", "2026.2"))
    with pytest.raises(shared_data.DataMismatch):
        shared_data.check(shared, shared_data.Marker("DVR", "2026.2"))
    assert shared_data.read_marker(shared).ha_mode == "L3_HA"
    assert (shared.glance_images / "img").read_bytes() == b"data"


def test_check_without_marker_passes(shared):
    shared_data.check(shared, shared_data.Marker("DVR", "2026.2"))
    assert not shared.root.exists()


def test_reset_deletes_only_the_openstack_data(shared):
    shared_data.prepare(shared, shared_data.Marker("L3_HA", "2026.2"))
    shared.mysql.mkdir()
    (shared.root / "unrelated").write_text("keep")
    targets = shared_data.reset_targets(shared)
    assert shared.mysql in targets and shared.marker in targets
    assert shared_data.reset(shared) == targets
    assert not shared.mysql.exists() and not shared.marker.exists()
    assert (shared.root / "unrelated").read_text() == "keep"
    assert shared_data.reset_targets(shared) == []
