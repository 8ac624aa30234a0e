"""Markers by layer: tests/integration is `integration`; the lab and OpenStack layers get longer
timeouts than the default in pyproject.toml, unless a test sets its own."""
from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
# Seconds per test for a layer: the lab comes up in seconds, a cloud on it in minutes.
LAYER_TIMEOUTS = {"openstack": 1800, "lab": 600}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeouts = config.pluginmanager.has_plugin("timeout")
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        if not timeouts or item.get_closest_marker("timeout") is not None:
            continue
        layer = next((name for name in LAYER_TIMEOUTS if item.get_closest_marker(name)), None)
        if layer is not None:
            item.add_marker(pytest.mark.timeout(LAYER_TIMEOUTS[layer]))
