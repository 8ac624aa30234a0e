"""The HTTP readiness probe: any answer below 500, or exactly the status a process asks for."""
import asyncio

import pytest

from stackfleet.openstack.probes import http_ready


async def _serving(status: int, check):
    async def answer(reader, writer):
        await reader.readline()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await check(port)


@pytest.mark.parametrize("status,wanted,ready", [
    (302, None, True), (404, None, True), (500, None, False),
    (200, 200, True), (302, 200, False), (500, 200, False)])
def test_http_ready(status, wanted, ready):
    assert asyncio.run(_serving(status, lambda port: http_ready(
        "127.0.0.1", port, "/auth/login/", wanted))) is ready


def test_nothing_listening_is_not_ready():
    assert asyncio.run(http_ready("127.0.0.1", 1, "/", 200, timeout=1.0)) is False
