"""The claims file of a unit's addresses (runtime/addresses.py), with a stand-in `ip` on PATH
that logs its arguments: the real one needs root and a network namespace (the lab's VIP tests
use it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fakeip import fake_ip
from stackfleet.runtime import addresses
from stackfleet.runtime.addresses import Claim

VIP = Claim("192.168.10.10/24", "eth3")


def test_claims_round_trip_and_a_foreign_line_hides_nothing() -> None:
    text = addresses.render([VIP, Claim("10.0.0.5/32", "lo")])
    assert addresses.parse(text) == [VIP, Claim("10.0.0.5/32", "lo")]
    assert addresses.parse("garbage\n300.1.1.1/24 eth0\n" + text) == [VIP, Claim("10.0.0.5/32", "lo")]
    assert VIP.address == "192.168.10.10"


def test_record_lists_a_claim_once(tmp_path: Path) -> None:
    path = tmp_path / "addresses"
    addresses.record(path, VIP)
    addresses.record(path, VIP)
    assert addresses.read(path) == [VIP]


def test_add_lists_the_claim_before_it_adds_the_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_ip(tmp_path, monkeypatch)
    path = tmp_path / "addresses"
    addresses.add(path, VIP)
    assert addresses.read(path) == [VIP]
    assert log.read_text().split(" ", 1)[1] == "address add 192.168.10.10/24 dev eth3\n"


def test_add_says_why_ip_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ip(tmp_path, monkeypatch, stderr="Cannot find device eth9", code=1)
    path = tmp_path / "addresses"
    with pytest.raises(addresses.AddressError, match="Cannot find device eth9"):
        addresses.add(path, Claim("192.168.10.10/24", "eth9"))
    assert addresses.read(path) == [Claim("192.168.10.10/24", "eth9")]  # released as a no-op later


def test_release_deletes_each_address_then_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_ip(tmp_path, monkeypatch)
    path = tmp_path / "addresses"
    addresses.record(path, VIP)
    assert addresses.release(path) == [VIP]
    assert log.read_text().split(" ", 1)[1] == "address del 192.168.10.10/24 dev eth3\n"
    assert not path.exists()
    assert addresses.release(path) == []  # nothing claimed: nothing run


def test_an_address_already_gone_counts_as_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ip(tmp_path, monkeypatch, stderr="RTNETLINK answers: Cannot assign requested address", code=2)
    path = tmp_path / "addresses"
    addresses.record(path, VIP)
    assert addresses.release(path) == []
    assert not path.exists()


def test_a_failed_release_keeps_the_claim_for_the_next_try(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ip(tmp_path, monkeypatch, stderr="RTNETLINK answers: Operation not permitted", code=2)
    path = tmp_path / "addresses"
    addresses.record(path, VIP)
    assert addresses.release(path) == []
    assert addresses.read(path) == [VIP]
