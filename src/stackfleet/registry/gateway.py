"""One-shot reads over etcd's JSON gateway, for the CLI's read-only commands.

etcd serves its v3 API as JSON on the same client URL (`POST /v3/kv/txn`, keys base64). A
command that reads once and exits does not need the gRPC client: importing asyncio, grpc and
aetcd alone costs more than the whole read. This reader uses the standard library only, tries
the endpoints in turn, and reads everything a view needs in one transaction (one round trip,
one revision). Writes, watches and leases stay on the gRPC path (store.py).
"""
from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .endpoints import EtcdUnavailable, parse_endpoint
from .keys import DEFAULT_PREFIX, KeySchema, prefix_end
from .records import JobRecord, MachineRecord, ScheduleEntry, UnitState

if TYPE_CHECKING:
    import ssl

    from .tlsfiles import TLSFiles

KV = dict[bytes, bytes]


class GatewayRefused(Exception):
    """A member answered but not as etcd's JSON gateway does (an old etcd, a proxy)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class GatewayReader:
    def __init__(self, endpoints: list[str], prefix: str = DEFAULT_PREFIX, timeout: float = 2.0,
                 tls: TLSFiles | None = None) -> None:
        self.endpoints = list(endpoints)
        self._addresses = [parse_endpoint(e) for e in endpoints]
        self.keys = KeySchema(prefix)
        self.timeout = timeout
        self._tls = tls
        self._index = 0
        self._conn: http.client.HTTPConnection | None = None

    def _context(self) -> ssl.SSLContext:
        import ssl  # only for https:// endpoints

        if self._tls is None:
            from .tlsfiles import TLSConfigError

            raise TLSConfigError("https:// endpoints need the cluster's CA: give --ca-file")
        context = ssl.create_default_context(cafile=str(self._tls.ca_file))
        if self._tls.cert_file is not None:
            context.load_cert_chain(str(self._tls.cert_file), str(self._tls.key_file) if self._tls.key_file else None)
        return context

    def _connect(self) -> http.client.HTTPConnection:
        scheme, host, port = self._addresses[self._index]
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._context())
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _post(self, path: str, request: dict[str, object]) -> dict[str, object]:
        """POST to the current member, moving to the next one on a connection failure."""
        body = json.dumps(request).encode()
        last: BaseException | None = None
        for _ in range(len(self._addresses)):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = self._conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as err:
                last = err
                self.close()
                self._index = (self._index + 1) % len(self._addresses)
                continue
            if response.status != 200:
                raise GatewayRefused(f"{self.endpoints[self._index]}{path}: HTTP {response.status} {payload[:200]!r}")
            answer: dict[str, object] = json.loads(payload)
            return answer
        raise EtcdUnavailable(self.endpoints, last)

    def ranges(self, prefixes: Iterable[bytes], keys: Iterable[bytes] = ()) -> list[KV]:
        """Every key under each prefix, then each single key, read in one transaction."""
        ops = [{"request_range": {"key": _b64(p), "range_end": _b64(prefix_end(p))}} for p in prefixes]
        ops += [{"request_range": {"key": _b64(k)}} for k in keys]
        answer = self._post("/v3/kv/txn", {"success": ops})
        responses = answer.get("responses") or []
        assert isinstance(responses, list)
        return [{base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", ""))
                 for kv in r.get("response_range", {}).get("kvs", [])} for r in responses]

    def cluster(self) -> tuple[dict[str, MachineRecord], dict[str, JobRecord],
                               dict[str, dict[str, ScheduleEntry]], list[UnitState], dict[str, str]]:
        """machines, jobs, schedule (unit -> machine -> entry), states, reasons: as Registry returns them."""
        k = self.keys
        machines, jobs, schedule, states, reasons = self.ranges(
            [k.machines(), k.jobs(), k.schedules(), k.states(), k.reasons()])
        plan: dict[str, dict[str, ScheduleEntry]] = {}
        for key, raw in schedule.items():
            machine, unit = k.split(key, k.schedules())
            plan.setdefault(unit, {})[machine] = ScheduleEntry.decode(raw)
        return ({m.id: m for m in map(MachineRecord.decode, machines.values())},
                {j.name: j for j in map(JobRecord.decode, jobs.values())},
                plan,
                [UnitState.decode(raw) for raw in states.values()],
                {k.split(key, k.reasons())[0]: raw.decode() for key, raw in reasons.items()})

    def bodies(self, hashes: Iterable[str]) -> dict[str, str]:
        """The unit bodies of these hashes that the cluster holds."""
        wanted = sorted(set(hashes))
        if not wanted:
            return {}
        keys = [self.keys.body(h) for h in wanted]
        found = self.ranges([], keys)
        return {h: kv[key].decode() for h, key, kv in zip(wanted, keys, found, strict=True) if key in kv}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
