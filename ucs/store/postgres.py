"""The PostgreSQL back end: psycopg 3's synchronous connections in a thread pool.

Why not psycopg's ``AsyncConnection``: it runs on an asyncio event loop, and
driving it from Twisted means either running the whole server on the asyncio
reactor (a choice forced on every other part and every test) or a second event
loop in a thread with two hand-offs per query. Synchronous connections in the
store's own threads are simpler, behave exactly like the SQLite back end, and
keep all blocking off the reactor. Each thread has its own connection
(``[store] pool_size`` of them), in autocommit mode; every statement the store
runs is a whole unit of work, and migrations use explicit transactions under an
advisory lock so that several UCS nodes starting at once migrate once.

When the server goes away (stopped, restarted, crashed, the session
terminated) a connection is only found dead when next used; the store then
opens a new one and runs the operation once more (see ``Store._in_thread``),
so after a restart nothing fails, and while the server is down every
operation fails with a ``StoreError`` ("cannot connect to store ...").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ucs.store.errors import StoreError
from ucs.store.url import StoreURL

#: First key of the advisory lock taken while migrating (the second is the schema's hash).
MIGRATION_LOCK = 0x7563_7300  # "ucs\0"
DEFAULT_CONNECT_TIMEOUT = 10


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class PostgresBackend:
    dialect = "postgresql"
    # JSON, not JSONB: JSONB rewrites numbers (1e300 comes back as a 301-digit
    # integer) and reorders keys; JSON keeps the text as written, so a CDR reads
    # back exactly as saved, as on SQLite. Cast to JSONB in queries that need it.
    types = {"json": "JSON", "real": "DOUBLE PRECISION", "text": "TEXT"}

    def __init__(self, url: StoreURL, pool_size: int = 4) -> None:
        self.url = url
        self.threads = pool_size

    def connect(self) -> Any:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            parsed = conninfo_to_dict(self.url.url)
        except psycopg.Error as e:
            raise StoreError(f"cannot use store {self.url}: {one_line(e)}") from None
        params: dict[str, Any] = dict(parsed)
        params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        params.setdefault("application_name", "ucs")
        try:
            return psycopg.connect(autocommit=True, **params)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to store {self.url}: {one_line(e)}") from None

    @contextmanager
    def transaction(self, conn: Any, *, exclusive: bool = False) -> Iterator[None]:
        with conn.transaction():
            if exclusive:
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (MIGRATION_LOCK,))
            yield

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def json_out(self, value: Any) -> Any:
        return value  # psycopg turns JSON into Python values itself

    def refused(self, error: BaseException) -> bool:
        # DataError (class 22: invalid JSON text, out of range) and IntegrityError
        # (class 23) are about the values; so is a ProgrammingError psycopg raises
        # itself (no SQLSTATE: a value it cannot adapt).  A ProgrammingError from the
        # server (class 42: a missing table, a revoked privilege) and OperationalError
        # (the server away, restarting, out of resources) are the database's state.
        import psycopg

        if isinstance(error, (psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)):
            return True
        return isinstance(error, psycopg.ProgrammingError) and getattr(error, "sqlstate", None) is None
