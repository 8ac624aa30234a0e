"""How any stackfleet process finds the cluster: etcd endpoints, key prefix, shared storage.

Standard library only at import time (the CLI imports it on every call): the registry, and with it
grpc, is imported only by `open_registry`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from stackfleet.registry.endpoints import BadEndpoint, parse_endpoint
from stackfleet.registry.keys import DEFAULT_PREFIX

if TYPE_CHECKING:
    from stackfleet.registry.store import Registry

ENDPOINT_ENV = "STACKFLEET_ENDPOINT"
PREFIX_ENV = "STACKFLEET_PREFIX"
SHARED_DIR_ENV = "STACKFLEET_SHARED_DIR"  # set for every unit by its agent
FALLBACK_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_SHARED = "/var/lib/stackfleet/shared"


def resolve_endpoints(flag: str | None = None) -> list[str]:
    """--endpoint, then $STACKFLEET_ENDPOINT, then the running lab, then local etcd.

    A given list is checked here, before anything connects: a malformed one raises BadEndpoint
    (bad input, whose message names the endpoint and where it came from)."""
    source = "--endpoint" if flag is not None else ENDPOINT_ENV
    raw = flag if flag is not None else os.environ.get(ENDPOINT_ENV) or os.environ.get("STACKFLEET_ENDPOINTS")
    if raw is None or (flag is None and not raw.strip()):
        from stackfleet.lab.state import default_endpoints  # the lab's state pulls in the runtime: only when asked

        return default_endpoints() or [FALLBACK_ENDPOINT]
    endpoints = [e.strip() for e in raw.split(",") if e.strip()]
    if not endpoints:
        raise BadEndpoint(f"{source} {raw!r} names no endpoint (expected URL[,URL...], e.g. http://127.0.0.1:2379)")
    for endpoint in endpoints:
        try:
            parse_endpoint(endpoint)
        except BadEndpoint as err:
            raise BadEndpoint(f"{source}: {err}") from None
    return endpoints


def prefix() -> str:
    """The cluster's etcd key prefix: $STACKFLEET_PREFIX, else the default one."""
    return os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)


def shared_dir() -> Path:
    """$STACKFLEET_SHARED_DIR, else the running lab's, else the production path."""
    env = os.environ.get(SHARED_DIR_ENV)
    if env:
        return Path(env)
    from stackfleet.lab.state import load_lab

    lab = load_lab()
    return Path(lab.shared_dir) if lab else Path(DEFAULT_SHARED)


def open_registry(endpoint_flag: str | None = None) -> Registry:
    """The cluster's registry at the resolved endpoints and prefix."""
    from stackfleet.registry.store import Registry

    return Registry.open(resolve_endpoints(endpoint_flag), prefix())
