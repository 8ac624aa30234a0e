"""What a unit sees of the cluster's credentials: pure decisions, applied by the runtime.

Every unit runs as root unless it sets User=, and etcd access is control of the cluster: so no
unit sees the machine's private directories (the PKI directory with the agent's key) nor the
directory of the settings' sealing key on the shared storage. A unit that declares

    [X-Stackfleet]
    EtcdAccess=true

(the OpenStack role units, which read and write the cluster settings) keeps, inside the hidden
PKI directory, the CA and the machine's *units* certificate only (etcd user units-MACHINE_ID,
see registry/access.py), finds them in $STACKFLEET_CA_FILE, $STACKFLEET_CERT_FILE and
$STACKFLEET_KEY_FILE, and sees the sealing key. The others see neither.

Hiding takes a mount namespace, so root: an agent that is not root runs its units unconfined
(they run as its user then, and can read whatever it can), and says so when it starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..discovery import CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV
from ..registry.tlsfiles import CertFiles
from ..unit.unitfile import UnitFile


def wants_etcd(unit: UnitFile) -> bool:
    """[X-Stackfleet] EtcdAccess= (unit/stackfleet.py: the last value wins, an empty one resets)."""
    return unit.options.etcd_access


@dataclass(frozen=True)
class Confinement:
    hidden_dirs: list[str]
    kept_files: list[str]
    environment: dict[str, str]


@dataclass(frozen=True)
class UnitAccess:
    private_dirs: tuple[Path, ...]  # e.g. the machine's PKI directory
    secrets_dir: Path  # the settings' sealing key's directory on the shared storage
    unit_tls: CertFiles | None  # handed to EtcdAccess=true units; None on a plaintext cluster
    confine: bool = True  # False: hide nothing (the agent is not root)

    def confinement(self, etcd_access: bool) -> Confinement:
        private = [str(d) for d in self.private_dirs] if self.confine else []
        if not etcd_access:
            return Confinement(private + [str(self.secrets_dir)] if self.confine else [], [], {})
        if self.unit_tls is None:
            return Confinement(private, [], {})
        files = self.unit_tls
        kept = [str(f) for f in (files.ca_file, files.cert_file, files.key_file)
                if self.confine and any(f.is_relative_to(d) for d in self.private_dirs)]
        environment = {CA_FILE_ENV: str(files.ca_file), CERT_FILE_ENV: str(files.cert_file),
                       KEY_FILE_ENV: str(files.key_file)}
        return Confinement(private, kept, environment)
