"""tempest.conf for OpenStack's own API tests against this cloud (pure: no I/O).

Rendered from what the cluster knows: the admin's OS_* variables (configs.admin_credentials, at
the VIP), the seeded record (workflow.SeedRecord), the facts the runner reads from the cloud once
(`CloudFacts`: flavor ids, network names, Neutron's extensions, compute hosts) and HA_MODE. The
option names are tempest's own (tempest/config.py of the release in requirements/tempest.txt).
What the cloud does not offer is switched off here, so that its tests are skipped, not failed;
tests that no option reaches are in `EXCLUDED`. docs/openstack-notes.md ("Tempest") says why.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stackfleet.openstack.configs import render_ini
from stackfleet.openstack.workflow import SeedRecord

# Where tempest makes the networks of the projects it creates (one /28 each).
PROJECT_NETWORK_CIDR = "10.100.0.0/16"
PROJECT_NETWORK_MASK_BITS = 28
# Services tempest (or a plugin) may test that this cloud does not run.
ABSENT_SERVICES = ("cinder", "swift", "heat", "designate", "octavia", "manila", "ironic", "barbican")
# Every API of the cloud enforces scope and the new default roles: oslo.policy 6 has no
# enforce_scope switch any more, and enforce_new_defaults is on by default.
SCOPED_SERVICES = ("keystone", "nova", "neutron", "glance", "placement")
# Neutron lists "dvr" whenever its L3 plugin can make distributed routers, also with HA_MODE=L3_HA,
# where no L3 agent runs them (agent_mode legacy): DVR's tests only run with HA_MODE=DVR.
DVR_EXTENSION = "dvr"
GUEST_USER = "cirros"  # stackfleet-guest's user (scripts/build-guest-image)

# Tests that need what no option can switch off: (regex, why). Written into the exclude list of
# `tempest run`.
EXCLUDED = (
    (r"^tempest\.api\.image\.v2\.test_images\.ImportImagesTest\.test_image_web_download_import\b",
     "web-download imports an image from the internet (image.http_qcow2_image); the lab has none. "
     "Glance offers the method (its default), so tempest cannot see that it would fail"),
)


@dataclass(frozen=True)
class CloudFacts:
    """What the runner reads from the cloud (or makes, the second flavor) before rendering."""
    flavor_id: str                  # m1.tiny (bootstrap.TINY_FLAVOR)
    flavor_alt_id: str              # a second, larger flavor: tempest's filter tests need two
    public_network_name: str
    private_network_name: str       # the seeded private network (workflow.seed)
    network_extensions: tuple[str, ...]  # Neutron's extension aliases
    compute_hosts: int              # nova-compute services


def dashboard_url(auth_url: str) -> str:
    """Horizon at port 80 of the same address as Keystone (the VIP)."""
    return f"http://{urlsplit(auth_url).hostname}/"


def render(env: Mapping[str, str], record: SeedRecord, facts: CloudFacts, ha_mode: str,
           workspace: Path, run_validation: bool = False) -> str:
    """The text of WORKSPACE/etc/tempest.conf. `env` holds the admin's OS_* variables."""
    image = record.guest_image_id or record.image_id
    extensions = [e for e in facts.network_extensions if ha_mode == "DVR" or e != DVR_EXTENSION]
    return render_ini({
        "DEFAULT": {"log_dir": workspace / "logs", "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": workspace / "tempest_lock"},
        "auth": {
            # Tempest makes a project and users for each test class, and a network and a router
            # for each project (create_isolated_networks), as the admin below.
            "use_dynamic_credentials": True, "create_isolated_networks": True,
            "admin_username": env["OS_USERNAME"], "admin_password": env["OS_PASSWORD"],
            "admin_project_name": env["OS_PROJECT_NAME"],
            "admin_domain_name": env.get("OS_USER_DOMAIN_NAME", "Default"),
            "admin_user_domain_name": env.get("OS_USER_DOMAIN_NAME", "Default"),
            "admin_project_domain_name": env.get("OS_PROJECT_DOMAIN_NAME", "Default"),
        },
        "identity": {"uri_v3": env["OS_AUTH_URL"], "auth_version": "v3",
                     "region": env["OS_REGION_NAME"], "v3_endpoint_type": "public"},
        # Keystone's defaults: trusts on, no PCI-DSS (security_compliance), one SQL backend.
        "identity-feature-enabled": {"trust": True,
                                     "security_compliance": False,
                                     "domain_specific_drivers": False},
        "compute": {
            "image_ref": image,
            # One bootable image: tempest skips the tests that need two distinct ones.
            "image_ref_alt": image,
            "flavor_ref": facts.flavor_id, "flavor_ref_alt": facts.flavor_alt_id,
            "fixed_network_name": facts.private_network_name,
            "region": env["OS_REGION_NAME"],
            "min_compute_nodes": facts.compute_hosts,
            # Tests for every microversion tempest knows; nova 34 is newer than all of them.
            "max_microversion": "latest",
        },
        "compute-feature-enabled": {
            # nova.conf has [vnc] enabled = false and no spice or serial proxy.
            "vnc_console": False, "spice_console": False, "serial_console": False,
            # The guest's serial log (libvirt's console.log) is there.
            "console_output": True,
            # No volumes (no cinder), no block migration, no ssh between compute machines for
            # libvirt's resize and cold migration: instances move only by evacuation here.
            "live_migration": False, "block_migration_for_live_migration": False,
            "volume_backed_live_migration": False, "cold_migration": False, "resize": False,
            "shelve_migrate": False, "swap_volume": False, "volume_multiattach": False,
            "attach_encrypted_volume": False,
            # No qemu-guest-agent in stackfleet-guest; no genisoimage on the compute machines.
            "change_password": False, "config_drive": False, "personality": False,
            # QEMU's default x86 machine (q35) has no IDE bus.
            "ide_bus": False,
            "hostname_fqdn_sanitization": True,
        },
        "image": {
            "region": env["OS_REGION_NAME"],
            # No internet: the tests that fetch cirros from download.cirros-cloud.net skip
            # (an empty URL is their switch).
            "http_image": "", "http_qcow2_image": "",
        },
        "image-feature-enabled": {
            # Image import is tested with the methods Glance offers (/v2/info/import): glance-direct
            # through the staging dir; copy-image needs a second store and skips.
            # One file store: no http store, no multiple locations, no conversion, no weights.
            "manage_locations": False, "http_store_enabled": False, "image_conversion": False,
            "store_weight_enabled": False,
        },
        "network": {
            "region": env["OS_REGION_NAME"],
            "public_network_id": record.public_network_id,
            "floating_network_name": facts.public_network_name,
            "project_network_cidr": PROJECT_NETWORK_CIDR,
            "project_network_mask_bits": PROJECT_NETWORK_MASK_BITS,
            "project_networks_reachable": False,
        },
        "network-feature-enabled": {
            "api_extensions": ",".join(extensions),
            "ipv6": True, "port_security": True, "floating_ips": True,
            "port_admin_state_change": True,
        },
        "service_available": {
            "nova": True, "neutron": True, "glance": True, "horizon": True,
            **{name: False for name in ABSENT_SERVICES},
        },
        "dashboard": {"dashboard_url": dashboard_url(env["OS_AUTH_URL"])},
        "enforce_scope": {name: True for name in SCOPED_SERVICES},
        "validation": {
            # Off by default: floating IPs answer only on the external network (the lab machine
            # `outside`), not where the admin's shell runs.
            "run_validation": run_validation, "connect_method": "floating",
            "image_ssh_user": GUEST_USER, "image_alt_ssh_user": GUEST_USER,
            "network_for_ssh": facts.public_network_name,
        },
    })


def exclude_list() -> str:
    """`tempest run --exclude-list FILE`: one regex a line, and after a `#` its reason, which
    stestr prints for each test it leaves out."""
    return "".join(f"{regex}  # {why.replace('#', '')}\n" for regex, why in EXCLUDED)
