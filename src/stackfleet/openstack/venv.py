"""Where the OpenStack venv is, and how our own modules run inside it (standard library only).

The OpenStack venv (.venv-openstack) is separate from the cluster core's (.venv): the core needs
grpc/protobuf versions OpenStack does not. Our helpers (bootstrap, cell_hosts, workflow) run in it
straight from the source tree.

Tempest, OpenStack's own API tests, has a venv of its own too (.venv-tempest, scripts/install-tempest):
its pins are tempest's, not the services'.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_ENV = "STACKFLEET_OPENSTACK_VENV"
TEMPEST_VENV_ENV = "STACKFLEET_TEMPEST_VENV"


def default_venv() -> Path:
    return Path(os.environ.get(VENV_ENV, REPO_ROOT / ".venv-openstack"))


def tempest_venv() -> Path:
    return Path(os.environ.get(TEMPEST_VENV_ENV, REPO_ROOT / ".venv-tempest"))


def source_env() -> dict[str, str]:
    """The environment that makes the OpenStack venv's python import this source tree."""
    return {"PYTHONPATH": str(REPO_ROOT / "src")}
