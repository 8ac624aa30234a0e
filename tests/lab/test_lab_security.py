"""The lab's etcd lets no one in without a certificate, and units do not see the credentials.

From the host: plain HTTP to a member and etcdctl without a certificate fail, with the lab's
admin certificate etcdctl works; an agent's certificate cannot write the schedule; a plain unit
cannot read the settings key (neither from etcd nor the sealing key file), a unit that declares
EtcdAccess=true can.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from stackfleet.clusterpki import ClusterPKI
from stackfleet.lab.ops import admin_tls
from stackfleet.lab.state import LabInfo, pki_dir

from .conftest import poll
from .faults import cli

pytestmark = pytest.mark.lab
SETTING = "/stackfleet/settings/security-probe"


def etcdctl(lab: LabInfo, *args: str, certs: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["etcdctl", f"--endpoints={lab.endpoints[0]}", *certs, "--dial-timeout=2s",
                           "--command-timeout=3s", *args], capture_output=True, text=True, timeout=30,
                          env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})


def probe_unit(lab: LabInfo, directory: Path, name: str, extra: str) -> Path:
    """Tries the settings key in etcd with the admin's certificate, and the sealing key file."""
    pki = pki_dir(lab)
    key_file = Path(lab.shared_dir) / "secrets" / "settings.key"
    command = (f"echo ADMIN $(etcdctl --endpoints={lab.endpoints[0]} --cacert={pki}/ca.crt "
               f"--cert={pki}/admin.crt --key={pki}/admin.key --dial-timeout=2s get {SETTING} "
               f"--print-value-only 2>&1); "
               f"echo UNITS $(etcdctl --endpoints={lab.endpoints[0]} --cacert=$STACKFLEET_CA_FILE "
               f"--cert=$STACKFLEET_CERT_FILE --key=$STACKFLEET_KEY_FILE --dial-timeout=2s get {SETTING} "
               f"--print-value-only 2>&1); "
               f"cat {key_file} >/dev/null 2>&1 && echo KEYFILE read || echo KEYFILE denied; "
               f"echo END; exec sleep 600")
    path = directory / name
    path.write_text(f"[Service]\nExecStart=/bin/sh -c '{command}'\n\n[X-Fleet]\nMachineMetadata=role=compute\n"
                    f"{extra}")
    return path


def journal_until_end(lab: LabInfo, name: str) -> str:
    found: list[str] = []

    def ended() -> bool:
        found[:] = [cli(lab, "journal", "--lines", "40", name).stdout]
        return "END" in found[0]

    assert poll(ended, 60.0, interval=0.5), found
    return found[0]


def test_etcd_refuses_whoever_has_no_certificate_of_the_lab(lab: LabInfo) -> None:
    host_port = lab.endpoints[0].removeprefix("https://")
    plain = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://{host_port}/version"],
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "etcdserver" not in plain.stdout, plain.stdout
    admin = admin_tls(lab)
    no_client_cert = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(admin.ca_file),
                                     f"https://{host_port}/version"], capture_output=True, text=True)
    assert no_client_cert.returncode != 0 and "etcdserver" not in no_client_cert.stdout
    with_cert = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(admin.ca_file),
                                "--cert", str(admin.cert_file), "--key", str(admin.key_file),
                                f"https://{host_port}/version"], capture_output=True, text=True)
    assert with_cert.returncode == 0 and "etcdserver" in with_cert.stdout, with_cert.stderr

    assert etcdctl(lab, "get", "--prefix", "/stackfleet/", "--keys-only", certs=[]).returncode != 0
    assert etcdctl(lab, "get", "--prefix", "/stackfleet/", "--keys-only",
                   certs=[f"--cacert={admin.ca_file}"]).returncode != 0
    admin_flags = [f"--cacert={admin.ca_file}", f"--cert={admin.cert_file}", f"--key={admin.key_file}"]
    machines = etcdctl(lab, "get", "--prefix", "/stackfleet/machines/", "--keys-only", certs=admin_flags)
    assert machines.returncode == 0 and machines.stdout.count("/stackfleet/machines/") == len(lab.machines)

    agent = ClusterPKI(pki_dir(lab)).agent(lab.machines[-1].name)
    agent_flags = [f"--cacert={agent.ca_file}", f"--cert={agent.cert_file}", f"--key={agent.key_file}"]
    machine_id = lab.machines[-1].machine_id
    denied = etcdctl(lab, "put", f"/stackfleet/schedule/{machine_id}/evil.service", "x", certs=agent_flags)
    assert denied.returncode != 0 and "permission denied" in denied.stderr, denied.stderr
    denied = etcdctl(lab, "put", "/stackfleet/jobs/evil.service", "x", certs=agent_flags)
    assert denied.returncode != 0 and "permission denied" in denied.stderr, denied.stderr


def test_a_unit_cannot_read_the_settings_key_unless_it_declares_etcd_access(lab: LabInfo, tmp_path: Path) -> None:
    admin = admin_tls(lab)
    admin_flags = [f"--cacert={admin.ca_file}", f"--cert={admin.cert_file}", f"--key={admin.key_file}"]
    assert etcdctl(lab, "put", SETTING, "sealed-value", certs=admin_flags).returncode == 0
    key_file = Path(lab.shared_dir) / "secrets" / "settings.key"
    made = not key_file.exists()
    if made:  # no controller ran yet: a key file where a controller makes it (the agents made its directory)
        key_file.write_text("a sealing key\n")
        key_file.chmod(0o600)
    try:
        plain = probe_unit(lab, tmp_path, "plain-probe.service", "")
        role = probe_unit(lab, tmp_path, "etcd-probe.service", "\n[X-Stackfleet]\nEtcdAccess=true\n")
        for path in (plain, role):
            started = cli(lab, "start", "--block-attempts", "60", str(path))
            assert started.returncode == 0, started.stderr
        plain_out = journal_until_end(lab, plain.name)
        assert "ADMIN sealed-value" not in plain_out and "UNITS sealed-value" not in plain_out, plain_out
        assert "KEYFILE denied" in plain_out, plain_out
        role_out = journal_until_end(lab, role.name)
        assert "UNITS sealed-value" in role_out and "ADMIN sealed-value" not in role_out, role_out
        assert "KEYFILE read" in role_out, role_out
    finally:
        cli(lab, "destroy", "plain-probe.service", "etcd-probe.service")
        etcdctl(lab, "del", SETTING, certs=admin_flags)
        if made:
            key_file.unlink()
        time.sleep(1)
