"""`stackfleet status` shows the unit's memory and CPU from its cgroup, as systemctl does."""
from __future__ import annotations

from stackfleet.cli.status import usage_lines
from stackfleet.runtime.cgroup import Usage


def test_memory_and_cpu_lines() -> None:
    assert usage_lines(Usage(memory_bytes=3 * 1024**2 // 2, cpu_usec=2_500_000)) == [
        "   Memory: 1.5 MiB", "      CPU: 2.500s"]


def test_no_lines_where_the_runtime_cannot_tell() -> None:
    assert usage_lines(None) == []
    assert usage_lines(Usage(memory_bytes=None, cpu_usec=40_000)) == ["      CPU: 40ms"]
