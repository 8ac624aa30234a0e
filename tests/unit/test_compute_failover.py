"""The pure parts of a compute failover's measurement: which QEMU argument names an instance disk,
and when two QEMU processes may have shared one."""
from __future__ import annotations

from stackfleet.openstack.compute_failover import INSTANCE_DISK, QemuRun, _first_event, instances_on, overlapping

UUID = "6f0c2b9e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
# As libvirt 9 writes a Nova guest's disks: the instance's own qcow2 over a shared base file.
CMDLINE = b"\0".join([
    b"/usr/bin/qemu-system-x86_64", b"-name", b"guest=instance-00000001,debug-threads=on",
    b"-blockdev", b'{"driver":"file","filename":"/srv/shared/nova/instances/_base/0123abcd",'
                  b'"node-name":"libvirt-2-storage"}',
    b"-blockdev", b'{"driver":"file","filename":"/srv/shared/nova/instances/' + UUID.encode()
                  + b'/disk","node-name":"libvirt-1-storage"}',
    b"-chardev", b"file,id=charserial0,path=/srv/shared/nova/instances/" + UUID.encode() + b"/console.log",
    b"-uuid", UUID.encode()])


def run(pid: int, started: float, ended: float | None, disk: str = "d") -> QemuRun:
    return QemuRun(pid, disk, "i", (1, pid), started, ended)


def test_the_instance_disk_is_found_and_the_base_file_and_console_log_are_not() -> None:
    found = INSTANCE_DISK.findall(CMDLINE)
    assert found == [(f"/srv/shared/nova/instances/{UUID}/disk".encode(), UUID.encode())]
    assert INSTANCE_DISK.search(b"/x/instances/" + UUID.encode() + b"/disk.config") is None


def test_runs_on_one_disk_one_after_the_other_do_not_overlap() -> None:
    assert overlapping([run(1, 1.0, 2.0), run(2, 2.5, None), run(3, 0.5, None, disk="other")]) == []


def test_a_start_before_an_earlier_run_was_seen_gone_is_an_overlap() -> None:
    first, second = run(1, 1.0, 3.0), run(2, 2.5, None)
    assert overlapping([second, first]) == [(first, second)]
    # A run still alive overlaps every later one on its disk.
    assert overlapping([run(1, 1.0, None), run(2, 5.0, 6.0)]) != []


def test_alive_at_a_moment() -> None:
    assert run(1, 1.0, 3.0).alive_at(2.0) and run(1, 1.0, None).alive_at(9.0)
    assert not run(1, 1.0, 3.0).alive_at(4.0) and not run(1, 5.0, None).alive_at(4.0)


def test_instances_on_a_host_and_the_first_event_after_a_moment() -> None:
    servers = [{"id": "b", "host": "compute-01"}, {"id": "a", "host": "compute-01"}, {"id": "c", "host": None}]
    assert instances_on(servers, "compute-01") == ["a", "b"]  # type: ignore[arg-type]
    events = [(5.0, "evacuating x from h"), (7.0, "evacuating y from h"), (6.0, "evacuating z: Nova refused: 409"),
              (1.0, "evacuating old from h")]
    assert _first_event(events, 2.0, "evacuating ") == 5.0
    assert _first_event(events, 8.0, "evacuating ") != _first_event(events, 8.0, "evacuating ")  # NaN: none
