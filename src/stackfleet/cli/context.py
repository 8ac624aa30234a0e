"""Running one asyncio command against the cluster, and the CLI's exit codes.

Finding the cluster (endpoints, prefix) is stackfleet.discovery's job; its names are re-exported
here for the CLI's daemon commands.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..discovery import PREFIX_ENV, open_registry, resolve_endpoints
from ..registry.store import Registry

__all__ = ["PREFIX_ENV", "resolve_endpoints", "CommandError", "run_with_registry"]

# Exit codes that scripts can rely on (also listed in `stackfleet --help`).
EXIT_OK = 0
EXIT_FAILED = 1  # bad input, or the operation did not succeed
EXIT_USAGE = 2
EXIT_NOT_ACTIVE = 3  # status: the unit is not running (systemctl's convention)
EXIT_NO_SUCH_UNIT = 4
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the cluster (etcd) cannot be reached


class CommandError(Exception):
    """A user-facing failure: printed as `stackfleet: message`, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def run_with_registry(endpoint_flag: str | None, body: Callable[[Registry], Awaitable[int]]) -> int:
    async def main() -> int:
        registry = open_registry(endpoint_flag)
        try:
            return await body(registry)
        finally:
            await registry.close()

    return asyncio.run(main())
