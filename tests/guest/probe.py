"""A private network namespace that plays Neutron and Nova's metadata service for one guest.

It holds a tap for QEMU, busybox udhcpd (10.99.0.x, MTU 1450 as Neutron hands out on VXLAN) and
busybox httpd on 169.254.169.254 serving the EC2-style public key. Nothing leaves the namespace.
Every process is started here and stopped by its PID.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NETNS = "sfprobe-guest"
TAP = "sfptap0"
GATEWAY = "10.99.0.1"
DHCP_PORT_IP = "10.99.0.2"  # Neutron's DHCP port: option 121 routes the metadata service through it
GUEST_IP = "10.99.0.10"
GUEST_MAC = "52:54:00:99:00:10"
METADATA_IP = "169.254.169.254"
MTU = 1450
HOSTNAME = "probe-vm"
MARKER = "stackfleet-guest:"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True)


def in_netns(*args: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *args]


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stop one child we started, by its PID: TERM, then KILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass
class ProbeNet:
    """The namespace and its two servers; `close` removes all of it."""

    workdir: Path
    dhcpd: subprocess.Popen[bytes] | None = None
    httpd: subprocess.Popen[bytes] | None = None

    def open(self, public_key: str) -> None:
        if Path(f"/run/netns/{NETNS}").exists():
            run("ip", "netns", "del", NETNS)  # left over from an interrupted run of this probe
        run("ip", "netns", "add", NETNS)
        run(*in_netns("ip", "link", "set", "lo", "up"))
        run(*in_netns("ip", "addr", "add", f"{METADATA_IP}/32", "dev", "lo"))
        run(*in_netns("ip", "tuntap", "add", "dev", TAP, "mode", "tap"))
        run(*in_netns("ip", "link", "set", TAP, "mtu", str(MTU), "up"))
        run(*in_netns("ip", "addr", "add", f"{GATEWAY}/24", "dev", TAP))
        run(*in_netns("ip", "addr", "add", f"{DHCP_PORT_IP}/24", "dev", TAP))
        self._serve_metadata(public_key)
        self._serve_dhcp()

    def _serve_metadata(self, public_key: str) -> None:
        docroot = self.workdir / "metadata"
        meta = docroot / "latest" / "meta-data"
        (meta / "public-keys" / "0").mkdir(parents=True)
        (meta / "public-keys" / "0" / "openssh-key").write_text(public_key)
        (meta / "hostname").write_text(f"{HOSTNAME}.novalocal")
        self.httpd = subprocess.Popen(
            in_netns("busybox", "httpd", "-f", "-vv", "-p", f"{METADATA_IP}:80", "-h", str(docroot)),
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "httpd.log", "wb"))

    def _serve_dhcp(self) -> None:
        conf = self.workdir / "udhcpd.conf"
        conf.write_text(
            f"start 10.99.0.10\nend 10.99.0.20\ninterface {TAP}\n"
            f"lease_file {self.workdir / 'udhcpd.leases'}\npidfile {self.workdir / 'udhcpd.pid'}\n"
            f"static_lease {GUEST_MAC} {GUEST_IP}\n"
            f"option subnet 255.255.255.0\noption router {GATEWAY}\noption dns {GATEWAY}\n"
            f"option mtu {MTU}\noption lease 3600\n"
            # As Neutron's dnsmasq does with isolated metadata: RFC 3442 routes replace option 3.
            f"option staticroutes {METADATA_IP}/32 {DHCP_PORT_IP}, 0.0.0.0/0 {GATEWAY}\n")
        (self.workdir / "udhcpd.leases").touch()
        self.dhcpd = subprocess.Popen(
            in_netns("busybox", "udhcpd", "-f", str(conf)),
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "udhcpd.log", "wb"))

    def metadata_requests(self) -> str:
        return (self.workdir / "httpd.log").read_text(errors="replace")

    def close(self) -> None:
        stop(self.httpd)
        stop(self.dhcpd)
        if Path(f"/run/netns/{NETNS}").exists():
            run("ip", "netns", "del", NETNS)


class Guest:
    """One QEMU (TCG) boot of the image on a copy of its disk, serial console to a file."""

    def __init__(self, image: Path, disk: Path, workdir: Path, name: str, memory_mib: int = 128):
        self.console = workdir / f"{name}.console.log"
        self.monitor = workdir / f"{name}.monitor.sock"
        self.command = in_netns(
            "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mib), "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", f"file:{self.console}",
            "-monitor", f"unix:{self.monitor},server,nowait",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", "console=tty0 console=ttyS0,115200",
            "-drive", f"file={disk},if=virtio,format=raw",
            "-netdev", f"tap,id=net0,ifname={TAP},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        # `ip netns exec` execs QEMU, so this PID is QEMU's own.
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def markers(self) -> list[str]:
        if not self.console.exists():
            return []
        text = self.console.read_text(errors="replace")
        return [line.strip() for line in text.splitlines() if line.startswith(MARKER)]

    def wait_marker(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.failure("qemu exited")
            found = [m for m in self.markers() if m.startswith(f"{MARKER} {prefix}")]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(self.failure(f"no marker {prefix!r} after {timeout}s"))

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def power_button(self, timeout: float) -> float:
        """Press the ACPI power button as libvirt's clean shutdown does; seconds until QEMU exits."""
        assert self.proc is not None
        pressed = time.monotonic()
        with socket.socket(socket.AF_UNIX) as mon:
            mon.connect(str(self.monitor))
            mon.sendall(b"system_powerdown\n")
            time.sleep(0.2)
        self.proc.wait(timeout)
        return time.monotonic() - pressed

    def failure(self, what: str) -> str:
        tail = self.console.read_text(errors="replace")[-3000:] if self.console.exists() else ""
        return f"{what}; console tail:\n{tail}"

    def kill(self) -> None:
        stop(self.proc)


class Ssh:
    """ssh from inside the namespace with the probe's key; known_hosts pins the guest's host key."""

    def __init__(self, key: Path, known_hosts: Path):
        self.key = key
        self.known_hosts = known_hosts

    def __call__(self, command: str, *, first: bool = False,
                 timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        # The first login learns the host key; later ones insist on the same key.
        checking = "accept-new" if first else "yes"
        return subprocess.run(
            in_netns("ssh", "-i", str(self.key), "-o", f"StrictHostKeyChecking={checking}",
                     "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
                     "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR",
                     f"cirros@{GUEST_IP}", command),
            capture_output=True, text=True, timeout=timeout)

    def wait_login(self, deadline: float, first: bool) -> None:
        last = ""
        while time.monotonic() < deadline:
            try:
                result = self("true", first=first, timeout=10)
            except subprocess.TimeoutExpired:
                continue
            if result.returncode == 0:
                return
            last = result.stderr
            time.sleep(0.5)
        raise AssertionError(f"no ssh login: {last}")


def missing_tools() -> str | None:
    for tool in ("qemu-system-x86_64", "busybox", "ssh", "ssh-keygen", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool}: run scripts/build-guest-image"
    return None
