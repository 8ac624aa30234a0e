"""The evacuator's hands in Nova, through openstacksdk: runs in the OpenStack venv
(`python -m stackfleet.openstack.nova_ha`, credentials in OS_*), spoken to in JSON lines.

Each request is one line {"id": N, "op": ..., ...}; each answer one line {"id": N, "ok": ...} or
{"id": N, "error": "..."}. Requests are served in a thread pool, so evacuations run in parallel;
how many at once is the planner's bound.

Writes use compute API microversion 2.53, for both of its calls:
- PUT /os-services/{id} {"forced_down": true|false}: 2.53 addresses a service by its UUID (the
  2.11 force-down action, which openstacksdk's helper uses, is gone from 2.53 on);
- POST /servers/{id}/action {"evacuate": {}}: no host (Nova's scheduler picks a healthy one),
  and no onSharedStorage, which Nova detects itself since 2.14. Below 2.95, so an instance that
  was ACTIVE comes back ACTIVE (2.95 leaves evacuated instances stopped).
"""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

MICROVERSION = "2.53"
THREADS = 8


def stamp(text: str | None) -> float | None:
    """Nova's times (UTC, with or without a zone) as seconds since the epoch."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Nova:
    def __init__(self) -> None:
        from stackfleet.openstack.workflow import connect_from_env  # the OpenStack venv only

        self.conn = connect_from_env()

    def observe(self, hosts: list[str], members: list[str] | None = None) -> dict[str, Any]:
        """Compute services, every server, and the evacuations from `hosts` and from every host
        whose name is not in `members` (when given)."""
        compute = self.conn.compute
        services = [{"host": s.host, "service_id": s.id, "forced_down": bool(s.is_forced_down),
                     "updated_at": stamp(s.updated_at)} for s in compute.services(binary="nova-compute")]
        if members is not None:
            hosts = sorted(set(hosts) | {s["host"] for s in services if s["host"] not in members})
        servers = [{"id": s.id, "name": s.name, "host": s.compute_host, "vm_state": s.vm_state or "",
                    "task_state": s.task_state, "metadata": dict(s.metadata or {})}
                   for s in compute.servers(details=True, all_projects=True)]
        migrations = [{"id": str(m.id), "instance_id": m.server_id, "source": m.source_compute,
                       "dest": m.dest_compute, "status": m.status, "created_at": stamp(m.created_at) or 0.0}
                      for host in hosts
                      for m in compute.migrations(migration_type="evacuation", source_compute=host)]
        return {"services": services, "instances": servers, "migrations": migrations}

    def force_down(self, service_id: str, down: bool) -> dict[str, Any]:
        response = self.conn.compute.put(f"/os-services/{service_id}", json={"forced_down": down},
                                         microversion=MICROVERSION)
        _check(response)
        return {"forced_down": response.json()["service"]["forced_down"]}

    def evacuate(self, instance_id: str) -> dict[str, Any]:
        response = self.conn.compute.post(f"/servers/{instance_id}/action", json={"evacuate": {}},
                                          microversion=MICROVERSION)
        _check(response)
        return {}


def _check(response: Any) -> None:
    if response.status_code >= 400:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text.strip()[:300]}")


OPS = ("observe", "force_down", "evacuate")


def serve(nova: Any, lines: Any, write: Callable[[str], None]) -> None:
    """Answer each request line; the process ends when its input does."""
    lock = threading.Lock()

    def answer(request: dict[str, Any]) -> None:
        try:
            if request.get("op") not in OPS:
                raise ValueError(f"unknown op {request.get('op')!r}")
            args = {k: v for k, v in request.items() if k not in ("id", "op")}
            reply: dict[str, Any] = {"id": request["id"], "ok": getattr(nova, request["op"])(**args)}
        except Exception as exc:  # reported to the runner, which records it
            reply = {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}
        with lock:
            write(json.dumps(reply) + "\n")

    with ThreadPoolExecutor(THREADS) as pool:
        for line in lines:
            if line.strip():
                pool.submit(answer, json.loads(line))


def main() -> int:
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    serve(Nova(), sys.stdin, write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
