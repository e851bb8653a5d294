"""Two UCS nodes' directories on one store, and changes started in the same turn.

Two :class:`Directory` objects on one store stand for two nodes whose memory the
other's change has not reached yet (no directory sync: the moment before a node
hears of it) -- what the store alone must decide (claims, revisions).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList

from ucs.directory.directory import Directory
from ucs.store import open_store


async def two_nodes(store_url: str, *, audit: bool = False) -> tuple[Any, Directory, Directory]:
    store = await open_store(store_url, reactor)
    a, b = (Directory(store, audit=store), Directory(store, audit=store)) if audit else \
        (Directory(store), Directory(store))
    await a.load()
    await b.load()
    return store, a, b


async def at_once(*coroutines: Any) -> list[tuple[bool, Any]]:
    """Each coroutine's (succeeded, result or failure's value), started in the same turn."""
    results = await DeferredList([Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)
    return [(ok, value if ok else value.value) for ok, value in results]
