"""The lab's machine-readable description, ROOT/lab.json, and how other commands find it."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/stackfleet-lab")
ROOT_ENV = "STACKFLEET_LAB_ROOT"
LAB_FILE = "lab.json"
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class MachineInfo:
    name: str
    role: str
    machine_id: str
    netns: str
    ips: dict[str, str]  # network key ("mgmt", "tunnel", "external") -> address
    state_dir: str

    @property
    def mgmt_ip(self) -> str:
        return self.ips["mgmt"]


@dataclass(frozen=True)
class LabInfo:
    root: str
    cluster_token: str
    counts: dict[str, int]  # role -> machine count
    ttl: int
    processes: list[str]  # the process kinds this lab runs (etcd, engine, agent)
    venv: str
    endpoints: list[str]
    shared_dir: str
    machines: list[MachineInfo] = field(default_factory=list)

    def machine(self, name: str) -> MachineInfo | None:
        return next((m for m in self.machines if m.name == name), None)

    def machine_names(self) -> list[str]:
        return [m.name for m in self.machines]


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def lab_file(root: Path) -> Path:
    return root / LAB_FILE


def pki_dir(lab: LabInfo) -> Path:
    """The lab's CA and every certificate (clusterpki.py): hidden from units but their own."""
    return Path(lab.root) / "pki"


def machine_dir(root: Path, name: str) -> Path:
    return root / "machines" / name


def new_machine_id() -> str:
    """32 lowercase hex digits, the format of /etc/machine-id."""
    return secrets.token_hex(16)


def machine_id_for(state_dir: Path) -> str:
    """The machine's id, generated on first use and kept in its state dir like /etc/machine-id."""
    path = state_dir / "machine-id"
    if path.exists():
        return path.read_text().strip()
    machine_id = new_machine_id()
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(machine_id + "\n")
    return machine_id


def save_lab(lab: LabInfo) -> None:
    # Imported here: the runtime package loads the whole runtime and the unit parser, and every
    # CLI command that finds the cluster by itself reads this module (default_endpoints).
    from stackfleet.runtime.files import write_json_atomic

    write_json_atomic(lab_file(Path(lab.root)), asdict(lab))  # readers never see half a file


def read_lab(root: Path | None = None) -> LabInfo | None:
    """The recorded lab at `root`, whether or not its namespaces exist right now."""
    path = lab_file(root or default_root())
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    machines = [MachineInfo(**m) for m in raw.pop("machines")]
    return LabInfo(**raw, machines=machines)


def load_lab(root: Path | None = None) -> LabInfo | None:
    """The lab that is up at `root` (default: $STACKFLEET_LAB_ROOT or /var/lib/stackfleet-lab).

    None when no lab was created there, or when its namespaces are gone (e.g. after a reboot,
    since /run is a tmpfs while the lab root is not).
    """
    lab = read_lab(root)
    if lab is None or not lab.machines:
        return None
    if not (NETNS_DIR / lab.machines[0].netns).exists():
        return None
    return lab


def default_endpoints() -> list[str] | None:
    """The etcd client URLs of the lab at the default root, or None when no lab is up."""
    lab = load_lab()
    return list(lab.endpoints) if lab else None
