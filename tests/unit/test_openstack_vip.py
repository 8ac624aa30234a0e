import pytest

from stackfleet.openstack import settings as s
from stackfleet.openstack.vip import VipError, claim_for
from stackfleet.runtime.addresses import Claim

# `ip -j -4 address show` on a lab controller: lo, and the management NIC among others.
ADDRESSES = [
    {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth1", "addr_info": [{"local": "10.0.5.11", "prefixlen": 24}]},
    {"ifname": "eth3", "addr_info": [{"local": "192.168.10.11", "prefixlen": 24}]},
]


def test_the_vip_goes_on_the_management_nic_with_its_prefix() -> None:
    assert claim_for("192.168.10.10", "192.168.10.11", ADDRESSES) == Claim("192.168.10.10/24", "eth3")


def test_a_vip_off_the_management_network_names_the_network_and_the_fix() -> None:
    with pytest.raises(VipError, match=r"not on this machine's management network 192.168.10.0/24 "
                                       r"\(eth3\).*stackfleet config set vip"):
        claim_for("10.0.5.10", "192.168.10.11", ADDRESSES)


def test_the_vip_cannot_be_the_machines_own_address() -> None:
    with pytest.raises(VipError, match="own address"):
        claim_for("192.168.10.11", "192.168.10.11", ADDRESSES)


def test_no_interface_with_the_management_address() -> None:
    with pytest.raises(VipError, match="no interface holds"):
        claim_for("192.168.10.10", "192.168.10.99", ADDRESSES)


@pytest.mark.parametrize("given,stored", [("192.168.10.10", "192.168.10.10"), ("NONE", "none"),
                                          ("none", "none")])
def test_vip_setting_takes_an_address_or_none(given: str, stored: str) -> None:
    assert s.validate("vip", given) == ("vip", stored)


@pytest.mark.parametrize("bad", ["controller", "192.168.10.300", "127.0.0.1", "0.0.0.0", "224.0.0.1"])
def test_vip_setting_refuses_what_cannot_be_a_vip(bad: str) -> None:
    with pytest.raises(s.SettingsError, match="vip"):
        s.validate("vip", bad)


def test_the_vip_is_a_default_setting() -> None:
    assert s.missing_defaults({})["vip"] == "192.168.10.10"
