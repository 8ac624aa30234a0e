"""Registers the timeout mark, so that these tests run clean with or without pytest-timeout."""
from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "timeout(seconds): fail the test after that long")
