"""The store as a service of UCS's tree, and the stand-in for it until it opens.

Split out of ``ucs.server`` (issue 15): opening and closing the store
(``[store] url``) and waiting for it are the store's business, not the
container's.  :class:`StoreService` opens it when started and closes it when
stopped; :class:`StoreProxy` is what components built before it opens hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.config import Config
from ucs.store import Store, open_store

#: The namespace these messages always had (JSON logs show it; filters may name it).
log = Logger(namespace="ucs.server")


class StoreService(Service):
    """Opens the store when started, closes it when stopped."""

    def __init__(self, config: Config, reactor: Any,
                 observe: Callable[[str, str, float], None] | None = None) -> None:
        self.setName("store")
        self._config = config
        self._reactor = reactor
        self._observe = observe
        self.store: Store | None = None
        self._opening: Deferred[Store] | None = None
        self._waiters: list[Deferred[Store]] = []
        self._failure: Failure | None = None

    def startService(self) -> None:
        super().startService()
        # The reactor is also the clock the store stamps its rows with (saved, updated).
        self._opening = open_store(self._config.store.url, self._reactor, pool_size=self._config.store.pool_size,
                                   clock=self._reactor)
        self._opening.addCallbacks(self._opened, self._failed)

    def _opened(self, store: Store) -> None:
        store.observe = self._observe
        self.store = store
        log.info("store open: {url} (schema version {v})", url=str(store.url), v=store.schema_version)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(store)

    def _failed(self, failure: Failure) -> None:
        self._failure = failure
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(failure)

    def when_open(self) -> Deferred[Store]:
        """Fires with the open :class:`Store` (at once if it is open already)."""
        d: Deferred[Store] = Deferred()
        if self.store is not None:
            d.callback(self.store)
        elif self._failure is not None:
            d.errback(self._failure)
        else:
            self._waiters.append(d)
        return d

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        if self._opening is not None and self.store is None and self._failure is None:
            try:
                await self.when_open()
            except Exception:
                return
        store, self.store = self.store, None
        if store is not None:
            await store.close()
            log.info("store closed: {url}", url=str(store.url))


class StoreProxy:
    """Stands for the store until it opens: every method call waits for it.

    ``when_open()`` fires with the open store (the container's
    ``when_store_open``); it is asked at each call."""

    def __init__(self, when_open: Callable[[], Deferred[Store]]) -> None:
        self._when_open = when_open

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            store = await self._when_open()
            return await getattr(store, name)(*args, **kwargs)

        def method(*args: Any, **kwargs: Any) -> Deferred[Any]:
            return Deferred.fromCoroutine(call(*args, **kwargs))

        return method
