"""libvirtd for the compute role: one daemon per machine, in the foreground, as the role's child.

Every lab machine shares the host's /run, /var/lib, /etc and /var/log, so two libvirtds would
share one socket, one domain list and one config. Each runs in a private mount namespace of its
own instead, with those directories bind-mounted from STATE/libvirt/ (DESIGN.md, "The data plane").
Its /etc/libvirt is a copy of the host's without the autostarted default network (which would
bring up a virbr0 and a dnsmasq of its own).

qemu.conf keeps QEMU inside the compute unit's cgroup (no cgroup controllers, no namespaces of
its own), so that stopping, fencing or halting the machine reaches every guest, and leaves file
ownership alone (root runs everything; the disks are on shared storage).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from stackfleet.openstack import quoting
from stackfleet.openstack.role_supervisor import ServiceSpec

HOST_ETC = Path("/etc/libvirt")
LIBVIRTD = "/usr/sbin/libvirtd"
# (dir under STATE/libvirt, where libvirtd sees it)
MOUNTS = (("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"), ("etc", "/etc/libvirt"),
          ("log", "/var/log/libvirt"), ("cache", "/var/cache/libvirt"))
DEFAULT_NETWORK = Path("qemu/networks/autostart/default.xml")


def _conf(values: Mapping[str, object]) -> str:
    """libvirt's config syntax: strings quoted, numbers bare, lists in brackets."""
    def value(v: object) -> str:
        if isinstance(v, (list, tuple)):
            return "[ " + ", ".join(value(x) for x in v) + " ]"
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))
    return "".join(f"{k} = {value(v)}\n" for k, v in values.items())


def qemu_conf() -> str:
    return _conf({
        "user": "root", "group": "root", "dynamic_ownership": 0, "remember_owner": 0,
        "security_driver": "none",
        # QEMU stays in libvirtd's cgroup, the unit's: the fence and `lab halt` must reach it.
        "cgroup_controllers": [], "namespaces": [],
        # No virtlogd here: libvirtd writes QEMU's output and the console logs itself.
        "stdio_handler": "file",
    })


def libvirtd_conf(root: Path) -> str:
    return _conf({
        "unix_sock_group": "root", "unix_sock_rw_perms": "0700", "auth_unix_rw": "none",
        "auth_unix_ro": "none",
        "log_outputs": f"3:file:{root / 'log' / 'libvirtd.log'}",
    })


def state_root(state: Path) -> Path:
    """STATE/libvirt: what libvirtd sees as its /run/libvirt, /var/lib/libvirt, /etc/libvirt..."""
    return state / "libvirt"


def socket_path(root: Path) -> Path:
    """libvirtd's read-write socket as seen from outside its mount namespace."""
    return root / "run" / "libvirt-sock"


def connection_uri(root: Path) -> str:
    return f"qemu+unix:///system?socket={socket_path(root)}"


def launch_script(root: Path, host: str) -> str:
    """The shell that builds libvirtd's mount namespace, then becomes libvirtd (pure).
    libvirtd also gets its own UTS namespace named `host`: Nova names the compute node (and its
    placement resource provider) after the hypervisor's host name, which all lab machines share."""
    q = quoting.shell
    lines = ["set -e", f"hostname {q(host)}",
             # A fresh /run: the host's holds other daemons' sockets and pid files.
             "mount -t tmpfs stackfleet-libvirt-run /run",
             "mkdir -p /run/lock " + " ".join(q(target) for _, target in MOUNTS if
                                              target.startswith("/run/"))]
    lines += [f"mkdir -p {q(target)} && mount --bind {q(str(root / src))} {q(target)}"
              for src, target in MOUNTS]
    lines.append(f"exec {LIBVIRTD} -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid")
    return "\n".join(lines)


def prepare(root: Path) -> None:
    """STATE/libvirt: fresh run/ and log/ dirs, the config copy, and our two config files.
    lib/ keeps libvirt's state (domain definitions Nova re-creates anyway) across restarts."""
    for src, _ in MOUNTS:
        path = root / src
        if src in ("run", "etc"):
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    etc = root / "etc"
    shutil.copytree(HOST_ETC, etc, dirs_exist_ok=True, symlinks=True)
    (etc / DEFAULT_NETWORK).unlink(missing_ok=True)
    (etc / "qemu.conf").write_text(qemu_conf())
    (etc / "libvirtd.conf").write_text(libvirtd_conf(root))


def spec(root: Path, host: str, log: Path, env: Mapping[str, str]) -> ServiceSpec:
    """libvirtd as a service. `env` points the ovs-vsctl it runs for OVS ports at our ovsdb."""
    argv = ["unshare", "-m", "-u", "--propagation", "private", "sh", "-c",
            launch_script(root, host)]
    # stop_last: after nova-compute, before the Open vSwitch it plugs guests into.
    return ServiceSpec("libvirtd", argv, log, env, stop_last=True, stop_timeout=10)
