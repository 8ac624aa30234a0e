"""One logical connection to an etcd cluster, failing over across its endpoints.

aetcd talks to a single endpoint. This wrapper owns the current client, moves to
the next endpoint when a call fails for a reason another member could fix, and
counts generations so that watches know when to resume on a new client.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aetcd
import aetcd.exceptions as aexc
import grpc

from .endpoints import AccessDenied, BadEndpoint, EtcdUnavailable, parse_endpoint
from .tls import TLSClient, channel_credentials
from .tlsfiles import TLSConfigError, TLSFiles

__all__ = ["AccessDenied", "BadEndpoint", "EtcdConnection", "EtcdUnavailable", "parse_endpoint"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "this member cannot answer now", as opposed to "the request is wrong".
RETRYABLE: tuple[type[BaseException], ...] = (
    aexc.ConnectionFailedError,
    aexc.ConnectionTimeoutError,
    aexc.InternalError,
    aexc.WatchTimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
)

# What etcd answers when auth is on and the certificate's user may not do this.
_DENIED = ("permission denied", "user name not found", "user name is empty", "authentication failed")

# A dead peer on a hung TCP connection is only noticed through keepalive pings. etcd answers
# pings sooner than its --grpc-keepalive-min-time (5 s), or any ping while no stream is open,
# with GOAWAY "too_many_pings": so ping well above 5 s, and only while a call or watch runs.
# Each request has its own timeout anyway; the pings only catch a hung long-lived stream.
_CHANNEL_OPTIONS = {
    "grpc.keepalive_time_ms": 10000,
    "grpc.keepalive_timeout_ms": 2000,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
}


class EtcdConnection:
    def __init__(self, endpoints: list[str], timeout: float = 2.0, tls: TLSFiles | None = None) -> None:
        if not endpoints:
            raise BadEndpoint("at least one etcd endpoint is needed (--endpoint URL[,URL...])")
        self.endpoints = list(endpoints)
        parsed = [parse_endpoint(e) for e in endpoints]
        schemes = {scheme for scheme, _, _ in parsed}
        if len(schemes) > 1:
            raise BadEndpoint("endpoints mix http:// and https://; a cluster is one or the other")
        self._addresses = [(host, port) for _, host, port in parsed]
        self._credentials: grpc.ChannelCredentials | None = None
        self._tls = tls
        if schemes == {"https"}:
            if tls is None:
                raise TLSConfigError("https:// endpoints need the cluster's CA: give --ca-file "
                                     "(and --cert-file/--key-file when the cluster asks for a client certificate)")
            self._credentials = channel_credentials(tls)
        elif tls is not None:
            raise TLSConfigError("certificates were given for plaintext http:// endpoints; use https://")
        self.timeout = timeout
        self._index = 0
        self._client: aetcd.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self._lock = asyncio.Lock()
        self.requests = 0  # every RPC sent, for the scale benchmark

    @property
    def current(self) -> str:
        return self.endpoints[self._index]

    async def client(self) -> aetcd.Client:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            self._client = None  # its channel belongs to an event loop that is gone (a new asyncio.run)
        if self._client is None:
            self._loop = loop
            host, port = self._addresses[self._index]
            client = (
                aetcd.Client(host=host, port=port, timeout=None, options=_CHANNEL_OPTIONS)
                if self._credentials is None
                else TLSClient(self._credentials, host=host, port=port, timeout=None, options=_CHANNEL_OPTIONS)
            )
            await client.connect()
            self._client = client
        return self._client

    async def failover(self, generation: int) -> None:
        """Drop the client of `generation` and move to the next endpoint (once per generation)."""
        async with self._lock:
            if generation != self.generation:
                return
            old, self._client = self._client, None
            self._index = (self._index + 1) % len(self._addresses)
            self.generation += 1
        if old is not None:
            log.info("etcd: failing over to %s", self.current)
            await _close_quietly(old)

    async def call(
        self,
        op: Callable[[aetcd.Client], Awaitable[T]],
        timeout: float | None = None,
        rounds: int = 1,
    ) -> T:
        """Run op against the current member; on a retryable failure try the next ones.

        Gives up with EtcdUnavailable after `rounds` passes over all endpoints.
        """
        last: BaseException | None = None
        for _ in range(rounds * len(self._addresses)):
            generation = self.generation
            try:
                client = await self.client()
                self.requests += 1
                return await asyncio.wait_for(op(client), timeout or self.timeout)
            except RETRYABLE as err:
                last = err
                await self.failover(generation)
            except aexc.ClientError as err:
                if any(words in str(err) for words in _DENIED):
                    raise AccessDenied(f"etcd refused the request: {err} (the user is the common name of "
                                       f"{self._tls.cert_file if self._tls else 'the client certificate'}; "
                                       "the admin certificate may do everything)") from None
                raise
            except asyncio.CancelledError as err:
                # A concurrent call failed over and closed the channel this call was using:
                # gRPC reports that as a cancellation. Only a cancellation of our own task stops us.
                task = asyncio.current_task()
                if generation == self.generation or (task is not None and task.cancelling()):
                    raise
                last = err
        raise EtcdUnavailable(self.endpoints, last, self._hint(last))

    def _hint(self, cause: BaseException | None) -> str | None:
        """What to check when a TLS cluster does not answer: most often, the certificates."""
        if self._tls is None:
            return None
        if self._tls.cert_file is None:
            return "the cluster may want a client certificate: give --cert-file and --key-file too"
        if any(words in str(cause) for words in ("andshake", "SSL", "TSI_", "ertificate")):
            return (f"the TLS handshake failed: is {self._tls.ca_file} the CA of the cluster's certificates, "
                    f"does it know {self._tls.cert_file}, and does the endpoint serve TLS?")
        return None

    async def close(self) -> None:
        old, self._client = self._client, None
        if old is not None:
            await _close_quietly(old)


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await asyncio.wait_for(client.close(), 2.0)
    except Exception as err:  # closing a broken channel may fail in many ways; it is gone either way
        log.debug("etcd: closing client: %r", err)
