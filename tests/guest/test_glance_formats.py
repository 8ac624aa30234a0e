"""Nova's own image inspection accepts the three images with the formats the manifest gives.

Nova runs oslo.utils' format inspector on every image it fetches, the kernel and ramdisk too.
Debian's bzImage, as shipped, is taken for an MBR with invalid partition entries and refused;
scripts/build-guest-image zeroes four padding bytes so that it passes. Checked in the OpenStack
venv, with Nova's code, so that a newer Nova that inspects differently shows up here.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from stackfleet.openstack.venv import default_venv
from tests.guest.test_guest_image import IMAGE

# fetch_to_raw's two checks, in its order: the deep inspection, then qemu-img must agree with it.
INSPECT = """
import json, sys
from nova.virt import images
result = {}
for role in ("kernel", "ramdisk", "machine"):
    entry = json.loads(sys.argv[1])[role]
    path = sys.argv[2] + "/" + entry["file"]
    try:
        found = images.do_image_deep_inspection({"disk_format": entry["disk_format"]}, role, path)
        result[role] = [found, images.qemu_img_info(path).file_format]
    except Exception as error:
        result[role] = "refused: %s" % error
print(json.dumps(result))
"""


def test_nova_accepts_kernel_ramdisk_and_disk() -> None:
    python = default_venv() / "bin" / "python"
    if not python.exists():
        pytest.skip(f"needs the OpenStack venv at {python.parent.parent} (STACKFLEET_OPENSTACK_VENV)")
    if shutil.which("qemu-img") is None:
        pytest.skip("needs qemu-img (qemu-utils), which Nova calls on every image")
    if not (IMAGE / "manifest.json").exists():
        pytest.skip(f"no guest image in {IMAGE}: run scripts/build-guest-image")
    glance = json.loads((IMAGE / "manifest.json").read_text())["glance"]
    out = subprocess.run([str(python), "-W", "ignore", "-c", INSPECT, json.dumps(glance), str(IMAGE)],
                         check=True, capture_output=True, text=True, timeout=120)
    verdict = json.loads(out.stdout.strip().splitlines()[-1])
    assert verdict == {role: ["raw", "raw"] for role in ("kernel", "ramdisk", "machine")}
