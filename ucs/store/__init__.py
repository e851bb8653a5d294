"""Storage: CDRs and key-value data on SQLite (default) or PostgreSQL.

::

    store = await open_store("sqlite:///var/ucs.db", reactor)
    await store.save_cdr({"uniqueid": "1700000000.1", "direction": "INCOMING", ...})
    cdr = await store.get_cdr("1700000000.1")
    await store.kv_set("agents", "alice", {"state": "READY"})
    await store.close()

Every method returns a Deferred; the database work runs in the store's own
threads. See :mod:`ucs.store.base` for the API and :mod:`ucs.store.migrations`
for the schema.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ucs.store.base import CDR_FIELDS, Store
from ucs.store.errors import StoreError, StoreRefused, StoreURLError
from ucs.store.migrations import LATEST_VERSION
from ucs.store.url import POSTGRESQL, SQLITE, StoreURL, parse_store_url

__all__ = [
    "CDR_FIELDS",
    "LATEST_VERSION",
    "Store",
    "StoreError",
    "StoreRefused",
    "StoreURL",
    "StoreURLError",
    "open_store",
    "parse_store_url",
]


def open_store(url: str | StoreURL, reactor: Any, *, pool_size: int = 4, clock: Any = None) -> Deferred[Store]:
    """Open the store at ``url`` and bring its schema up to date.

    Fires with the :class:`Store`, or fails with :class:`StoreURLError` for a URL
    UCS cannot use and :class:`StoreError` (naming the URL without its password)
    when the database cannot be opened. ``pool_size`` is the number of
    PostgreSQL connections; SQLite always uses one thread. ``clock`` (an
    ``IReactorTime``, the reactor when ``None``) gives the time rows are
    stamped with.
    """

    async def opening() -> Store:
        parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
        backend: Any
        if parsed.scheme == SQLITE:
            from ucs.store.sqlite import SQLiteBackend

            backend = SQLiteBackend(parsed)
        else:
            assert parsed.scheme == POSTGRESQL
            from ucs.store.postgres import PostgresBackend

            backend = PostgresBackend(parsed, pool_size)
        store = Store(parsed, backend, reactor, clock)
        await store._open()
        return store

    return Deferred.fromCoroutine(opening())
