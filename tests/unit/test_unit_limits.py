"""MemoryMax= and CPUQuota=: systemd's syntax (systemd.resource-control(5)), and verify's errors
at the file and line of a value that systemd, and so the runtime, would refuse."""
from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from stackfleet.cli.main import main
from stackfleet.unit.values import parse_cpu_quota, parse_memory_max, parse_permyriad
from test_unit_support import SERVICE, errors_of

GIB = 1024**3


@pytest.mark.parametrize("text, expected", [
    ("1024", 1024), ("1024B", 1024), ("2K", 2048), ("512M", 512 * 1024**2), ("1.5G", 3 * GIB // 2),
    ("2T", 2 * 1024**4), ("1 G", GIB), ("infinity", None), ("50%", 8 * GIB), ("12.5%", 2 * GIB),
    ("100%", 16 * GIB), ("250‰", 4 * GIB), ("625‱", GIB),
])
def test_memory_max_accepts_systemds_sizes(text: str, expected: int | None) -> None:
    assert parse_memory_max(text, physical=16 * GIB) == expected


@pytest.mark.parametrize("text, fragment", [
    ("lots", "expected a size"), ("5Q", "suffix"), ("512m", "suffix"), ("-1", "expected a size"),
    ("0", "above 0"), ("0%", "above 0"), ("101%", "at most 100%"), ("1.234%", "decimals"),
    ("50 %", "percentage"), ("1G 512M", "expected a size"), ("nan", "expected a size"),
])
def test_memory_max_refuses_what_systemd_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_memory_max(text, physical=16 * GIB)


def test_memory_max_percent_defaults_to_this_hosts_memory() -> None:
    assert parse_memory_max("100%") == parse_memory_max("100%", physical=None) > 0


@pytest.mark.parametrize("text, cpus", [("20%", 0.2), ("150%", 1.5), ("0.5%", 0.005), ("1000‰", 1.0)])
def test_cpu_quota_is_a_percentage_of_one_cpu(text: str, cpus: float) -> None:
    assert parse_cpu_quota(text) == pytest.approx(cpus)


@pytest.mark.parametrize("text, fragment", [
    ("20", "percentage"), ("0%", "above 0%"), ("-5%", "percentage"), ("1.5 CPUs", "percentage"),
    ("12.345%", "decimals"),
])
def test_cpu_quota_refuses_anything_else(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_cpu_quota(text)


def test_permyriad() -> None:
    assert [parse_permyriad(t) for t in ("20%", "12.5%", "12.55%", "7‰", "7.5‰", "3‱")] == [
        2000, 1250, 1255, 70, 75, 3]


@pytest.mark.parametrize("line, fragment, hint", [
    ("MemoryMax=lots", "MemoryMax=lots: expected a size", "MemoryMax=512M"),
    ("MemoryMax=200%", "MemoryMax=200%: a percentage of the physical memory", "up to 100%"),
    ("MemoryMax=0", "MemoryMax=0: a memory limit must be above 0", "infinity"),
    ("CPUQuota=2", "CPUQuota=2: expected a percentage", "CPUQuota=20%"),
    ("CPUQuota=0%", "CPUQuota=0%: expected a percentage above 0%", "CPUQuota=20%"),
])
def test_verify_refuses_a_bad_limit_at_its_line(line: str, fragment: str, hint: str) -> None:
    (error,) = errors_of(SERVICE + "User=nobody\n" + line + "\n")
    assert error.line == 4
    assert fragment in error.message and error.hint is not None and hint in error.hint


def test_good_limits_and_an_empty_reset_pass() -> None:
    from stackfleet.unit import parse_unit

    parse_unit(SERVICE + "MemoryMax=512M\nCPUQuota=150%\nMemoryMax=\nMemoryMax=infinity\n", "a.service")


def test_the_verify_command_prints_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "limits.service"
    path.write_text(SERVICE + "MemoryMax=12 parsecs\nCPUQuota=half\n")
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["verify", str(path)])
    assert code == 1
    assert f"{path}:3: MemoryMax=12 parsecs" in err.getvalue()
    assert f"{path}:4: CPUQuota=half" in err.getvalue()
