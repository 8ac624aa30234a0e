"""One network machine's failover, measured as a user sees it: the machine whose keepalived holds
the router (primary) dies while the lab machine `outside` pings the server's floating IP every
0.1 s; another network machine takes the router over, and the floating IP answers again. Shared by
the lab's end-to-end tests and bench/failover.py --network.

With HA_MODE=L3_HA the floating IP lives in the router's namespace on the primary, so the pings
lost are the outage. With HA_MODE=DVR (and HA SNAT) the floating IP lives on the server's compute
machine; the network machines hold only the router's SNAT for servers without one, so a network
machine's death should cost the floating IP nothing, while the SNAT moves all the same.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import reach, router_state

PING_INTERVAL = 0.1
TAKEOVER_TIMEOUT = 90.0
# After the takeover, long enough for the new primary's gratuitous ARPs and for pings to flow.
SETTLE = 10.0


@dataclass(frozen=True)
class NetworkFailover:
    victim: str
    new_primary: str
    took_over: float     # s from the fault until another machine's keepalived said primary
    sent: int
    received: int
    answering: bool      # the last pings before the end were answered
    last_loss: float | None  # s from the fault to the last unanswered ping (None: none lost)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    def rows(self) -> list[tuple[str, float]]:
        return [("other machine primary", self.took_over), ("pings lost", float(self.lost)),
                ("outage (lost x interval)", self.lost * PING_INTERVAL)]


def pinger(address: str) -> subprocess.Popen[str]:
    """`ping -D -O` from outside: each line stamped with its time, and every missed reply named."""
    return subprocess.Popen(
        reach.outside_argv(["ping", "-n", "-D", "-O", "-i", str(PING_INTERVAL), "-W", "1", address]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop_pinger(process: subprocess.Popen[str]) -> str:
    process.send_signal(2)  # SIGINT: ping prints its summary
    return process.communicate(timeout=10)[0]


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


def fail_over_network(network: Mapping[str, Path], router_id: str, floating_ip: str,
                      inject: Callable[[str], object]) -> NetworkFailover:
    """Injects the fault (`inject(machine)`, e.g. ops.halt) into the router's primary network
    machine while outside pings the floating IP, and waits until another machine is primary."""
    states = router_state.keepalived_states(network, router_id)
    primary = router_state.primaries(states)
    assert len(primary) == 1, f"not exactly one primary network machine: {states}"
    victim = primary[0]
    # The faulted machine's own state file may still say primary: only the others count.
    others = {name: path for name, path in network.items() if name != victim}
    process = pinger(floating_ip)
    try:
        time.sleep(2)
        fault_at, fault_wall = time.monotonic(), time.time()
        inject(victim)
        took_over, taken = None, []
        while time.monotonic() - fault_at < TAKEOVER_TIMEOUT:
            taken = router_state.primaries(router_state.keepalived_states(others, router_id))
            if taken:
                took_over = time.monotonic() - fault_at
                break
            time.sleep(0.1)
        if took_over is None:
            raise AssertionError(f"no other network machine took router {router_id} over in "
                                 f"{TAKEOVER_TIMEOUT:.0f} s: "
                                 f"{router_state.keepalived_states(others, router_id)}")
        time.sleep(SETTLE)
    finally:
        output = stop_pinger(process)
    counted = reach.parse_ping(output)
    lost_at = last_loss(output)
    return NetworkFailover(victim=victim, new_primary=taken[0], took_over=took_over,
                           sent=counted.sent, received=counted.received,
                           answering=answering_at_end(output),
                           last_loss=None if lost_at is None else lost_at - fault_wall)


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
