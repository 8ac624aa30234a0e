"""Where the OpenStack venv is, and how our own modules run inside it (standard library only).

The OpenStack venv (.venv-openstack) is separate from the cluster core's (.venv): the core needs
grpc/protobuf versions OpenStack does not. Our helpers (bootstrap, cell_hosts, workflow) run in it
straight from the source tree.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_ENV = "STACKFLEET_OPENSTACK_VENV"


def default_venv() -> Path:
    return Path(os.environ.get(VENV_ENV, REPO_ROOT / ".venv-openstack"))


def source_env() -> dict[str, str]:
    """The environment that makes the OpenStack venv's python import this source tree."""
    return {"PYTHONPATH": str(REPO_ROOT / "src")}
