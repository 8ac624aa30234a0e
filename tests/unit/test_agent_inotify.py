"""The inotify wrapper and the status watch built on it: events, not polling."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from asyncwait import eventually
from stackfleet.agent.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, Inotify
from stackfleet.agent.statuswatch import StatusWatch
from stackfleet.runtime.files import write_json_atomic


def test_inotify_reports_renames_and_writes_into_a_watched_directory(tmp_path: Path) -> None:
    ino = Inotify()
    try:
        wd = ino.watch_dir(tmp_path, IN_MOVED_TO | IN_CLOSE_WRITE)
        assert ino.watch_dir(tmp_path, IN_MOVED_TO | IN_CLOSE_WRITE) == wd  # one watch per directory
        assert ino.read() == []  # nothing happened: no event, and no blocking
        (tmp_path / "tmp").write_text("x")
        os.rename(tmp_path / "tmp", tmp_path / "status.json")
        events = ino.read()
        assert [(e.wd, e.mask & (IN_MOVED_TO | IN_CLOSE_WRITE), e.name) for e in events] == [
            (wd, IN_CLOSE_WRITE, "tmp"), (wd, IN_MOVED_TO, "status.json")]
        ino.unwatch(wd)
        (tmp_path / "other").write_text("y")
        assert all(e.name != "other" for e in ino.read())
    finally:
        ino.close()


def test_inotify_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    ino = Inotify()
    try:
        for path in (tmp_path / "file", tmp_path / "missing"):
            try:
                ino.watch_dir(path, IN_MOVED_TO)
            except OSError as err:
                assert str(path) in str(err)
            else:
                raise AssertionError(f"{path} was watched")
    finally:
        ino.close()


def test_status_watch_wakes_on_a_status_write_of_a_followed_unit_only(tmp_path: Path) -> None:
    units = tmp_path / "units"
    for name in ("a.service", "b.service"):
        (units / name).mkdir(parents=True)

    async def test() -> None:
        changes: list[int] = []
        watch = StatusWatch(lambda name: units / name, lambda: changes.append(1))
        watch.start()
        try:
            assert watch.follow(["a.service", "gone.service"])  # a new watch: read the status once more
            assert not watch.follow(["a.service", "gone.service"])
            write_json_atomic(units / "a.service" / "status.json", {"active": "active"})
            await eventually(lambda: _true(len(changes) > 0), timeout=2)
            changes.clear()
            write_json_atomic(units / "b.service" / "status.json", {"active": "active"})  # not followed
            (units / "a.service" / "journal.log").write_text("a line\n")  # not a status
            await asyncio.sleep(0.2)
            assert changes == []
            assert watch.follow(["b.service"])  # a dropped, b added
            write_json_atomic(units / "a.service" / "status.json", {"active": "inactive"})
            await asyncio.sleep(0.2)
            assert changes == []
            write_json_atomic(units / "b.service" / "status.json", {"active": "inactive"})
            await eventually(lambda: _true(len(changes) > 0), timeout=2)
        finally:
            watch.close()

    asyncio.run(asyncio.wait_for(test(), 10))


async def _true(value: bool) -> bool:
    return value


def test_exit_watch_wakes_when_a_followed_process_ends(tmp_path: Path) -> None:
    import subprocess
    import sys

    from stackfleet.agent.exitwatch import ExitWatch

    async def test() -> None:
        exits: list[int] = []
        watch = ExitWatch(lambda: exits.append(1))
        short = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
        long = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            watch.follow({"a.service": short.pid, "b.service": long.pid})
            await asyncio.sleep(0.1)
            assert exits == []
            await eventually(lambda: _true(exits == [1]), timeout=5)
            watch.follow({"b.service": long.pid})  # no longer followed: its end wakes nothing
            watch.follow({})
            long.kill()
            long.wait()
            await asyncio.sleep(0.2)
            assert exits == [1]
        finally:
            watch.close()
            for p in (short, long):
                p.kill()
                p.wait()

    asyncio.run(asyncio.wait_for(test(), 10))
