"""`lab destroy` keeps the shared data; `--purge` deletes it only once confirmed (CLI layer;
ops.destroy itself is exercised by tests/lab/test_lab_destroy.py)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from stackfleet.cli.main import main
from stackfleet.lab import ops


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def destroyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[bool]:
    """The purge flag of every ops.destroy call; the lab root has shared data."""
    calls: list[bool] = []
    monkeypatch.setattr(ops, "require_root_user", lambda: None)
    monkeypatch.setattr(ops, "destroy", lambda root, say, purge=False: calls.append(purge))
    (tmp_path / "shared" / "mysql").mkdir(parents=True)
    return calls


def destroy(tmp_path: Path, *args: str) -> int:
    return main(["lab", "destroy", "--root", str(tmp_path), *args])


def test_destroy_keeps_the_shared_data_without_asking(destroyed: list[bool], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert destroy(tmp_path) == 0
    assert destroyed == [False]


def test_purge_without_a_terminal_and_without_yes_refuses_and_destroys_nothing(
        destroyed: list[bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("delete\n"))  # piped input is no confirmation
    assert destroy(tmp_path, "--purge") == 1
    assert destroyed == []
    err = capsys.readouterr().err
    assert f"DELETE the shared data in {tmp_path.resolve() / 'shared'}" in err
    assert "pass --yes" in err and "Nothing was destroyed" in err


def test_purge_with_yes_deletes_without_asking(destroyed: list[bool], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert destroy(tmp_path, "--purge", "--yes") == 0
    assert destroyed == [True]


@pytest.mark.parametrize("answer,code,calls", [("delete\n", 0, [True]), ("y\n", 1, []), ("\n", 1, [])])
def test_purge_on_a_terminal_needs_the_word_delete(destroyed: list[bool], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, answer: str,
                                                   code: int, calls: list[bool]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    assert destroy(tmp_path, "--purge") == code
    assert destroyed == calls


def test_purge_of_a_root_without_shared_data_does_not_ask(destroyed: list[bool], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    empty = tmp_path / "other"
    assert destroy(empty, "--purge") == 0
    assert destroyed == [True]


def test_help_says_what_destroy_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lab", "destroy", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "keep" in out and "--purge" in out and "--yes" in out and "shared data" in out
