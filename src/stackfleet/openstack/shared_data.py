"""The shared data layout and its marker.

    SHARED/mysql/            MariaDB datadir (one server at a time: the controller role is exclusive)
    SHARED/keystone/         Keystone's fernet and credential keys (tokens survive a failover)
    SHARED/glance/images/    Glance file store
    SHARED/nova/instances/   Nova instances_path, shared by every compute machine (evacuation)
    SHARED/stackfleet-data.json   the marker: HA_MODE and release the data was made with
    SHARED/stackfleet-schemas.json   which install last synced the database schemas

RabbitMQ keeps no state here: see controller.py for why it is recreated on every start.
A marker that does not match the settings refuses the start. Data is only ever deleted by
`stackfleet data reset`, which asks first.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from stackfleet.runtime.files import write_json_atomic

MARKER_NAME = "stackfleet-data.json"
SCHEMA_STAMP_NAME = "stackfleet-schemas.json"  # which install last synced the schemas
DATA_DIRS = ("mysql", "keystone", "glance", "nova")


@dataclass(frozen=True)
class Marker:
    ha_mode: str
    release: str


@dataclass(frozen=True)
class SharedLayout:
    root: Path

    @property
    def mysql(self) -> Path:
        return self.root / "mysql"

    @property
    def keystone_keys(self) -> Path:
        return self.root / "keystone"

    @property
    def glance_images(self) -> Path:
        return self.root / "glance" / "images"

    @property
    def nova_instances(self) -> Path:
        return self.root / "nova" / "instances"

    @property
    def marker(self) -> Path:
        return self.root / MARKER_NAME

    @property
    def schema_stamp(self) -> Path:
        return self.root / SCHEMA_STAMP_NAME


class DataMismatch(RuntimeError):
    """The shared data was made with other settings than the cluster has now."""


def mismatch_message(found: Marker, wanted: Marker, root: Path) -> str | None:
    """None when the data fits the settings, else a message naming each difference and the way out."""
    diffs = [f"{name} is {getattr(found, name)} in the data but {getattr(wanted, name)} in the settings"
             for name in ("ha_mode", "release") if getattr(found, name) != getattr(wanted, name)]
    if not diffs:
        return None
    return (f"refusing to start on the shared data in {root}: " + "; ".join(diffs) + ". "
            "Either set the setting back (stackfleet config set ...), or delete the data with "
            "`stackfleet data reset` (asks for confirmation; --yes skips it). "
            "Nothing was changed.")


def read_marker(layout: SharedLayout) -> Marker | None:
    try:
        raw = json.loads(layout.marker.read_text())
    except FileNotFoundError:
        return None
    return Marker(ha_mode=raw["ha_mode"], release=raw["release"])


def check(layout: SharedLayout, wanted: Marker) -> None:
    """Raises DataMismatch if the data was made with other settings; writes nothing."""
    found = read_marker(layout)
    if found is not None:
        message = mismatch_message(found, wanted, layout.root)
        if message:
            raise DataMismatch(message)


def prepare(layout: SharedLayout, wanted: Marker) -> None:
    """Checks the marker, then creates the layout and the marker on first use (controller only)."""
    check(layout, wanted)
    # mysql/ is left to mariadb-install-db, which must find it absent.
    for path in (layout.keystone_keys, layout.glance_images, layout.nova_instances):
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root, 0o700)
    if not layout.marker.exists():
        write_json_atomic(layout.marker, {"ha_mode": wanted.ha_mode, "release": wanted.release})


def reset_targets(layout: SharedLayout) -> list[Path]:
    """What `data reset` deletes: the data dirs and the marker that exist."""
    paths = [layout.root / d for d in DATA_DIRS] + [layout.marker, layout.schema_stamp]
    return [p for p in paths if p.exists()]


def reset(layout: SharedLayout) -> list[Path]:
    """Deletes the shared OpenStack data. Call only after the user confirmed."""
    targets = reset_targets(layout)
    for path in targets:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return targets
