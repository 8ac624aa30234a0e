"""Endpoint parsing: bad input is refused with the endpoint named, before any connection."""
from __future__ import annotations

import pytest

from stackfleet.registry.connection import BadEndpoint, EtcdConnection, parse_endpoint


@pytest.mark.parametrize("endpoint", ["http://h:99999", "http://[::1", "ftp://h:1", "http://h:1/x", "http://:5"])
def test_malformed_endpoints_are_refused_with_the_endpoint_named(endpoint: str) -> None:
    with pytest.raises(BadEndpoint, match="not an etcd endpoint"):
        EtcdConnection([endpoint])
    with pytest.raises(BadEndpoint, match="at least one"):
        EtcdConnection([])


@pytest.mark.parametrize(("endpoint", "parsed"), [
    ("http://10.0.0.1:2379", ("http", "10.0.0.1", 2379)),
    ("https://h:4001/", ("https", "h", 4001)),
    ("10.0.0.1:23", ("http", "10.0.0.1", 23)),
    ("10.0.0.1", ("http", "10.0.0.1", 2379)),
    ("http://[::1]:2379", ("http", "::1", 2379)),
])
def test_endpoints_parse(endpoint: str, parsed: tuple[str, str, int]) -> None:
    assert parse_endpoint(endpoint) == parsed


def test_endpoints_of_one_cluster_share_a_scheme() -> None:
    with pytest.raises(BadEndpoint, match="mix"):
        EtcdConnection(["http://a:1", "https://b:1"])
