"""The lab supervisor: the one long-lived process that is the parent of every lab daemon.

It is a child subreaper, so orphans of lab daemons (e.g. a daemon that double-forks) are
re-parented to it, and it reaps every child with waitpid(-1): this machine's PID 1 reaps
orphans late. The CLI talks to it over a unix socket, one JSON request per connection:

  {"op": "ping"}                                   -> {"ok": true, "pid": N}
  {"op": "start", "machine": M,
   "processes": [{"name": P, "argv": [...]}]}      -> {"ok": true, "started": {P: pid}, "running": {P: pid}}
  {"op": "halt", "machine": M}                     -> {"ok": true, "killed": [pid, ...]}
  {"op": "status"}                                 -> {"ok": true, "children": [{machine, name, pid, running, exit}]}
  {"op": "shutdown"}                               -> {"ok": true}, then the supervisor exits

A request that fails gets {"ok": false, "error": "..."}. `start` skips a process of that name
already running on that machine, so it is idempotent. Each process runs as
`ip netns exec M argv...` (which execs in place) with stdout and stderr appended to
ROOT/machines/M/logs/P.log.

Where the host has cgroup v2, each machine is a cgroup, stackfleet-lab/M: its processes start
in stackfleet-lab/M/daemons, and its agent puts units in stackfleet-lab/M/units/<unit>
($STACKFLEET_CGROUP). `halt` freezes and kills that cgroup, so it takes every process of the
machine, also those that entered network namespaces of their own (QEMU guests, Neutron's
dnsmasq, haproxy and keepalived), then whatever else is left in the machine's namespace.

Run in the foreground: python -m stackfleet.lab.supervisor ROOT
Detach (what `stackfleet lab up` does): python -m stackfleet.lab.supervisor --detach ROOT
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackfleet.lab import nsprocs
from stackfleet.lab.state import machine_dir, read_lab
from stackfleet.runtime import cgroup
from stackfleet.runtime.process import CGROUP_ENV
from stackfleet.runtime.procfs import become_subreaper, exited_children

SOCKET_NAME = "supervisor.sock"
PID_NAME = "supervisor.pid"
LOG_NAME = "supervisor.log"
REAP_INTERVAL = 1.0  # a backstop: SIGCHLD normally wakes the loop at once
STOP_GRACE = 3.0
# gRPC and HTTP clients honour these; lab traffic must stay on the lab's own links.
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy"})
LAB_CGROUP = "stackfleet-lab"
# A whole machine (etcd flushing, OpenStack's services, QEMU) can take longer to die than one unit
# on a loaded 2-core host; a halt that gives up leaves the machine frozen.
MACHINE_KILL_TIMEOUT = 30.0
# Joins the cgroup whose cgroup.procs is $1 (writing 0 moves the writer), then execs the rest:
# the process is in the machine's cgroup before it can fork anything.
_JOIN_AND_EXEC = 'echo 0 > "$1" && shift && exec "$@"'


def mount_cgroups(hierarchies: cgroup.Hierarchies) -> str:
    """Shell commands that mount the host's cgroup file systems again where they were.
    `ip netns exec` mounts a fresh /sys for the namespace, which hides them; a machine needs
    them, as a real one has them, to give each unit its cgroup. Failures only cost that."""
    assert hierarchies.v2 is not None
    base = Path("/sys/fs/cgroup")
    commands = []
    if hierarchies.v2 != base:
        commands.append(f"mount -t tmpfs -o mode=755 tmpfs {base}")
    commands.append(f"mkdir -p {hierarchies.v2} && mount -t cgroup2 cgroup2 {hierarchies.v2}")
    for controller, path in sorted(hierarchies.v1.items()):
        commands.append(f"mkdir -p {path} && mount -t cgroup -o {controller} cgroup {path}")
    return "; ".join(commands) + '; exec "$@"'


def lab_group(hierarchies: cgroup.Hierarchies) -> cgroup.Group | None:
    """The cgroup holding every lab machine; None without a usable cgroup v2."""
    return cgroup.Group(hierarchies, LAB_CGROUP) if hierarchies.usable else None


def machine_group(hierarchies: cgroup.Hierarchies, machine: str) -> cgroup.Group | None:
    lab = lab_group(hierarchies)
    return lab.child(machine) if lab is not None else None


def kill_machine(hierarchies: cgroup.Hierarchies, machine: str, ns: nsprocs.NsId) -> set[int]:
    """Pull the power: freeze and kill the machine's cgroup, then SIGKILL whatever is left
    in its namespace (e.g. a `lab exec` shell). Returns the PIDs killed."""
    killed: set[int] = set()
    group = machine_group(hierarchies, machine)
    if group is not None:
        killed.update(group.kill(MACHINE_KILL_TIMEOUT))
    killed.update(nsprocs.kill_netns(ns))
    return killed


@dataclass
class Child:
    machine: str
    name: str
    pid: int
    exit: int | None = None  # the wait status decoded: exit code, or -signal

    @property
    def running(self) -> bool:
        return self.exit is None


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cgroups = cgroup.detect()
        if not self.cgroups.usable:
            print(f"WARNING: no cgroup v2 ({self.cgroups.missing}): `lab halt` kills by "
                  "network namespace only; a process in a namespace of its own survives it",
                  file=sys.stderr, flush=True)
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.stopping_requested = False  # set by SIGTERM/SIGINT, acted on in the loop

    # -- children ---------------------------------------------------------------------------

    def reap(self) -> None:
        """Collects every exited child, ours or adopted, without blocking."""
        for pid, status in exited_children():
            child = self.children.get(pid)
            if child is not None:
                child.exit = os.waitstatus_to_exitcode(status)

    def running(self, machine: str | None = None) -> list[Child]:
        return [
            c for c in self.children.values()
            if c.running and (machine is None or c.machine == machine)
        ]

    def wait_reaped(self, children: list[Child], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(c.running for c in children) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)

    def spawn(self, machine: str, name: str, argv: list[str]) -> int:
        logs = machine_dir(self.root, machine) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with log.open("a") as f:
            f.write(f"--- stackfleet lab: starting {name} at {time.strftime('%F %T')} ---\n")
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"
        command = ["ip", "netns", "exec", machine, *argv]
        group = machine_group(self.cgroups, machine)
        if group is not None:
            daemons = group.child("daemons")
            daemons.create()
            # A halt whose kill timed out leaves the machine's group frozen (cgroup.Group.kill);
            # a daemon put in it would freeze at once and the machine never come up. Its killed
            # processes only finish dying once thawed.
            group.thaw()
            env[CGROUP_ENV] = group.child("units").relative
            command = ["sh", "-c", _JOIN_AND_EXEC, "sh", str(daemons.path / "cgroup.procs"),
                       "ip", "netns", "exec", machine,
                       "sh", "-c", mount_cgroups(self.cgroups), "sh", *argv]
        pid = os.posix_spawnp(
            command[0],
            command,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # signals aimed at the supervisor's session stay away from the machines
        )
        self.children[pid] = Child(machine, name, pid)
        return pid

    # -- requests ---------------------------------------------------------------------------

    def op_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid()}

    def op_start(self, req: dict[str, Any]) -> dict[str, Any]:
        machine = str(req["machine"])
        ns = nsprocs.netns_id(machine)
        if ns is None:
            return {"ok": False, "error": f"no network namespace {machine}"}
        running = {c.name: c.pid for c in self.running(machine)}
        group = machine_group(self.cgroups, machine)
        strangers = [] if running else sorted(
            set(nsprocs.pids_in_netns(ns)) | set(group.pids() if group is not None else []))
        if strangers:
            # E.g. left by a supervisor that died: starting more would run two agents for
            # one machine.
            return {"ok": False, "error": (
                f"{machine} runs processes this supervisor did not start (PIDs "
                f"{', '.join(map(str, strangers))}): `stackfleet lab halt {machine}` first"
            )}
        started: dict[str, int] = {}
        for proc in req["processes"]:
            name = str(proc["name"])
            if name not in running:
                started[name] = self.spawn(machine, name, [str(a) for a in proc["argv"]])
        return {"ok": True, "started": started, "running": running | started}

    def op_halt(self, req: dict[str, Any]) -> dict[str, Any]:
        machine = str(req["machine"])
        ns = nsprocs.netns_id(machine)
        if ns is None:
            return {"ok": False, "error": f"no network namespace {machine}"}
        killed = kill_machine(self.cgroups, machine, ns)
        self.wait_reaped(self.running(machine), timeout=5.0)
        return {"ok": True, "killed": sorted(killed)}

    def op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        self.reap()
        return {
            "ok": True,
            "children": [
                {"machine": c.machine, "name": c.name, "pid": c.pid, "running": c.running,
                 "exit": c.exit}
                for c in self.children.values()
            ],
        }

    def op_shutdown(self, req: dict[str, Any]) -> dict[str, Any]:
        self.stop_all()
        self.stopping = True
        return {"ok": True}

    def stop_all(self) -> None:
        """SIGTERM every lab process (ours and anything else in a lab namespace), then SIGKILL."""
        pids = {c.pid for c in self.running()}
        lab = read_lab(self.root)
        for machine in lab.machines if lab else []:
            ns = nsprocs.netns_id(machine.netns)
            if ns is not None:
                pids.update(nsprocs.pids_in_netns(ns))
        nsprocs.terminate(pids, grace=STOP_GRACE)
        group = lab_group(self.cgroups)
        if group is not None:
            group.kill()  # what left the namespaces: the lab is going away as a whole
        self.wait_reaped(self.running(), timeout=2.0)

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            try:
                req = json.loads(read_line(conn))
                op = getattr(self, f"op_{req.get('op')}", None)
                if op is None:
                    reply = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
                else:
                    reply = op(req)
            except Exception as exc:  # a bad request must not take the supervisor down
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass  # the client went away; nothing to tell it

    # -- main loop --------------------------------------------------------------------------

    def serve(self) -> None:
        become_subreaper()
        sock_path = self.root / SOCKET_NAME
        pid_path = self.root / PID_NAME
        sock_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        server.listen(16)
        server.setblocking(False)

        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping_requested", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping_requested", True))

        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ, "accept")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        pid_path.write_text(f"{os.getpid()}\n")
        try:
            while not self.stopping:
                for key, _ in sel.select(timeout=REAP_INTERVAL):
                    if key.data == "wake":
                        try:
                            while wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        try:
                            conn, _ = server.accept()
                        except BlockingIOError:
                            continue
                        conn.setblocking(True)
                        self.handle(conn)
                self.reap()
                if self.stopping_requested and not self.stopping:
                    self.stop_all()
                    self.stopping = True
        finally:
            sel.close()
            server.close()
            sock_path.unlink(missing_ok=True)
            pid_path.unlink(missing_ok=True)


def detach(root: Path) -> None:
    """Starts the supervisor in its own session and returns at once; the caller reaps us."""
    with open(root / LOG_NAME, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "stackfleet.lab.supervisor", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
        )


def read_line(sock: socket.socket) -> bytes:
    """One newline-terminated message of the supervisor protocol (or what came before EOF)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--detach"]
    if len(args) != 1:
        print("usage: python -m stackfleet.lab.supervisor [--detach] ROOT", file=sys.stderr)
        return 2
    root = Path(args[0]).resolve()
    if "--detach" in argv:
        detach(root)
    else:
        Supervisor(root).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
