"""OpenStack's own API tests (tempest) against this cloud.

    .venv-openstack/bin/python -m stackfleet.openstack.tempest WORKSPACE RECORD_JSON [--regex R]

with the admin's OS_* variables set (`stackfleet openstack credentials`) and RECORD_JSON the seeded
record (workflow.py seed). It reads a few facts from the cloud (and makes tempest's second flavor
once), makes the tempest workspace (`tempest init`) if it is missing, writes etc/tempest.conf
(tempest_conf.render) and etc/exclude-list, runs `tempest run` from the tempest venv
(scripts/install-tempest) and prints "tempest: N passed, N failed, N skipped" and the failed
tests, read from `stestr last --subunit`. Exits 1 when a test failed or nothing ran.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackfleet.openstack import tempest_conf
from stackfleet.openstack.bootstrap import TINY_FLAVOR
from stackfleet.openstack.venv import tempest_venv
from stackfleet.openstack.workflow import SeedRecord

# identity: the admin API tests are tempest.api.identity.admin.v3, beside tempest.api.identity.v3.
DEFAULT_REGEX = r"^tempest\.api\.(identity\.(admin\.)?v3|image\.v2|network|compute)\."
CONCURRENCY = 2
# tempest's flavor_ref_alt: a second flavor, larger than m1.tiny (the filter-by-flavor tests boot
# one server of each). Made once, as devstack makes its flavors for tempest.
ALT_FLAVOR = {"name": "m1.tiny.alt", "ram": 192, "vcpus": 1, "disk": 1}

# Subunit v2 (the stream `stestr last --subunit` writes): each packet is the signature byte, two
# bytes of flags, its whole length as a varint, the fields the flags announce, and a CRC32.
SUBUNIT_SIGNATURE = 0xB3
FLAG_TEST_ID = 0x0800
FLAG_TIMESTAMP = 0x0200
STATUS_MASK = 0x0007
STATUSES = {0: "", 1: "exists", 2: "inprogress", 3: "success", 4: "uxsuccess", 5: "skip",
            6: "fail", 7: "xfail"}
OUTCOMES = {"success": "passed", "xfail": "passed", "fail": "failed", "uxsuccess": "failed",
            "skip": "skipped"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A subunit v2 number: the top two bits of its first byte say how many bytes follow (0-3)."""
    extra = data[at] >> 6
    value = data[at] & 0x3F
    for byte in data[at + 1:at + 1 + extra]:
        value = (value << 8) | byte
    return value, at + 1 + extra


def test_statuses(stream: bytes) -> dict[str, str]:
    """Each test's last status in a subunit v2 stream (what it ended as). Bytes between packets
    that are not subunit are skipped; a packet cut off at the end is ignored."""
    statuses: dict[str, str] = {}
    at = 0
    while at < len(stream):
        if stream[at] != SUBUNIT_SIGNATURE or at + 4 > len(stream):
            at += 1
            continue
        flags = int.from_bytes(stream[at + 1:at + 3], "big")
        length, fields = _varint(stream, at + 3)
        if length < 8 or at + length > len(stream) or flags >> 12 != 2:
            at += 1
            continue
        if flags & FLAG_TIMESTAMP:
            _, fields = _varint(stream, fields + 4)  # seconds (4 bytes), then nanoseconds
        status = STATUSES[flags & STATUS_MASK]
        if flags & FLAG_TEST_ID and status in OUTCOMES:
            size, fields = _varint(stream, fields)
            statuses[stream[fields:fields + size].decode("utf-8", "replace")] = status
        at += length
    return statuses


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int
    skipped: int
    failures: tuple[str, ...]

    def line(self) -> str:
        return f"tempest: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def summarize(statuses: Mapping[str, str]) -> Summary:
    """Counts by outcome. A class whose setUpClass failed shows up as one failed "test"
    (`setUpClass (tempest.api...)`): its tests never ran, and that is a failure too."""
    counts = Counter(OUTCOMES[status] for status in statuses.values())
    failures = tuple(sorted(t for t, s in statuses.items() if OUTCOMES[s] == "failed"))
    return Summary(counts["passed"], counts["failed"], counts["skipped"], failures)


def gather_facts(cloud: Any, record: SeedRecord) -> tempest_conf.CloudFacts:
    """What tempest.conf needs from the cloud beyond the record; makes ALT_FLAVOR if missing."""
    tiny = cloud.compute.find_flavor(TINY_FLAVOR["name"], ignore_missing=False)
    alt = cloud.compute.find_flavor(ALT_FLAVOR["name"]) or cloud.compute.create_flavor(**ALT_FLAVOR)
    return tempest_conf.CloudFacts(
        flavor_id=tiny.id, flavor_alt_id=alt.id,
        public_network_name=cloud.network.get_network(record.public_network_id).name,
        private_network_name=cloud.network.get_network(record.private_network_id).name,
        network_extensions=tuple(sorted(e.alias for e in cloud.network.extensions())),
        compute_hosts=len(list(cloud.compute.services(binary="nova-compute"))))


def ha_mode(record: SeedRecord) -> str:
    """HA_MODE as Neutron applied it when the record was seeded."""
    return "DVR" if record.router_mode == "distributed" else "L3_HA"


def prepare(workspace: Path, text: str, excluded: str, venv: Path) -> None:
    if not (workspace / ".stestr.conf").exists():
        subprocess.run([str(venv / "bin" / "tempest"), "init", str(workspace)], check=True)
    (workspace / "etc" / "tempest.conf").write_text(text)
    (workspace / "etc" / "exclude-list").write_text(excluded)


def run(workspace: Path, regex: str, venv: Path) -> tuple[int, Summary]:
    """`tempest run` in the workspace (its output goes to ours), then the run's results."""
    etc = workspace / "etc"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = subprocess.run(
        [str(venv / "bin" / "tempest"), "run", "--config-file", str(etc / "tempest.conf"),
         "--regex", regex, "--exclude-list", str(etc / "exclude-list"),
         "--concurrency", str(CONCURRENCY)], cwd=workspace, env=env).returncode
    last = subprocess.run([str(venv / "bin" / "stestr"), "last", "--subunit"], cwd=workspace,
                          env=env, capture_output=True)
    return code, summarize(test_statuses(last.stdout))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackfleet.openstack.tempest")
    parser.add_argument("workspace", type=Path)
    parser.add_argument("record", type=Path)
    parser.add_argument("--regex", default=DEFAULT_REGEX)
    args = parser.parse_args(argv)
    venv = tempest_venv()
    if not (venv / "bin" / "tempest").exists():
        print(f"no tempest in {venv}: run scripts/install-tempest", file=sys.stderr)
        return 2
    from stackfleet.openstack.workflow import connect_from_env

    record = SeedRecord.from_json(args.record.read_text())
    facts = gather_facts(connect_from_env(), record)
    workspace = args.workspace.resolve()
    prepare(workspace, tempest_conf.render(os.environ, record, facts, ha_mode(record), workspace),
            tempest_conf.exclude_list(), venv)
    code, summary = run(workspace, args.regex, venv)
    print(summary.line())
    for name in summary.failures:
        print(f"FAILED: {name}")
    if summary.failed or not summary.passed:
        return 1
    if code != 0:
        print(f"tempest run exited {code} with no failed test", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
