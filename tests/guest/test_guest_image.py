"""Boots the image from scripts/build-guest-image under QEMU TCG in a private namespace.

The story as Nova will live it: DHCP with MTU 1450, the key from the metadata service, ssh as
cirros, data written to /data, a clean power-off by the ACPI button, and a second boot on the
same disk that still holds the data and the same host key.
Run alone: PYTHONPATH=$PWD/src /work/main/.venv/bin/python -m pytest tests/guest -q -s
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.probe import (
    DHCP_PORT_IP,
    GATEWAY,
    GUEST_IP,
    HOSTNAME,
    METADATA_IP,
    MTU,
    Guest,
    ProbeNet,
    Ssh,
    missing_tools,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = Path(os.environ.get("STACKFLEET_GUEST_IMAGE", REPO_ROOT / ".guest"))
BOOT_BUDGET = 60.0  # seconds from QEMU start to an ssh login; the goal is well under it

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: creates a network namespace and a tap"
    if not (IMAGE / "manifest.json").exists():
        return f"no guest image in {IMAGE}: run scripts/build-guest-image"
    return missing_tools()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[tuple[ProbeNet, Ssh]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    key = tmp_path / "id_probe"
    # RSA 2048, as `openstack keypair create` makes for myKey.pem.
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(key)],
                   check=True)
    probe = ProbeNet(tmp_path)
    try:
        probe.open(key.with_suffix(".pub").read_text())
        yield probe, Ssh(key, tmp_path / "known_hosts")
    finally:
        probe.close()


def _boot(disk: Path, workdir: Path, name: str, ssh: Ssh, first: bool) -> tuple[Guest, str]:
    """Boots until cirros logs in; returns the guest and its timings (from QEMU's start)."""
    guest = Guest(IMAGE, disk, workdir, name)
    guest.start()
    try:
        guest.wait_marker("ssh ready", BOOT_BUDGET)
        marker_s = time.monotonic() - guest.started
        ssh.wait_login(guest.started + BOOT_BUDGET, first=first)
    except BaseException:
        guest.kill()
        raise
    login_s = time.monotonic() - guest.started
    return guest, f"{login_s:.1f}s to ssh login ({marker_s:.1f}s to the ssh ready marker)"


def test_guest_boots_to_ssh_and_keeps_data_across_reboot(
        net: tuple[ProbeNet, Ssh], tmp_path: Path) -> None:
    probe, ssh = net
    manifest = json.loads((IMAGE / "manifest.json").read_text())
    disk = tmp_path / "disk.img"
    shutil.copyfile(IMAGE / "disk.img", disk)

    guest, boot_times = _boot(disk, tmp_path, "boot1", ssh, first=True)
    try:
        rss_mib = guest.rss_kib() / 1024
        markers = guest.markers()
        assert any(m.startswith(f"stackfleet-guest: dhcp ok {GUEST_IP}/24 mtu {MTU}")
                   for m in markers), markers
        assert any("key from metadata" in m for m in markers), markers
        assert f"{GUEST_IP}:" in probe.metadata_requests()
        assert "url:/latest/meta-data/public-keys/0/openssh-key" in probe.metadata_requests()

        out = ssh("cat /proc/mounts; echo mtu=$(cat /sys/class/net/eth0/mtu);"
                  " echo host=$(hostname) uid=$(id -u); uname -r; ip route;"
                  f" ping -c1 -W2 {GATEWAY} >/dev/null && echo pinged;"
                  " echo hello > /data/f")
        assert out.returncode == 0, out.stderr
        assert "/dev/vda /data ext4 rw" in out.stdout, out.stdout
        assert f"mtu={MTU}" in out.stdout
        assert f"host={HOSTNAME} uid=1000" in out.stdout  # setuid busybox must not make a root shell
        assert manifest["kernel_version"] in out.stdout
        assert "pinged" in out.stdout, "cirros cannot ping"
        assert f"{METADATA_IP} via {DHCP_PORT_IP} dev eth0" in out.stdout, out.stdout
        assert f"default via {GATEWAY} dev eth0" in out.stdout, out.stdout

        shutdown_s = guest.power_button(timeout=30)
        assert any("power button" in m for m in guest.markers())
    finally:
        guest.kill()

    again, reboot_times = _boot(disk, tmp_path, "boot2", ssh, first=False)
    try:
        out = ssh("cat /data/f")
        assert out.returncode == 0, out.stderr  # also fails if the host key changed
        assert out.stdout == "hello\n"
        rss2_mib = again.rss_kib() / 1024
    finally:
        again.kill()

    print(f"\nguest probe: boot {boot_times}; reboot {reboot_times}; "
          f"power-button shutdown {shutdown_s:.1f}s; qemu RSS {rss_mib:.0f} MiB / {rss2_mib:.0f} MiB")


@pytest.mark.parametrize(("content", "marker"), [
    (b"", "data: /dev/vda mounted on /data"),  # blank: formatted first, then mounted
    (b"not a filesystem, keep me" * 64, "data: /dev/vda holds something that is not ext4"),
])
def test_guest_formats_only_a_blank_disk(
        net: tuple[ProbeNet, Ssh], tmp_path: Path, content: bytes, marker: str) -> None:
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.write(content)
        f.truncate(16 * 1024 * 1024)
    before = disk.read_bytes()
    guest = Guest(IMAGE, disk, tmp_path, "data")
    guest.start()
    try:
        guest.wait_marker(marker, BOOT_BUDGET)
        formatted = any("is blank, formatting it" in m for m in guest.markers())
    finally:
        guest.kill()
    assert formatted == (content == b"")
    assert (disk.read_bytes() == before) == (content != b"")
