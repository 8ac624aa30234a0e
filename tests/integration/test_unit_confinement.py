"""A real agent and engine over TLS: a plain unit sees neither the PKI directory nor the settings'
sealing key, and cannot reach etcd; a unit that declares EtcdAccess=true gets its machine's units
certificate, the sealing key and the settings, and nothing else of the PKI directory."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackfleet.runtime import ProcessRuntime

from .test_etcd_security import flags
from .tlscluster import MACHINES, SecureEtcd, secure_etcd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hiding directories takes a mount namespace: root")

PROBE = ("for f in {key} {pki}/admin.key {pki}/agent-m1.key $STACKFLEET_KEY_FILE; do "
         "cat $f >/dev/null 2>&1 && echo READ $f || echo DENIED $f; done; "
         "echo PKI: $(ls {pki}); "
         "echo ADMIN $(etcdctl --endpoints={endpoint} --cacert={pki}/ca.crt --cert={pki}/admin.crt "
         "--key={pki}/admin.key --dial-timeout=2s get /stackfleet/settings/region --print-value-only 2>&1); "
         "echo UNITS $(etcdctl --endpoints={endpoint} --cacert=$STACKFLEET_CA_FILE --cert=$STACKFLEET_CERT_FILE "
         "--key=$STACKFLEET_KEY_FILE --dial-timeout=2s get /stackfleet/settings/region --print-value-only 2>&1); "
         "echo END; exec sleep 600")


class TLSCluster:
    def __init__(self, secure: SecureEtcd, root: Path) -> None:
        self.secure = secure
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stackfleet.cli.main", "--endpoint", self.secure.endpoint,
                               *flags(self.secure.pki.admin()), *args], capture_output=True, text=True, timeout=60)

    def spawn(self, *args: str) -> None:
        log = open(self.root / f"daemon{len(self.procs)}.log", "wb")
        argv = [sys.executable, "-m", "stackfleet.cli.main", "--endpoint", self.secure.endpoint, *args]
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TLSCluster]:
    with secure_etcd(tmp_path) as secure:
        c = TLSCluster(secure, tmp_path)
        pki = secure.pki
        c.spawn("engine", "--name", "e1", "--ttl", "3", *flags(pki.engine("e1")))
        c.spawn("agent", "--machine-id", MACHINES["m1"], "--name", "m1", "--public-ip", "127.0.0.1",
                "--state-dir", str(tmp_path / "m1"), "--shared-dir", str(tmp_path / "shared"), "--ttl", "3",
                *flags(pki.agent("m1")), "--unit-cert-file", str(pki.units("m1").cert_file),
                "--unit-key-file", str(pki.units("m1").key_file), "--private-dir", str(pki.directory))
        try:
            deadline = time.monotonic() + 20
            while c.cli("list-machines", "--no-legend").stdout.count("\n") < 1:
                assert time.monotonic() < deadline, "the agent did not register"
                time.sleep(0.2)
            yield c
        finally:
            for p in c.procs:
                p.terminate()
            for p in c.procs:
                p.wait(10)
            runtime = ProcessRuntime(tmp_path / "m1" / "runtime")
            for name in runtime.units():
                runtime.kill(name)


def probe_output(cluster: TLSCluster, name: str, extra: str) -> str:
    secrets = cluster.root / "shared" / "secrets"
    command = PROBE.format(key=secrets / "settings.key", pki=cluster.secure.pki.directory,
                           endpoint=cluster.secure.endpoint)
    path = cluster.root / name
    path.write_text(f"[Service]\nExecStart=/bin/sh -c '{command}'\n{extra}")
    started = cluster.cli("start", "--block-attempts", "30", str(path))
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while "END" not in (out := cluster.cli("journal", "--lines", "50", name).stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.3)
    return out


def test_only_units_that_declare_etcd_access_see_credentials_and_the_sealing_key(cluster: TLSCluster) -> None:
    secrets = cluster.root / "shared" / "secrets"
    assert (secrets.stat().st_mode & 0o777) == 0o700  # made by the agent before any unit
    (secrets / "settings.key").write_text("sealing key\n")
    admin = cluster.secure.pki.admin()
    setting = subprocess.run(["etcdctl", f"--endpoints={cluster.secure.endpoint}", f"--cacert={admin.ca_file}",
                              f"--cert={admin.cert_file}", f"--key={admin.key_file}",
                              "put", "/stackfleet/settings/region", "one"], capture_output=True, text=True)
    assert setting.returncode == 0, setting.stderr

    pki = cluster.secure.pki.directory
    plain = probe_output(cluster, "plain.service", "")
    assert f"DENIED {secrets / 'settings.key'}" in plain
    assert f"DENIED {pki}/admin.key" in plain and f"DENIED {pki}/agent-m1.key" in plain
    assert plain.split("PKI:")[1].split("\n")[0].split() == []
    assert "ADMIN one" not in plain and "UNITS one" not in plain

    role = probe_output(cluster, "role.service", "[X-Stackfleet]\nEtcdAccess=true\n")
    assert f"READ {secrets / 'settings.key'}" in role
    assert f"DENIED {pki}/admin.key" in role and f"DENIED {pki}/agent-m1.key" in role
    assert f"READ {pki}/units-m1.key" in role
    assert role.split("PKI:")[1].split("\n")[0].split() == ["ca.crt", "units-m1.crt", "units-m1.key"]
    assert "UNITS one" in role and "ADMIN one" not in role
    # The machine itself still sees everything.
    assert (pki / "admin.key").exists() and (secrets / "settings.key").read_text() == "sealing key\n"
