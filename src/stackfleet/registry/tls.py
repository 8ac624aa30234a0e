"""etcd over TLS with a client certificate.

aetcd only opens plaintext channels, so this client opens the channel itself and then sets up
the same stubs that aetcd's own `connect` does. Which endpoints use it is decided by their
scheme alone (see `connection.py`): an `https://` endpoint never falls back to plaintext.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher


class TLSConfigError(ValueError):
    """The certificate files cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise TLSConfigError("--cert-file and --key-file go together: give both or neither")
        ca = _read(self.ca_file, "--ca-file")
        cert = _read(self.cert_file, "--cert-file") if self.cert_file else None
        key = _read(self.key_file, "--key-file") if self.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise TLSConfigError(f"{path}: cannot read the file given by {flag}: {err.strerror}") from None


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
