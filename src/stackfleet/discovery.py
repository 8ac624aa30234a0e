"""How any stackfleet process finds the cluster: etcd endpoints, certificates, key prefix, shared storage.

Standard library only at import time (the CLI imports it on every call): the registry, and with it
grpc, is imported only by `open_registry`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from stackfleet.registry.endpoints import BadEndpoint, parse_endpoint
from stackfleet.registry.keys import DEFAULT_PREFIX
from stackfleet.registry.tlsfiles import TLSConfigError, TLSFiles

if TYPE_CHECKING:
    from stackfleet.registry.gateway import GatewayReader
    from stackfleet.registry.store import Registry

ENDPOINT_ENV = "STACKFLEET_ENDPOINT"
PREFIX_ENV = "STACKFLEET_PREFIX"
SHARED_DIR_ENV = "STACKFLEET_SHARED_DIR"  # set for every unit by its agent
# fleetctl's FLEETCTL_CA_FILE, FLEETCTL_CERT_FILE, FLEETCTL_KEY_FILE; the CLI's --ca-file,
# --cert-file and --key-file set them for the process (and its agent sets them for the units
# that declare EtcdAccess=true).
CA_FILE_ENV = "STACKFLEET_CA_FILE"
CERT_FILE_ENV = "STACKFLEET_CERT_FILE"
KEY_FILE_ENV = "STACKFLEET_KEY_FILE"
TLS_ENV = (CA_FILE_ENV, CERT_FILE_ENV, KEY_FILE_ENV)
FALLBACK_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_SHARED = "/var/lib/stackfleet/shared"


def resolve_endpoints(flag: str | None = None) -> list[str]:
    """--endpoint, then $STACKFLEET_ENDPOINT, then the running lab, then local etcd.

    A given list is checked here, before anything connects: a malformed one raises BadEndpoint
    (bad input, whose message names the endpoint and where it came from)."""
    source = "--endpoint" if flag is not None else ENDPOINT_ENV
    raw = flag if flag is not None else os.environ.get(ENDPOINT_ENV) or os.environ.get("STACKFLEET_ENDPOINTS")
    if raw is None or (flag is None and not raw.strip()):
        from stackfleet.lab.state import default_endpoints  # reads the lab's file: only when no endpoint is given

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


def resolve_tls(endpoints: list[str]) -> TLSFiles | None:
    """The certificates for https:// endpoints: $STACKFLEET_CA_FILE (with $STACKFLEET_CERT_FILE and
    $STACKFLEET_KEY_FILE), else, for the running lab's endpoints, the lab's admin certificate.

    None for http:// endpoints, and for https:// ones with no certificate known: the connection
    then refuses to start (an https:// endpoint never falls back to plaintext)."""
    if not any(parse_endpoint(e)[0] == "https" for e in endpoints):
        return None
    ca, cert, key = (os.environ.get(name) or None for name in TLS_ENV)
    if ca is not None:
        return TLSFiles(Path(ca), Path(cert) if cert else None, Path(key) if key else None)
    if cert is not None or key is not None:
        raise TLSConfigError("--cert-file/--key-file need --ca-file too (or $STACKFLEET_CA_FILE): "
                             "the CA that signed the cluster's certificates")
    from stackfleet.lab.state import load_lab, pki_dir

    lab = load_lab()
    if lab is not None and set(endpoints) <= set(lab.endpoints):
        from stackfleet.clusterpki import ClusterPKI

        return ClusterPKI(pki_dir(lab)).admin().tls()
    return None


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


def secrets_dir(shared: Path) -> Path:
    """Where the cluster's secrets live on the shared storage (the settings' sealing key):
    root-only, and hidden from every unit but those that declare EtcdAccess=true."""
    return shared / "secrets"


def open_registry(endpoint_flag: str | None = None) -> Registry:
    """The cluster's registry at the resolved endpoints and prefix."""
    from stackfleet.registry.store import Registry

    endpoints = resolve_endpoints(endpoint_flag)
    return Registry.open(endpoints, prefix(), tls=resolve_tls(endpoints))


def open_reader(endpoint_flag: str | None = None) -> GatewayReader:
    """A one-shot reader of the cluster: etcd's JSON gateway for http:// endpoints, one gRPC
    transaction for https:// ones (etcd's gateway cannot act for a client certificate: it
    refuses a request whose certificate has a common name, and forwards one without as no user)."""
    endpoints = resolve_endpoints(endpoint_flag)
    tls = resolve_tls(endpoints)
    if tls is None:
        from stackfleet.registry.gateway import GatewayReader

        return GatewayReader(endpoints, prefix())
    from stackfleet.registry.grpcreader import GrpcReader

    return GrpcReader(endpoints, prefix(), tls=tls)
