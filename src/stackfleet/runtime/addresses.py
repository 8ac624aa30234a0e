"""Addresses that a unit adds to this machine's interfaces (a virtual IP), released when the
unit ends, however it ends.

An address outlives every process: the kernel keeps it on the interface, and answers ARP for it,
after the unit that added it died. So a unit that claims one first lists it in its claims file
(the path is in $STACKFLEET_ADDRESSES, UNIT_DIR/addresses), and whoever ends the unit releases
what the file lists:
- the shim, when the unit stops and when its fence kills it (before the lease can expire, so
  before another machine may claim the address);
- the agent, when it kills what a dead shim left running;
- the agent at start-up, for every unit whose shim is gone (a crash of agent and shim, a reboot
  that kept the interfaces' addresses).

The file holds one claim a line, `ADDRESS/PREFIX DEVICE`, as `ip address add` takes them.
"""
from __future__ import annotations

import ipaddress
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stackfleet.runtime.files import write_text_atomic

ENV = "STACKFLEET_ADDRESSES"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    interface: str   # ADDRESS/PREFIX, e.g. 192.168.10.10/24
    device: str

    @property
    def address(self) -> str:
        return self.interface.split("/", 1)[0]


def parse(text: str) -> list[Claim]:
    """The claims of a file (pure). A malformed line is skipped: the file is ours, written whole
    by claim(), so only a foreign edit makes one, and it must not hide the others."""
    claims = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 2:
            continue
        try:
            ipaddress.ip_interface(words[0])
        except ValueError:
            continue
        claims.append(Claim(words[0], words[1]))
    return claims


def render(claims: list[Claim]) -> str:
    return "".join(f"{c.interface} {c.device}\n" for c in claims)


def read(path: Path) -> list[Claim]:
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return []


def record(path: Path, claim: Claim) -> None:
    """Lists the claim before the address is added: a crash between the two leaves a claim
    without an address, which releases as a no-op, never an address without a claim."""
    claims = read(path)
    if claim not in claims:
        write_text_atomic(path, render([*claims, claim]))


class AddressError(RuntimeError):
    """An address could not be added; the message has `ip`'s own words."""


def add(path: Path, claim: Claim) -> None:
    """Lists the claim, then adds the address (already there counts as added)."""
    record(path, claim)
    done = subprocess.run(["ip", "address", "add", claim.interface, "dev", claim.device],
                          capture_output=True, text=True)
    if done.returncode != 0 and "File exists" not in done.stderr:
        raise AddressError(f"cannot add {claim.interface} to {claim.device}: {done.stderr.strip()}")


def release(path: Path) -> list[Claim]:
    """Deletes every listed address that is still on its interface, then the file; returns
    those it deleted."""
    released = []
    for claim in read(path):
        done = subprocess.run(["ip", "address", "del", claim.interface, "dev", claim.device],
                              capture_output=True, text=True)
        if done.returncode == 0:
            released.append(claim)
        elif "Cannot assign" not in done.stderr and "Cannot find device" not in done.stderr:
            # Not "already gone": leave the file, so that the next release tries again.
            log.error("cannot release %s from %s: %s", claim.interface, claim.device, done.stderr.strip())
            return released
    path.unlink(missing_ok=True)
    return released
