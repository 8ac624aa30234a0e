"""tempest.conf from the cluster's facts, and the summary of a tempest run (read from subunit v2)."""
from __future__ import annotations

import configparser
import re
import struct
import zlib
from pathlib import Path

import pytest

from stackfleet.openstack import tempest, tempest_conf
from stackfleet.openstack.configs import admin_credentials
from stackfleet.openstack.settings import PASSWORD_KEYS, Settings
from stackfleet.openstack.workflow import SeedRecord

WORKSPACE = Path("/srv/tempest-ws")
FACTS = tempest_conf.CloudFacts(
    flavor_id="flavor-tiny-1", flavor_alt_id="flavor-alt-2", public_network_name="ext-net",
    private_network_name="private-7", network_extensions=("dvr", "external-net", "l3-ha", "router"),
    compute_hosts=3)


def settings() -> Settings:
    passwords = {k: f"{k}-secret-value" for k in PASSWORD_KEYS}
    return Settings(region="RegionNorth", ha_mode="L3_HA", release="2026.2", admin_project="ops",
                    admin_user="chief", passwords=passwords, vip="192.168.10.77")


def record(**changes: object) -> SeedRecord:
    fields: dict[str, object] = dict(
        image_id="stand-in-image", image_sha256="0" * 64, image_md5="0" * 32, image_size=1,
        public_network_id="public-net-uuid", private_network_id="private-net-uuid",
        private_subnet_id="subnet", router_id="router", router_mode="ha", keypair_name="myKey",
        keypair_fingerprint="fp", project_id="project", user_id="user", server_id="server",
        server_host="compute-1", guest_image_id="guest-image-uuid")
    fields.update(changes)
    return SeedRecord(**fields)  # type: ignore[arg-type]


def rendered(ha_mode: str = "L3_HA", seed: SeedRecord | None = None) -> configparser.RawConfigParser:
    env = admin_credentials(settings(), "192.168.10.77")
    text = tempest_conf.render(env, seed or record(), FACTS, ha_mode, WORKSPACE)
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_the_admin_and_keystone_at_the_vip():
    conf = rendered()
    assert conf["auth"]["admin_username"] == "chief"
    assert conf["auth"]["admin_password"] == "admin_password-secret-value"
    assert conf["auth"]["admin_project_name"] == "ops"
    assert conf["auth"]["admin_user_domain_name"] == "Default"
    assert conf["auth"]["admin_project_domain_name"] == "Default"
    assert conf["auth"]["use_dynamic_credentials"] == "true"
    assert conf["identity"]["uri_v3"] == "http://192.168.10.77:5000/v3"
    assert conf["identity"]["auth_version"] == "v3"
    assert conf["identity"]["region"] == "RegionNorth"
    assert conf["dashboard"]["dashboard_url"] == "http://192.168.10.77/"


def test_compute_boots_the_guest_image_with_two_flavors():
    compute = rendered()["compute"]
    assert compute["image_ref"] == "guest-image-uuid"
    assert compute["image_ref_alt"] == "guest-image-uuid"
    assert (compute["flavor_ref"], compute["flavor_ref_alt"]) == ("flavor-tiny-1", "flavor-alt-2")
    assert compute["fixed_network_name"] == "private-7"
    assert compute["min_compute_nodes"] == "3"
    # Without the guest image (a cloud on Nova's fake driver) the seeded stand-in is used.
    assert rendered(seed=record(guest_image_id=""))["compute"]["image_ref"] == "stand-in-image"


def test_compute_features_the_cloud_lacks_are_off():
    features = rendered()["compute-feature-enabled"]
    for name in ("live_migration", "cold_migration", "resize", "vnc_console", "spice_console",
                 "serial_console", "swap_volume", "volume_multiattach", "attach_encrypted_volume",
                 "config_drive", "change_password"):
        assert features[name] == "false", name


def test_network_options_come_from_the_record():
    conf = rendered()
    assert conf["network"]["public_network_id"] == "public-net-uuid"
    assert conf["network"]["floating_network_name"] == "ext-net"
    assert conf["network"]["project_network_cidr"] == "10.100.0.0/16"
    assert conf["validation"]["image_ssh_user"] == "cirros"
    assert conf["validation"]["run_validation"] == "false"


def test_dvr_is_tested_only_where_routers_are_distributed():
    l3_ha = rendered("L3_HA")["network-feature-enabled"]["api_extensions"].split(",")
    dvr = rendered("DVR", record(router_mode="distributed"))["network-feature-enabled"][
        "api_extensions"].split(",")
    assert "dvr" not in l3_ha and {"external-net", "l3-ha", "router"} <= set(l3_ha)
    assert "dvr" in dvr


def test_services_the_cloud_does_not_run_are_unavailable():
    available = rendered()["service_available"]
    for name in ("nova", "neutron", "glance"):
        assert available[name] == "true", name
    for name in ("cinder", "swift", "heat"):
        assert available[name] == "false", name


def test_nothing_is_fetched_from_the_internet():
    conf = rendered()
    assert conf["image"]["http_image"] == ""
    assert conf["image"]["http_qcow2_image"] == ""
    assert conf["image-feature-enabled"]["http_store_enabled"] == "false"
    regexes = [line.split("#")[0].strip() for line in tempest_conf.exclude_list().splitlines()]
    web = ("tempest.api.image.v2.test_images.ImportImagesTest.test_image_web_download_import"
           "[id-f6feb7a4-b04f-4706-a011-206129f83e62]")
    offline = ("tempest.api.image.v2.test_images.ImportImagesTest.test_image_glance_direct_import"
               "[id-32ca0c20-e16f-44ac-8590-07869c9b4cc2]")
    assert any(re.search(r, web) for r in regexes)
    assert not any(re.search(r, offline) for r in regexes)


def test_the_workspace_holds_logs_and_locks():
    conf = rendered()
    assert conf["DEFAULT"]["log_dir"] == "/srv/tempest-ws/logs"
    assert conf["oslo_concurrency"]["lock_path"] == "/srv/tempest-ws/tempest_lock"


# -- subunit v2, written here from its specification (python-subunit is not in this venv) ----------
STATUS_CODES = {"exists": 1, "inprogress": 2, "success": 3, "uxsuccess": 4, "skip": 5, "fail": 6,
                "xfail": 7}


def number(value: int) -> bytes:
    for size, prefix in ((1, 0x00), (2, 0x40), (3, 0x80), (4, 0xC0)):
        if value < 1 << (8 * size - 2):
            raw = value.to_bytes(size, "big")
            return bytes([raw[0] | prefix]) + raw[1:]
    raise ValueError(value)


def packet(test_id: str | None, status: str | None, attachment: bytes = b"") -> bytes:
    flags = 0x2000 | 0x0200  # version 2, timestamp
    body = struct.pack(">I", 1_700_000_000) + number(123)
    if test_id is not None:
        flags |= 0x0800
        raw = test_id.encode()
        body += number(len(raw)) + raw
    if attachment:
        flags |= 0x0010
        body += number(len(b"traceback")) + b"traceback" + number(len(attachment)) + attachment
    if status:
        flags |= STATUS_CODES[status]
    # The length counts the whole packet: signature, flags, itself, the body and the CRC.
    for size in (1, 2, 3, 4):
        total = 1 + 2 + size + len(body) + 4
        if len(number(total)) == size:
            break
    head = bytes([0xB3]) + flags.to_bytes(2, "big") + number(total)
    return head + body + struct.pack(">I", zlib.crc32(head + body))


def stream() -> bytes:
    ok, bad, skip = "tempest.api.compute.A.test_ok[id-1]", "tempest.api.network.B.test_bad[id-2]", \
        "tempest.api.image.v2.C.test_skip[id-3]"
    return b"".join([
        packet(ok, "inprogress"), packet(ok, "success"),
        b"not subunit: a line some worker printed\n",
        packet(bad, "inprogress"), packet(bad, None, attachment=b"Traceback..." * 3000),
        packet(bad, "fail"),
        packet(skip, "inprogress"), packet(skip, "skip"),
        packet("setUpClass (tempest.api.identity.admin.v3.D)", "fail"),
        packet("tempest.api.compute.E.test_listed_only", "exists"),
    ])


def test_each_test_ends_with_its_last_status():
    statuses = tempest.test_statuses(stream())
    assert statuses == {"tempest.api.compute.A.test_ok[id-1]": "success",
                        "tempest.api.network.B.test_bad[id-2]": "fail",
                        "tempest.api.image.v2.C.test_skip[id-3]": "skip",
                        "setUpClass (tempest.api.identity.admin.v3.D)": "fail"}


def test_the_summary_counts_and_names_the_failures():
    summary = tempest.summarize(tempest.test_statuses(stream()))
    assert summary.line() == "tempest: 1 passed, 2 failed, 1 skipped"
    assert summary.failures == ("setUpClass (tempest.api.identity.admin.v3.D)",
                                "tempest.api.network.B.test_bad[id-2]")


def test_a_stream_cut_off_keeps_what_it_finished():
    whole = stream()
    tail = packet("setUpClass (tempest.api.identity.admin.v3.D)", "fail") + \
        packet("tempest.api.compute.E.test_listed_only", "exists")
    statuses = tempest.test_statuses(whole[:len(whole) - len(tail) + 5])
    assert statuses["tempest.api.compute.A.test_ok[id-1]"] == "success"
    assert "setUpClass (tempest.api.identity.admin.v3.D)" not in statuses


@pytest.mark.parametrize("status,outcome", [("xfail", "passed"), ("uxsuccess", "failed")])
def test_expected_failures_pass_and_unexpected_successes_fail(status, outcome):
    summary = tempest.summarize(tempest.test_statuses(packet("t.x", status)))
    assert (summary.passed, summary.failed) == ((1, 0) if outcome == "passed" else (0, 1))
