"""The long-running processes: `stackfleet agent` and `stackfleet engine`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable
from pathlib import Path

from ..agent.unitaccess import UnitAccess
from ..discovery import resolve_tls, secrets_dir
from ..registry.interface import MachineIdTaken
from ..registry.keys import DEFAULT_PREFIX
from ..registry.records import MachineRecord
from ..registry.store import Registry
from ..registry.tlsfiles import CertFiles, TLSFiles
from .context import PREFIX_ENV, CommandError, resolve_endpoints


def parse_metadata(values: list[str]) -> dict[str, str]:
    """--metadata role=controller,disk=ssd (repeatable) -> {'role': 'controller', 'disk': 'ssd'}."""
    meta: dict[str, str] = {}
    for value in values:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            key, sep, val = pair.partition("=")
            if not sep or not key or not val:
                raise CommandError(f"--metadata {pair!r}: expected KEY=VALUE, e.g. role=controller", 2)
            meta[key] = val
    return meta


def _serve(main: Awaitable[None]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        # SIGTERM ends the process without revoking the lease, so a restarted agent adopts its units.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())
    return 0


def agent(args: argparse.Namespace) -> int:
    from ..agent.agent import Agent, AgentConfig
    from ..runtime import ProcessRuntime

    state_dir = Path(args.state_dir)
    machine = MachineRecord(
        id=args.machine_id or _machine_id(),
        name=args.name or socket.gethostname(),
        public_ip=args.public_ip,
        metadata=parse_metadata(args.metadata),
        state_dir=str(state_dir),
        netns=args.netns or "",
    )
    endpoints = resolve_endpoints(args.endpoint)
    tls = resolve_tls(endpoints)
    shared = Path(args.shared_dir)
    access = UnitAccess(tuple(Path(d).resolve() for d in args.private_dir), secrets_dir(shared),
                        _unit_tls(tls, args.unit_cert_file, args.unit_key_file), confine=os.geteuid() == 0)
    config = AgentConfig(machine, state_dir, shared, endpoints, args.ttl, access)

    async def main() -> None:
        registry = Registry.open(endpoints, os.environ.get(PREFIX_ENV, DEFAULT_PREFIX), tls=tls)
        try:
            await Agent(registry, config, ProcessRuntime(state_dir / "runtime", hostname=machine.name)).run()
        finally:
            await registry.close()

    try:
        return _serve(main())
    except MachineIdTaken as err:  # a clone of another machine: say what to do, no traceback
        raise CommandError(str(err)) from None


def engine(args: argparse.Namespace) -> int:
    from ..engine.service import Engine

    endpoints = resolve_endpoints(args.endpoint)
    tls = resolve_tls(endpoints)

    async def main() -> None:
        registry = Registry.open(endpoints, os.environ.get(PREFIX_ENV, DEFAULT_PREFIX), tls=tls)
        try:
            await Engine(registry, args.name or socket.gethostname(), args.ttl).run()
        finally:
            await registry.close()

    return _serve(main())


def _unit_tls(tls: TLSFiles | None, cert: str | None, key: str | None) -> CertFiles | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise CommandError("--unit-cert-file and --unit-key-file go together", 2)
    if tls is None:
        raise CommandError("--unit-cert-file is for https:// clusters: give https:// endpoints and --ca-file", 2)
    return CertFiles(tls.ca_file.resolve(), Path(cert).resolve(), Path(key).resolve())


def _machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        raise CommandError("no --machine-id given and /etc/machine-id is unreadable", 2) from None
