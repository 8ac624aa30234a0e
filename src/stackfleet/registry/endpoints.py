"""etcd endpoint URLs, parsed and checked, and the failure to reach any of them.

Standard library only: the CLI checks --endpoint before it imports gRPC, and the JSON gateway
(gateway.py) reads over plain HTTP with no gRPC at all; both report an unreachable cluster with
the same EtcdUnavailable (re-exported by connection.py, where it used to live).
"""
from __future__ import annotations

from urllib.parse import urlsplit


class BadEndpoint(ValueError):
    """An endpoint that is not HOST:PORT or http(s)://HOST:PORT; the message says which."""


def parse_endpoint(endpoint: str) -> tuple[str, str, int]:
    """'https://10.0.0.1:2379', 'http://10.0.0.1:2379', '10.0.0.1:2379' or '10.0.0.1'
    -> (scheme, host, port); no scheme means http."""
    hint = "expected http://HOST:PORT or https://HOST:PORT"
    try:
        url = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
        port = url.port
    except ValueError as err:  # urlsplit's own words: "Port out of range 0-65535" and the like
        raise BadEndpoint(f"not an etcd endpoint: {endpoint!r}: {err} ({hint})") from None
    scheme = url.scheme or "http"
    if scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
        raise BadEndpoint(f"not an etcd endpoint: {endpoint!r} ({hint})")
    if port == 0:
        raise BadEndpoint(f"not an etcd endpoint: {endpoint!r}: port 0 ({hint})")
    return scheme, url.hostname, port or 2379


class EtcdUnavailable(Exception):
    """No endpoint of the cluster answered; `hint` says what to check, when more is known."""

    def __init__(self, endpoints: list[str], cause: BaseException | None, hint: str | None = None) -> None:
        self.endpoints = endpoints
        self.cause = cause
        self.hint = hint
        detail = f": {type(cause).__name__} {cause}".rstrip() if cause else ""
        super().__init__(f"etcd is unreachable at {', '.join(endpoints)}{detail}")


class AccessDenied(Exception):
    """etcd refused the request for the user of the client certificate (auth is on)."""
