"""Who writes the directory: a running UCS, or ``ucs-admin`` on the store directly -- never both.

Each running UCS holds the lock ``ucs:<host>:<pid>`` in the store (with its web
address) and refreshes it every :data:`REFRESH` seconds; ``ucs-admin`` writing
the store directly holds :data:`ADMIN_LOCK`.  Each side takes its own lock
first and then looks for the other's: of two that start at once, at least one
sees the other and gives way (UCS refuses to start, ``ucs-admin`` goes through
the running UCS's API).  A lock not refreshed for :data:`STALE_AFTER` seconds
belonged to a process that died and counts for nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ucs.store.errors import StoreError

ADMIN_LOCK = "admin"
NODE_PREFIX = "ucs:"
REFRESH = 30.0
STALE_AFTER = 90.0

log = Logger(namespace="ucs.store")


def holder_id(kind: str) -> str:
    """``<kind>:<host>:<pid>``: this process."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


class LockHeld(StoreError):
    """The other writer holds its lock; ``holder`` is what it wrote there."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def describe(name: str, holder: dict[str, Any]) -> str:
    where = holder.get("holder", name)
    return f"{where} (last seen {holder.get('age', 0):.0f} s ago)"


class WriterLock:
    """One writer's lock: :meth:`take` (then refreshed by itself) and :meth:`release`.

    ``name`` is the lock (``ucs:<host>:<pid>`` or :data:`ADMIN_LOCK`), ``info()`` what
    the holder tells about itself, asked at each refresh; ``excludes(name)`` says which
    other locks it cannot work beside."""

    def __init__(self, store: Any, clock: Any, name: str, excludes: Callable[[str], bool],
                 info: Callable[[], dict[str, Any]] = dict) -> None:
        self._store = store
        self.name = name
        self.holder = name if name != ADMIN_LOCK else holder_id("ucs-admin")
        self._excludes = excludes
        self._info = info
        self._refresh = LoopingCall(lambda: Deferred.fromCoroutine(self._claim_again()))
        self._refresh.clock = clock

    def _value(self) -> dict[str, Any]:
        return {**self._info(), "holder": self.holder, "pid": os.getpid(), "host": socket.gethostname()}

    async def take(self) -> None:
        """Take the lock, or fail with :class:`LockHeld` naming who has it (or the
        lock this one excludes)."""
        other = await self._store.lock_claim(self.name, self._value(), STALE_AFTER)
        if other is not None:
            raise LockHeld(f"{describe(self.name, other)} holds the store's {self.name!r} lock", other)
        held = await self._store.locks(STALE_AFTER)
        for name, holder in held.items():
            if name != self.name and self._excludes(name):
                await self._store.lock_release(self.name, self.holder)
                raise LockHeld(f"{describe(name, holder)} writes the directory in this store", holder)
        self._refresh.start(REFRESH, now=False)

    async def _claim_again(self) -> None:
        try:
            await self._store.lock_claim(self.name, self._value(), STALE_AFTER)
        except Exception as e:
            log.warn("store lock {name}: could not refresh it: {e}", name=self.name, e=e)

    async def release(self) -> None:
        if self._refresh.running:
            self._refresh.stop()
        await self._store.lock_release(self.name, self.holder)


async def running_nodes(store: Any) -> dict[str, dict[str, Any]]:
    """The UCS processes that hold their lock in ``store`` now."""
    held: dict[str, dict[str, Any]] = await store.locks(STALE_AFTER)
    return {k: v for k, v in held.items() if k.startswith(NODE_PREFIX)}
