from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from stackfleet.registry.localetcd import LocalEtcd, LocalEtcdCluster

if shutil.which("etcd") is None:
    pytest.skip("etcd is not installed (scripts/install installs it)", allow_module_level=True)


@pytest.fixture
def etcd() -> Iterator[LocalEtcd]:
    with LocalEtcd() as server:
        yield server


@pytest.fixture
def etcd_cluster() -> Iterator[LocalEtcdCluster]:
    with LocalEtcdCluster(3) as cluster:
        yield cluster
