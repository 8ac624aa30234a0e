"""Hiding directories from a unit's process in a mount namespace of its own (needs root)."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.runtime import privatedirs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")


def in_child(body: object) -> int:
    """Runs body() in a forked child; its exit status (0: every check held)."""
    pid = os.fork()
    if pid == 0:
        try:
            body()  # type: ignore[operator]
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory that any user can reach (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="stackfleet-privatedirs-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_a_hidden_directory_is_empty_for_the_process_but_for_the_files_it_keeps(open_dir: Path) -> None:
    tmp_path = open_dir
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("ca.key", "admin.key", "units.key", "ca.crt"):
        (pki / name).write_text(name)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "settings.key").write_text("sealing key")

    def confined() -> None:
        privatedirs.hide([str(pki), str(secrets)], [str(pki / "ca.crt"), str(pki / "units.key")], uid=65534)
        assert sorted(p.name for p in pki.iterdir()) == ["ca.crt", "units.key"]
        assert (pki / "units.key").read_text() == "units.key"
        assert (pki / "units.key").stat().st_mode & 0o777 == 0o600
        assert (pki / "units.key").stat().st_uid == 65534  # the unit's User=, who must read it
        assert list(secrets.iterdir()) == []
        os.setuid(65534)  # as the unit's User=: its own key, nothing else
        assert (pki / "units.key").read_text() == "units.key"
        with pytest.raises(PermissionError):
            list(pki.iterdir())

    assert in_child(confined) == 0
    # The machine sees everything still: nothing propagated back.
    assert sorted(p.name for p in pki.iterdir()) == ["admin.key", "ca.crt", "ca.key", "units.key"]
    assert (secrets / "settings.key").read_text() == "sealing key"

