"""etcd over TLS with a client certificate.

aetcd only opens plaintext channels, so this client opens the channel itself and then sets up
the same stubs that aetcd's own `connect` does. Which endpoints use it is decided by their
scheme alone (see `connection.py`): an `https://` endpoint never falls back to plaintext.
"""
from __future__ import annotations

from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from .tlsfiles import TLSConfigError, TLSFiles

__all__ = ["TLSClient", "TLSConfigError", "TLSFiles", "channel_credentials"]


def channel_credentials(files: TLSFiles) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class TLSClient(aetcd.Client):  # type: ignore[misc]  # aetcd ships no type information
    def __init__(self, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        self.channel = grpc.aio.secure_channel(
            f"{self._host}:{self._port}", self._credentials, options=list(self._options.items())
        )
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
        self._connected.set()
