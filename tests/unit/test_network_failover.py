import pytest

from stackfleet.openstack.network_failover import (
    GUEST_PING_INTERVAL,
    NetworkFailover,
    Pings,
    answering_at_end,
    guest_pings,
    last_loss,
    pings,
)

# What `ping -n -D -O` prints (iputils, Debian 12), across an outage.
OUTAGE = """PING 10.0.5.20 (10.0.5.20) 56(84) bytes of data.
[1796219621.856075] 64 bytes from 10.0.5.20: icmp_seq=1 ttl=63 time=0.275 ms
[1796219622.304838] no answer yet for icmp_seq=2
[1796219622.508805] no answer yet for icmp_seq=3
[1796219622.600000] From 10.0.5.1 icmp_seq=4 Destination Host Unreachable
[1796219622.712888] 64 bytes from 10.0.5.20: icmp_seq=5 ttl=63 time=0.4 ms
[1796219622.812888] 64 bytes from 10.0.5.20: icmp_seq=6 ttl=63 time=0.4 ms

--- 10.0.5.20 ping statistics ---
6 packets transmitted, 3 received, +1 errors, 50% packet loss, time 1000ms
"""


def test_the_last_loss_is_the_last_missed_reply_of_any_kind() -> None:
    assert last_loss(OUTAGE) == 1796219622.6


def test_no_loss_has_no_last_loss() -> None:
    replies = "\n".join(line for line in OUTAGE.splitlines()
                        if "bytes from" in line or not line.startswith("["))
    assert last_loss(replies) is None


def test_answering_at_end_needs_the_last_pings_answered() -> None:
    assert answering_at_end(OUTAGE, tail=2)
    assert not answering_at_end(OUTAGE, tail=3)
    assert not answering_at_end("PING 10.0.5.20 (10.0.5.20) 56(84) bytes of data.\n")


def test_the_outage_counts_lost_pings_at_the_interval() -> None:
    moved = NetworkFailover(victim="network-01", new_primary="network-02", took_over=3.2,
                            pings=Pings(sent=100, received=70, answering=True, last_loss=3.0))
    assert moved.pings.lost == 30
    assert dict(moved.rows())["outage (lost x interval)"] == pytest.approx(3.0)


def test_pings_are_timed_from_the_fault() -> None:
    seen = pings(OUTAGE, fault_at=1796219622.0)
    assert (seen.sent, seen.received) == (6, 3)
    assert not seen.answering  # only 2 answers at the end, and it takes 10
    assert seen.last_loss == pytest.approx(0.6)


def _busybox(answered: list[int], sent: int) -> str:
    """What busybox's ping prints for `sent` pings of which the `answered` seqs came back."""
    lines = ["PING 10.0.5.1 (10.0.5.1): 56 data bytes"]
    lines += [f"64 bytes from 10.0.5.1: seq={seq} ttl=63 time=1.1 ms" for seq in answered]
    lines += ["", "--- 10.0.5.1 ping statistics ---",
              f"{sent} packets transmitted, {len(answered)} packets received, 0% packet loss"]
    return "\n".join(lines) + "\n"


def test_a_guests_pings_through_the_snat_are_timed_by_their_seq() -> None:
    # 40 sent, seqs 12-20 lost: the SNAT was gone from 2.4 s to 4.0 s after the guest began.
    output = _busybox([seq for seq in range(40) if not 12 <= seq <= 20], sent=40)
    seen = guest_pings(output, started_at=1000.0, fault_at=1002.0)
    assert (seen.sent, seen.received, seen.lost) == (40, 31, 9)
    assert seen.outage == pytest.approx(9 * GUEST_PING_INTERVAL)
    assert seen.answering
    assert seen.last_loss == pytest.approx(20 * GUEST_PING_INTERVAL - 2.0)


def test_a_guest_whose_last_pings_went_unanswered_is_not_answering() -> None:
    seen = guest_pings(_busybox(list(range(35)), sent=40), started_at=1000.0, fault_at=1001.0)
    assert not seen.answering and seen.lost == 5
    assert not guest_pings(_busybox([], sent=0), 1000.0, 1001.0).answering


def test_the_snat_outage_is_a_row_when_a_guest_pinged() -> None:
    fip = Pings(sent=100, received=100, answering=True, last_loss=None)
    snat = Pings(sent=50, received=40, answering=True, last_loss=4.0, interval=GUEST_PING_INTERVAL)
    moved = NetworkFailover(victim="network-01", new_primary="network-02", took_over=3.2, pings=fip, snat=snat)
    assert dict(moved.rows())["SNAT outage (lost x interval)"] == pytest.approx(10 * GUEST_PING_INTERVAL)
    assert "SNAT outage (lost x interval)" not in dict(
        NetworkFailover(victim="network-01", new_primary="network-02", took_over=3.2, pings=fip).rows())
