"""One network machine's failover, measured as a user sees it: the machine whose keepalived holds
the router (primary) dies while the lab machine `outside` pings the server's floating IP every
0.1 s; another network machine takes the router over, and the floating IP answers again. Shared by
the lab's end-to-end tests and bench/failover.py --network.

With HA_MODE=L3_HA the floating IP lives in the router's namespace on the primary, so the pings
lost are the outage. With HA_MODE=DVR (and HA SNAT) the floating IP lives on the server's compute
machine and the network machines hold only the router's SNAT, so the primary's death should cost
the floating IP nothing, while the SNAT moves all the same: a server without a floating IP
(reached by ssh through the one with it) pings outside across the fault (guest_pinger), and its
pings lost are the SNAT's outage.
"""
from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import reach, router_state

PING_INTERVAL = 0.1
# busybox's ping in the guest, through an ssh session: a fifth of a second is plenty.
GUEST_PING_INTERVAL = 0.2
# How long the guest pings: past the outside pinger's 2 s lead, a takeover and SETTLE.
GUEST_PING_SECONDS = 45
GUEST_SEQ = re.compile(r"bytes from .*: seq=(\d+)")
TAKEOVER_TIMEOUT = 90.0
# After the takeover, long enough for the new primary's gratuitous ARPs and for pings to flow.
SETTLE = 10.0


@dataclass(frozen=True)
class Pings:
    """What `ping -D -O` from outside saw across a fault."""
    sent: int
    received: int
    answering: bool            # the last pings before the end were answered
    last_loss: float | None    # s from the fault to the last unanswered ping (None: none lost)
    interval: float = PING_INTERVAL

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def outage(self) -> float:
        return self.lost * self.interval


@dataclass(frozen=True)
class NetworkFailover:
    victim: str
    new_primary: str
    took_over: float     # s from the fault until another machine's keepalived said primary
    pings: Pings         # outside -> the floating IP
    snat: Pings | None = None  # a server without a floating IP -> outside, when one was asked

    def rows(self) -> list[tuple[str, float]]:
        rows = [("other machine primary", self.took_over), ("pings lost", float(self.pings.lost)),
                ("outage (lost x interval)", self.pings.outage)]
        if self.snat is not None:
            rows.append(("SNAT outage (lost x interval)", self.snat.outage))
        return rows


def pinger(address: str) -> subprocess.Popen[str]:
    """`ping -D -O` from outside: each line stamped with its time, and every missed reply named."""
    return subprocess.Popen(
        reach.outside_argv(["ping", "-n", "-D", "-O", "-i", str(PING_INTERVAL), "-W", "1", address]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _stamped(output: str) -> list[tuple[float, bool]]:
    """(time.time(), answered) of each line of `ping -D -O`: a reply, or a missed one ("no answer
    yet", "Destination Host Unreachable")."""
    return [(float(line[1:line.index("]")]), "bytes from" in line)
            for line in output.splitlines() if line.startswith("[") and "]" in line]


def last_loss(output: str) -> float | None:
    """time.time() of the last missed reply (pure)."""
    missed = [stamp for stamp, answered in _stamped(output) if not answered]
    return max(missed) if missed else None


def answering_at_end(output: str, tail: int = 10) -> bool:
    """Whether the last `tail` pings were answered (pure)."""
    lines = _stamped(output)
    return bool(lines) and all(answered for _, answered in lines[-tail:])


def pings(output: str, fault_at: float) -> Pings:
    """What the output of `ping -D -O` says, with times from `fault_at` (time.time()) (pure)."""
    counted = reach.parse_ping(output)
    lost_at = last_loss(output)
    return Pings(sent=counted.sent, received=counted.received, answering=answering_at_end(output),
                 last_loss=None if lost_at is None else lost_at - fault_at)


def guest_pinger(key: Path, jump: str, guest: str, target: str) -> subprocess.Popen[str]:
    """The server at fixed IP `guest`, which has no floating IP, pings `target` for
    GUEST_PING_SECONDS: through the router's SNAT. It is reached by ssh through the server at
    `jump` (its floating IP), whose path does not cross the network machines with DVR."""
    command = f"ping -i {GUEST_PING_INTERVAL} -w {GUEST_PING_SECONDS} {target}"
    return subprocess.Popen(reach.outside_argv(reach.ssh_via_argv(key, jump, guest, command)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wait_through_snat(key: Path, jump: str, guest: str, target: str, timeout: float) -> float:
    """Seconds until the server at fixed IP `guest`, which has no floating IP, pings `target`
    (through the router's SNAT); it may still be booting (DHCP, its key from metadata)."""
    started = time.monotonic()
    while True:
        out = reach.run(reach.ssh_via_argv(key, jump, guest, f"ping -c 2 -W 2 {target}")).stdout
        if reach.parse_ping(out).received:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the server at {guest} never reached {target} in {timeout:.0f} s: {out}")
        time.sleep(2)


def guest_pings(output: str, started_at: float, fault_at: float, tail: int = 10) -> Pings:
    """What busybox's ping in a guest saw (it stamps nothing: a reply's time is its seq times the
    interval from `started_at`, both time.time(), so last_loss is as close as the ssh set-up)
    (pure)."""
    counted = reach.parse_ping(output)
    answered = {int(seq) for seq in GUEST_SEQ.findall(output)}
    missed = set(range(counted.sent)) - answered
    return Pings(
        sent=counted.sent, received=counted.received,
        answering=counted.sent >= tail and all(seq in answered for seq in range(counted.sent - tail, counted.sent)),
        last_loss=started_at + max(missed) * GUEST_PING_INTERVAL - fault_at if missed else None,
        interval=GUEST_PING_INTERVAL)


def ping_through(floating_ip: str, fault: Callable[[], object],
                 until: Callable[[float], None] = lambda _: None) -> Pings:
    """Outside pings the floating IP from 2 s before `fault()` until SETTLE seconds after
    `until(the fault's time.monotonic())` has returned."""
    process = pinger(floating_ip)
    try:
        time.sleep(2)
        fault_at, fault_wall = time.monotonic(), time.time()
        fault()
        until(fault_at)
        time.sleep(SETTLE)
    finally:
        process.send_signal(2)  # SIGINT: ping prints its summary
        output = process.communicate(timeout=10)[0]
    return pings(output, fault_wall)


def fail_over_network(network: Mapping[str, Path], router_id: str, floating_ip: str,
                      inject: Callable[[str], object],
                      inside: Callable[[], subprocess.Popen[str]] | None = None) -> NetworkFailover:
    """Injects the fault (`inject(machine)`, e.g. ops.halt) into the router's primary network
    machine while outside pings the floating IP, and waits until another machine is primary.
    `inside` (guest_pinger) starts a guest's pings through the SNAT across the same fault."""
    states = router_state.keepalived_states(network, router_id)
    primary = router_state.primaries(states)
    assert len(primary) == 1, f"not exactly one primary network machine: {states}"
    victim = primary[0]
    # The faulted machine's own state file may still say primary: only the others count.
    others = {name: path for name, path in network.items() if name != victim}
    taken: list[tuple[str, float]] = []
    faulted: list[float] = []

    def takeover(fault_at: float) -> None:
        while time.monotonic() - fault_at < TAKEOVER_TIMEOUT:
            found = router_state.primaries(router_state.keepalived_states(others, router_id))
            if found:
                taken.append((found[0], time.monotonic() - fault_at))
                return
            time.sleep(0.1)
        raise AssertionError(f"no other network machine took router {router_id} over in "
                             f"{TAKEOVER_TIMEOUT:.0f} s: {router_state.keepalived_states(others, router_id)}")

    def fault() -> None:
        faulted.append(time.time())
        inject(victim)

    started_at = time.time()
    guest = inside() if inside is not None else None
    try:
        seen = ping_through(floating_ip, fault, takeover)
    finally:
        output = _output_of(guest) if guest is not None else ""
    return NetworkFailover(
        victim=victim, new_primary=taken[0][0], took_over=taken[0][1], pings=seen,
        snat=guest_pings(output, started_at, faulted[0]) if guest is not None else None)


def _output_of(process: subprocess.Popen[str]) -> str:
    """What the guest's pinger printed once its ping ends by itself (-w), or by the kill of its
    ssh when that hangs."""
    try:
        return process.communicate(timeout=GUEST_PING_SECONDS + 30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def back_as_backup(network: Mapping[str, Path], router_id: str, name: str,
                   timeout: float = TAKEOVER_TIMEOUT) -> None:
    """Waits until the returned machine's keepalived holds the router as backup, with exactly one
    primary: a machine that comes back must not take the router back (split brain)."""
    deadline = time.monotonic() + timeout
    while True:
        states = router_state.keepalived_states(network, router_id)
        if states[name] == "backup" and len(router_state.primaries(states)) == 1:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not come back as the router's backup: {states}")
        time.sleep(0.5)
