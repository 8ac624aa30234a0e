"""Finding the cluster and running one asyncio command against it."""
from __future__ import annotations

import asyncio
import os
from typing import Awaitable, Callable

from ..registry.keys import DEFAULT_PREFIX
from ..registry.store import Registry

ENDPOINT_ENV = "STACKFLEET_ENDPOINT"
PREFIX_ENV = "STACKFLEET_PREFIX"
FALLBACK_ENDPOINT = "http://127.0.0.1:2379"

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


def resolve_endpoints(flag: str | None) -> list[str]:
    """--endpoint, then $STACKFLEET_ENDPOINT, then the running lab, then local etcd."""
    raw = flag or os.environ.get(ENDPOINT_ENV) or os.environ.get("STACKFLEET_ENDPOINTS")
    if raw:
        return [e.strip() for e in raw.split(",") if e.strip()]
    from ..lab.state import default_endpoints

    return default_endpoints() or [FALLBACK_ENDPOINT]


def run_with_registry(endpoint_flag: str | None, body: Callable[[Registry], Awaitable[int]]) -> int:
    async def main() -> int:
        registry = Registry.open(resolve_endpoints(endpoint_flag), os.environ.get(PREFIX_ENV, DEFAULT_PREFIX))
        try:
            return await body(registry)
        finally:
            await registry.close()

    return asyncio.run(main())
