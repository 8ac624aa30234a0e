"""Running a one-shot read-only command over etcd's JSON gateway: no asyncio, no gRPC."""
from __future__ import annotations

from collections.abc import Callable

from ..discovery import open_reader
from ..registry.gateway import GatewayReader, GatewayRefused
from .errors import EXIT_FAILED, CommandError


def run_read(endpoint_flag: str | None, body: Callable[[GatewayReader], int]) -> int:
    reader = open_reader(endpoint_flag)
    try:
        return body(reader)
    except GatewayRefused as err:
        raise CommandError(f"{err} (is it etcd 3.4 or later, with its JSON gateway on?)", EXIT_FAILED) from None
    finally:
        reader.close()
