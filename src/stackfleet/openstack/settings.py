"""Cluster settings of the OpenStack roles: names, validation and generated passwords (pure).

One source of truth: these live in the cluster (etcd, or the stand-alone file), never in per-file
copies. Passwords have no defaults; each is generated once, at first use.
"""
from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stackfleet.openstack.quoting import refuse_unrepresentable
from stackfleet.openstack.services import password_keys

# The OpenStack release of the pinned set in requirements/openstack-constraints.txt
# (nova 34, keystone 30, neutron 29, glance 33, placement 16 are all 2026.2 "Hibiscus").
RELEASE = "2026.2"
HA_MODES = ("L3_HA", "DVR")
SWITCHES = ("instance_ha",)
SWITCH_VALUES = {"on": "on", "true": "on", "yes": "on", "1": "on",
                 "off": "off", "false": "off", "no": "off", "0": "off"}
# Nova's libvirt virt_type: qemu is software emulation (TCG), for boxes without usable KVM such as
# the lab; kvm on real hosts.
VIRT_TYPES = ("qemu", "kvm")

DEFAULTS: dict[str, str] = {
    "region": "RegionOne",
    "ha_mode": "L3_HA",
    "release": RELEASE,
    "admin_project": "admin",
    "admin_user": "admin",
    "instance_ha": "on",  # the evacuator (instance-ha.service) evacuates dead compute machines
    "virt_type": "qemu",
    # The NICs every network and compute machine has, as in the original's Vagrant machines:
    # VXLAN leaves over the tunnel one (via br-phy), br-ex holds the external one. "none" (a
    # cloud on one host): VXLAN from the management address, br-ex with no NIC.
    "tunnel_interface": "eth2",
    "external_interface": "eth1",
    # The controller's virtual IP (vip.py), on the management network: the one address of the
    # cloud, whichever machine runs the controller. The lab's management network is the
    # original's 192.168.10.0/24. "none": the controller's own address (a cloud on one host).
    "vip": "192.168.10.10",
}

# The services' own (databases, service users) come from the service table.
PASSWORD_KEYS = ("admin_password", "mysql_root_password", *password_keys(), "rabbit_password",
                 "metadata_secret")
KEYS = tuple(DEFAULTS) + PASSWORD_KEYS
MIN_PASSWORD_LENGTH = 12
# Characters a consumer we cannot fix breaks on, by setting: oslo.messaging's RabbitMQ driver
# rebuilds the transport URL for kombu with urllib's quote(), which leaves "/" as it is, and kombu
# then takes the rest of the password for the URL's path.
FORBIDDEN = {"rabbit_password": ("/", "oslo.messaging's RabbitMQ driver cannot carry it")}


NO_INTERFACE = "none"
NO_VIP = "none"


class SettingsError(ValueError):
    """A setting that was refused; the message says what is allowed."""


@dataclass(frozen=True)
class Settings:
    region: str
    ha_mode: str
    release: str
    admin_project: str
    admin_user: str
    passwords: Mapping[str, str]
    virt_type: str = "qemu"
    tunnel_interface: str = "eth2"
    external_interface: str = "eth1"
    vip: str = NO_VIP

    def password(self, key: str) -> str:
        return self.passwords[key]


def normalize_key(key: str) -> str:
    """`HA_MODE`, `ha-mode` and `ha_mode` name the same setting."""
    name = key.strip().lower().replace("-", "_")
    if name not in KEYS:
        raise SettingsError(f"unknown setting {key!r}; known settings: {', '.join(KEYS)}")
    return name


def _one_of(label: str, given: str, canonical: str, allowed: tuple[str, ...]) -> str:
    if canonical not in allowed:
        raise SettingsError(f"{label}={given!r} is not allowed; allowed values: {' or '.join(allowed)}")
    return canonical


def validate(key: str, value: str) -> tuple[str, str]:
    """Returns the canonical (key, value) or raises SettingsError naming what is allowed."""
    name = normalize_key(key)
    value = value.strip()
    try:
        # Every value ends up in files whose formats cannot carry these (see quoting.py).
        refuse_unrepresentable(value, name)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if name == "ha_mode":
        return name, _one_of("HA_MODE", value, value.upper(), HA_MODES)
    if name == "instance_ha":
        if value.lower() not in SWITCH_VALUES:
            raise SettingsError(f"INSTANCE_HA={value!r} is not allowed; allowed values: on or off")
        return name, SWITCH_VALUES[value.lower()]
    if name == "vip":
        return name, _vip(value)
    if name == "virt_type":
        return name, _one_of("virt_type", value, value.lower(), VIRT_TYPES)
    if name == "release":
        if value != RELEASE:
            raise SettingsError(
                f"release {value!r} is not installed; this install provides OpenStack {RELEASE} "
                "(see requirements/openstack-constraints.txt)")
        return name, value
    if name in PASSWORD_KEYS:
        if len(value) < MIN_PASSWORD_LENGTH:
            raise SettingsError(f"{name} must be at least {MIN_PASSWORD_LENGTH} characters")
        chars, why = FORBIDDEN.get(name, ("", ""))
        if any(c in value for c in chars):
            raise SettingsError(f"{name} cannot contain {' or '.join(chars)}: {why}")
        return name, value
    if not value or any(c.isspace() for c in value):
        raise SettingsError(f"{name} must be a non-empty word without spaces, got {value!r}")
    return name, value


def _vip(value: str) -> str:
    if value.lower() == NO_VIP:
        return NO_VIP
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise SettingsError(f"vip={value!r} is not an IPv4 address; give the controller's virtual "
                            "IP on the management network, or none") from None
    if address.is_loopback or address.is_multicast or address.is_unspecified:
        raise SettingsError(f"vip={value!r} cannot be a virtual IP; give an unused unicast address "
                            "on the management network, or none")
    return str(address)


def missing_defaults(current: Mapping[str, str],
                     token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> dict[str, str]:
    """The settings to add on first use: defaults and freshly generated passwords for absent keys."""
    added = {k: v for k, v in DEFAULTS.items() if k not in current}
    added.update({k: token() for k in PASSWORD_KEYS if k not in current})
    return added


def parse(raw: Mapping[str, str]) -> Settings:
    """Validated Settings from a complete mapping (after missing_defaults was stored)."""
    values = {}
    for key in (k for k in KEYS if k not in SWITCHES):
        if key not in raw:
            raise SettingsError(f"setting {key} is missing; run the role once to generate it")
        values[key] = validate(key, raw[key])[1]
    return Settings(
        region=values["region"], ha_mode=values["ha_mode"], release=values["release"],
        admin_project=values["admin_project"], admin_user=values["admin_user"],
        passwords={k: values[k] for k in PASSWORD_KEYS}, virt_type=values["virt_type"],
        tunnel_interface=values["tunnel_interface"],
        external_interface=values["external_interface"], vip=values["vip"])


def switched_on(raw: Mapping[str, str], key: str) -> bool:
    """An on/off setting (SWITCHES), its default while absent. Not part of Settings: the
    configs do not depend on them."""
    return validate(key, raw.get(key, DEFAULTS[key]))[1] == "on"


def shown(raw: Mapping[str, str]) -> dict[str, str]:
    """Settings for display: passwords masked (`config get KEY` prints one on purpose)."""
    return {k: ("********" if k in PASSWORD_KEYS else v) for k, v in sorted(raw.items())}
