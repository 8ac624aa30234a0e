"""The runtime's pure pieces: exit classification, restart rules, start limit, fence
decisions, journal lines and the /proc process tree."""
from __future__ import annotations

import os
import re
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stackfleet.runtime.fence import KILL_MARGIN, Fence, FenceWatch, read_fence, write_fence
from stackfleet.runtime.journal import MAX_LINE, LineSplitter, format_line
from stackfleet.runtime.policy import Exit, should_restart, start_limit_hit
from stackfleet.runtime.procfs import ProcStat, read_stat, unit_processes


def _exited(code: int) -> int:
    return code << 8


def test_exit_from_wait_status() -> None:
    assert Exit.from_wait_status(_exited(0)) == Exit("exited", 0)
    assert Exit.from_wait_status(_exited(3)) == Exit("exited", 3)
    assert Exit.from_wait_status(signal.SIGKILL) == Exit("killed", 9)
    assert Exit.from_wait_status(signal.SIGSEGV | 0x80) == Exit("dumped", 11)


@pytest.mark.parametrize(
    ("ended", "result", "text"),
    [
        (Exit("exited", 0), "success", "code=exited, status=0/SUCCESS"),
        (Exit("exited", 1), "exit-code", "code=exited, status=1/FAILURE"),
        (Exit("exited", 42), "exit-code", "code=exited, status=42"),
        (Exit("killed", 15), "success", "code=killed, status=15/TERM"),
        (Exit("killed", 9), "signal", "code=killed, status=9/KILL"),
        (Exit("dumped", 11), "core-dump", "code=dumped, status=11/SEGV"),
    ],
)
def test_exit_result_and_description(ended: Exit, result: str, text: str) -> None:
    assert ended.result == result
    assert ended.describe() == text


RESULTS = ("success", "exit-code", "signal", "core-dump", "timeout", "watchdog", "resources")
EXPECTED_RESTARTS = {
    "no": set(),
    "always": set(RESULTS),
    "on-success": {"success"},
    "on-failure": set(RESULTS) - {"success"},
    "on-abnormal": {"signal", "core-dump", "timeout", "watchdog"},
    "on-abort": {"signal", "core-dump"},
    "on-watchdog": {"watchdog"},
}


@pytest.mark.parametrize("policy", sorted(EXPECTED_RESTARTS))
def test_should_restart_follows_systemd_table(policy: str) -> None:
    restarted = {r for r in RESULTS if should_restart(policy, r)}
    assert restarted == EXPECTED_RESTARTS[policy]
    assert not should_restart(policy, "start-limit-hit")


def test_start_limit() -> None:
    assert not start_limit_hit([], 100.0, 10.0, 3)
    assert not start_limit_hit([95.0, 96.0], 100.0, 10.0, 3)
    assert start_limit_hit([95.0, 96.0, 97.0], 100.0, 10.0, 3)
    # starts older than the interval no longer count
    assert not start_limit_hit([80.0, 96.0, 97.0], 100.0, 10.0, 3)
    # 0 turns the limit off
    assert not start_limit_hit([99.0] * 50, 100.0, 0.0, 3)
    assert not start_limit_hit([99.0] * 50, 100.0, 10.0, 0)


def test_fence_watch_valid_then_expired() -> None:
    watch = FenceWatch()
    watch.observe(Fence(stop_at=10.0, kill_at=12.0), now=5.0)
    assert not watch.expired and not watch.must_kill(11.0)
    watch.observe(Fence(stop_at=10.0, kill_at=12.0), now=10.0)
    assert watch.expired and watch.kill_at == 12.0
    # the SIGKILL goes out a margin early so the processes are gone by kill_at
    assert watch.kill_deadline == 12.0 - KILL_MARGIN
    assert not watch.must_kill(12.0 - KILL_MARGIN - 0.01) and watch.must_kill(12.0 - KILL_MARGIN)


def test_fence_watch_stays_expired_and_kill_only_moves_earlier() -> None:
    watch = FenceWatch()
    watch.observe(Fence(stop_at=10.0, kill_at=12.0), now=10.5)
    watch.observe(Fence(stop_at=20.0, kill_at=22.0), now=11.0)  # a late renewal
    assert watch.expired and watch.kill_at == 12.0
    watch.observe(Fence(stop_at=5.0, kill_at=11.5), now=11.0)
    assert watch.kill_at == 11.5


def test_missing_fence_is_expired() -> None:
    first = FenceWatch()
    first.observe(None, now=3.0)
    assert first.expired and first.must_kill(3.0)  # never promised anything: kill now
    later = FenceWatch()
    later.observe(Fence(stop_at=10.0, kill_at=12.0), now=5.0)
    later.observe(None, now=6.0)
    # it still honours the last promise, which the agent made within its lease
    assert later.expired and later.kill_at == 12.0 and not later.must_kill(6.0)
    assert later.must_kill(12.0)


def test_fence_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "fence.json"
    assert read_fence(path) is None
    write_fence(path, Fence(1.5, 2.5))
    assert read_fence(path) == Fence(1.5, 2.5)
    for bad in ("{", "[]", '{"stop_at": 1}', '{"stop_at": "x", "kill_at": 2}'):
        path.write_text(bad)
        assert read_fence(path) is None


def test_format_line_is_journald_short_iso() -> None:
    when = datetime(2026, 11, 25, 6, 31, 25, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_line(when, "host1", "x.service", 42, "text") == (
        "2026-11-25T06:31:25.123456+0100 host1 x.service[42]: text\n")


def test_line_splitter() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb") == ["a"]
    assert splitter.feed(b"c\n\nd") == ["bc", ""]
    assert splitter.feed(b"\xff\n") == ["d\ufffd"]
    assert splitter.flush() == []
    assert splitter.feed(b"tail") == [] and splitter.flush() == ["tail"]
    long = splitter.feed(b"x" * (2 * MAX_LINE + 5))
    assert [len(line) for line in long] == [MAX_LINE, MAX_LINE]
    assert splitter.flush() == ["xxxxx"]


def _stat(pid: int, ppid: int, session: int, state: str = "S") -> ProcStat:
    return ProcStat(pid=pid, state=state, ppid=ppid, pgrp=pid, session=session, start_time=1)


def test_unit_processes_session_and_descendants() -> None:
    shim = 100
    stats = [
        _stat(shim, 1, shim),
        _stat(101, shim, shim),  # main
        _stat(102, 101, shim),  # its child
        _stat(103, shim, 103),  # a daemon that called setsid, reparented to the shim
        _stat(104, 103, 103),  # the daemon's child
        _stat(105, 1, shim),  # orphaned to PID 1 but still in the shim's session
        _stat(106, 101, shim, state="Z"),  # zombies are dead
        _stat(200, 1, 200),  # unrelated
    ]
    assert sorted(s.pid for s in unit_processes(shim, stats)) == [101, 102, 103, 104, 105]


def test_read_stat_of_self() -> None:
    me = read_stat(os.getpid())
    assert me is not None and me.alive
    assert (me.ppid, me.pgrp, me.session) == (os.getppid(), os.getpgrp(), os.getsid(0))
    assert read_stat(2**22 + 1) is None  # above pid_max


def test_journal_timestamp_pattern_matches_now() -> None:
    line = format_line(datetime.now().astimezone(), "h", "u", 1, "x")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4} h u\[1\]: x\n", line)
