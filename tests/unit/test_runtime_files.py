import os
import stat

from stackfleet.runtime.files import read_json, write_json_atomic, write_text_atomic


def test_private_atomic_write_has_its_mode_even_over_a_leftover_temporary(tmp_path):
    path = tmp_path / "settings.json"
    leftover = tmp_path / f".settings.json.{os.getpid()}.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    write_json_atomic(path, {"b": 1, "a": 2}, mode=0o600, indent=1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{\n "a": 2,\n "b": 1\n}'
    assert read_json(path) == {"a": 2, "b": 1} and not leftover.exists()


def test_atomic_text_without_a_mode_keeps_the_umask_default(tmp_path):
    path = tmp_path / "plain.conf"
    write_text_atomic(path, "x = 1\n")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "x = 1\n"
