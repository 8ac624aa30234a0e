"""The controller's virtual IP (the `vip` setting): one address for the cloud, whichever machine
runs the controller role. The catalog, every rendered config, the users' credentials and Horizon
name it, so a move changes nothing that a client or a follower holds.

The role claims it on the interface that holds its machine's management address, with that
interface's prefix, announces it with gratuitous ARP (neighbours still map it to the old
machine's MAC), and releases it when it stops. The claim is listed first in the unit's claims
file (runtime/addresses.py), so the fence, and the agent at start-up, release it whatever
happened to the role: a machine that was cut off never answers for the VIP again.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from stackfleet.runtime import addresses
from stackfleet.runtime.addresses import Claim

GARP_COUNT = 3  # gratuitous ARPs, one a second: a neighbour that misses one takes the next


class VipError(RuntimeError):
    """The VIP cannot be claimed here; the message says what to change."""


def claim_for(vip: str, machine_address: str, ip_addresses: list[dict[str, object]]) -> Claim:
    """Where the VIP goes (pure): the interface of the machine's management address, with its
    prefix, from `ip -j -4 address show`."""
    for link in ip_addresses:
        for info in link.get("addr_info") or []:  # type: ignore[attr-defined]
            if info.get("local") != machine_address:
                continue
            network = ipaddress.IPv4Interface(f"{machine_address}/{info['prefixlen']}").network
            if ipaddress.IPv4Address(vip) not in network:
                raise VipError(
                    f"vip {vip} is not on this machine's management network {network} "
                    f"({link['ifname']}); set an unused address of it with "
                    "`stackfleet config set vip ADDRESS`")
            if vip == machine_address:
                raise VipError(f"vip {vip} is this machine's own address; the VIP must be unused")
            return Claim(f"{vip}/{network.prefixlen}", str(link["ifname"]))
    raise VipError(f"no interface holds this machine's management address {machine_address}")


def claims_file(fallback: Path) -> Path:
    """The unit's claims file, where the agent's shim said; `fallback` for a role run by hand."""
    return Path(os.environ.get(addresses.ENV) or fallback)


def _ip_addresses() -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-j", "-4", "address", "show"], capture_output=True, text=True,
                         check=True).stdout
    found: list[dict[str, object]] = json.loads(out)
    return found


@asynccontextmanager
async def claimed(vip: str, machine_address: str, claims: Path,
                  say: Callable[[str], None]) -> AsyncIterator[Claim]:
    """The VIP on this machine while the body runs; released however the body ends."""
    claim = claim_for(vip, machine_address, _ip_addresses())
    addresses.add(claims, claim)
    say(f"claimed the VIP {claim.interface} on {claim.device}")
    # -U: unsolicited ARP, which updates the entries that neighbours hold for the VIP.
    garp = await asyncio.create_subprocess_exec(
        "arping", "-q", "-U", "-c", str(GARP_COUNT), "-I", claim.device, claim.address,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        yield claim
    finally:
        if garp.returncode is None:
            garp.kill()
        await garp.wait()
        for gone in addresses.release(claims):
            say(f"released the VIP {gone.interface} from {gone.device}")
