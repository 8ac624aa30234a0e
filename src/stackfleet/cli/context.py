"""Running one asyncio command against the cluster.

Finding the cluster (endpoints, prefix) is stackfleet.discovery's job; its names are re-exported
here for the CLI's daemon commands, and the exit codes (cli.errors) for old callers.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..discovery import PREFIX_ENV, open_registry, resolve_endpoints
from ..registry.store import Registry
from .errors import EXIT_FAILED, EXIT_NO_SUCH_UNIT, EXIT_NOT_ACTIVE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError

__all__ = ["PREFIX_ENV", "resolve_endpoints", "CommandError", "run_with_registry", "EXIT_OK", "EXIT_FAILED",
           "EXIT_USAGE", "EXIT_NOT_ACTIVE", "EXIT_NO_SUCH_UNIT", "EXIT_UNAVAILABLE"]


def run_with_registry(endpoint_flag: str | None, body: Callable[[Registry], Awaitable[int]]) -> int:
    async def main() -> int:
        registry = open_registry(endpoint_flag)
        try:
            return await body(registry)
        finally:
            await registry.close()

    return asyncio.run(main())
