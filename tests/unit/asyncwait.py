"""Polling helpers for the tests that drive the real engine or agent on the fake registry."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 5.0) -> T:
    """The first truthy result of check(), polled every 10 ms; fails the test at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {check.__doc__ or check}"
        await asyncio.sleep(0.01)
