"""Readiness probes: does a port accept, does an HTTP API answer (stdlib asyncio only)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


def status_of(response_head: bytes) -> int | None:
    """The status code from the first line of an HTTP response, or None if it is not one."""
    parts = response_head.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


async def http_status(host: str, port: int, path: str = "/", timeout: float = 3.0) -> int | None:
    """GET without auth; the version documents of every OpenStack API answer that."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.read(64), timeout)
        writer.close()
    except (TimeoutError, OSError):
        return None
    return status_of(head)


async def http_answers(host: str, port: int, path: str = "/", timeout: float = 3.0) -> bool:
    """Any HTTP answer below 500 means the API process serves requests."""
    status = await http_status(host, port, path, timeout)
    return status is not None and status < 500


async def http_ready(host: str, port: int, path: str, status: int | None,
                     timeout: float = 3.0) -> bool:
    """Exactly `status` if one is wanted, else any answer below 500 (see http_answers)."""
    if status is None:
        return await http_answers(host, port, path, timeout)
    return await http_status(host, port, path, timeout) == status


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float,
                     say: Callable[[str], None] = print, interval: float = 0.2) -> float:
    """Polls an async check until it is true; returns the seconds waited, raises on timeout."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        await asyncio.sleep(interval)
    waited = time.monotonic() - started
    say(f"{what} ready after {waited:.1f} s")
    return waited
