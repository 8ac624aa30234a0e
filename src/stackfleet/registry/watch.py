"""A prefix watch that survives endpoint failover and compaction.

The consumer sees a stream of updates: first a full listing (reset), then batches
of changes. After a failover the watch resumes from the last revision seen; if that
revision was compacted away it sends a fresh full listing instead of a silent gap.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aetcd.exceptions as aexc
from aetcd.utils import prefix_range_end

from .connection import RETRYABLE, EtcdConnection, EtcdUnavailable

log = logging.getLogger(__name__)

_MAX_BATCH = 4096


@dataclass
class WatchUpdate:
    revision: int
    reset: bool = False
    items: dict[bytes, bytes] = field(default_factory=dict)  # complete content, when reset
    changes: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # None = deleted


async def list_prefix(conn: EtcdConnection, prefix: bytes) -> WatchUpdate:
    resp = await conn.call(lambda c: c.get_prefix(prefix), timeout=max(conn.timeout, 10.0))
    return WatchUpdate(
        revision=resp.header.revision, reset=True, items={kv.key: kv.value for kv in resp.kvs}
    )


async def watch_prefix(conn: EtcdConnection, prefix: bytes) -> AsyncIterator[WatchUpdate]:
    revision: int | None = None
    while True:
        if revision is None:
            try:
                update = await list_prefix(conn, prefix)
            except EtcdUnavailable as err:
                log.warning("watch %s: %s; retrying", prefix.decode(), err)
                await asyncio.sleep(0.2)
                continue
            revision = update.revision
            yield update
        generation = conn.generation
        try:
            async for update in _stream(conn, prefix, revision + 1):
                revision = update.revision
                yield update
        except aexc.RevisionCompactedError:
            log.warning("watch %s: revision %d compacted; full resync", prefix.decode(), revision)
            revision = None
        except RETRYABLE as err:
            log.info("watch %s: %r; resuming from revision %d", prefix.decode(), err, revision)
            await conn.failover(generation)
            await asyncio.sleep(0.05)
        # A stream that simply ends was closed by a failover elsewhere: loop and resume.


async def _stream(conn: EtcdConnection, prefix: bytes, start: int) -> AsyncIterator[WatchUpdate]:
    client = await conn.client()
    conn.requests += 1
    watch = await asyncio.wait_for(
        client.watch(prefix, range_end=prefix_range_end(prefix), start_revision=start),
        conn.timeout,
    )
    queue: asyncio.Queue[object] = asyncio.Queue()
    done = object()

    async def pump() -> None:
        try:
            async for event in watch:
                queue.put_nowait(event)
        except Exception as err:  # handed to the consumer, which decides what it means
            queue.put_nowait(err)
        queue.put_nowait(done)

    task = asyncio.create_task(pump())
    try:
        while True:
            items = [await queue.get()]
            while not queue.empty() and len(items) < _MAX_BATCH:
                items.append(queue.get_nowait())
            changes: list[tuple[bytes, bytes | None]] = []
            revision = 0
            finished: BaseException | None = None
            ended = False
            for item in items:
                if item is done:
                    ended = True
                elif isinstance(item, BaseException):
                    finished = item
                else:
                    kv = item.kv  # type: ignore[attr-defined]
                    changes.append((kv.key, kv.value if item.kind == "PUT" else None))  # type: ignore[attr-defined]
                    revision = max(revision, kv.mod_revision)
            if changes:
                yield WatchUpdate(revision=revision, changes=changes)
            if finished is not None:
                raise finished
            if ended:
                return
    finally:
        task.cancel()
        try:
            await asyncio.wait_for(watch.cancel(), 1.0)
        except Exception as err:  # the stream may already be gone with its channel
            log.debug("watch cancel: %r", err)
