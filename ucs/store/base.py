"""The store: CDRs and a key-value table, on SQLite or PostgreSQL.

Every method that touches the database returns a :class:`Deferred` (so it can
be ``await``-ed in ``async def`` code or chained in callback code) and does the
database work in the store's own thread pool: nothing here blocks the reactor.
The methods are written as ``async def`` and turned into Deferreds at the edge
by :func:`_deferred`.

Back ends (:mod:`ucs.store.sqlite`, :mod:`ucs.store.postgres`) only open
connections and say how their SQL differs; the SQL, the migrations and the
checks live here once.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ucs.store.audit import AuditMixin
from ucs.store.coding import _deferred, dumps, no_nul
from ucs.store.errors import Changed, Fenced, KeyTaken, StoreError, StoreRefused
from ucs.store.migrations import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_TABLE
from ucs.store.sessions import SessionsMixin
from ucs.store.url import StoreURL

T = TypeVar("T")

log = Logger(namespace="ucs.store")

#: The keys of a CDR dict, in column order. ``uniqueid`` (the call's Linkedid) is required.
CDR_FIELDS: tuple[str, ...] = (
    "uniqueid",
    "direction",
    "caller_number",
    "caller_name",
    "called_number",
    "connected_number",
    "connected_name",
    "queue",
    "answered_by",
    "cause",
    "created",
    "connected",
    "disconnected",
    "account_code",
    "metadata",
    "journey",
    "data",
)
_TIME_FIELDS = frozenset({"created", "connected", "disconnected"})
_JSON_FIELDS = {"metadata": dict, "journey": list, "data": dict}

MAX_LIST_LIMIT = 10_000

#: The value that deletes a key in :meth:`Store.kv_write`.
KV_DELETE: Any = type("KV_DELETE", (), {"__repr__": lambda self: "KV_DELETE"})()


@attrs.frozen
class KVNew:
    """A :meth:`Store.kv_write` value that must not overwrite: the key is inserted only if
    nobody has it, else the whole write fails with :class:`~ucs.store.errors.KeyTaken`.
    A new directory entity's id is decided this way: two UCS nodes that pick the same id
    at the same moment cannot both have it (issue 20); the one refused picks again."""

    value: Any


@attrs.frozen
class KVExpect:
    """A :meth:`Store.kv_write` value (a document, or :data:`KV_DELETE`) written only over the
    document the writer read: the key's stored document must be at revision ``rev`` -- its
    ``"rev"`` field, a document without one (or with one that is not an integer) counting as 0
    --, else the whole write fails with :class:`~ucs.store.errors.Changed` and nothing is kept.

    Two UCS nodes editing one directory entity at once (issue 20) each plan from their own
    memory of it; the store keeps the first write, and the second, refused, reads the entity
    again and makes its change over the first instead of writing a stale copy over it whole.
    The compare is in the ``UPDATE``/``DELETE`` statement itself (one statement, atomic on
    both stores: PostgreSQL re-checks the row a concurrent writer just committed)."""

    value: Any
    rev: int


@attrs.frozen
class Fence:
    """The ownership a :meth:`Store.kv_write` is made under (issue 20, a cluster's AMI owner):
    the election's lock (``election.lock``) and the term the owner took when it claimed it
    (:meth:`ucs.cluster.lockconn.LockConnection.take_term`).  The write is kept only if the
    ``election`` row still names that term, checked in the write's own transaction under a
    share lock on the row: a new owner's claim, which raises the term, waits for a write that
    passed the check to commit -- so it restores what that write wrote --, and every write that
    checks after it is refused (:class:`~ucs.store.errors.Fenced`).  A node cut off, paused or
    slow cannot overwrite a newer owner's documents, whenever its writes arrive."""

    lock: str
    term: int


#: A fenced write's transaction (PostgreSQL): a writer cut off in the middle of it would leave
#: the rows it wrote locked, and the election row share-locked -- the new owner's writes of
#: the same documents, and the next claim, waiting for it -- until
#: PostgreSQL notices the dead socket (hours, with the store's default keepalives); instead it
#: ends the session once it has waited this long for its client inside the transaction
#: (``idle_in_transaction_session_timeout``).  A live writer sends its statements one after
#: the other, already encoded; one that was merely slow gets the error, reconnects and writes
#: again (``Store._in_thread``).
FENCE_IDLE_MS = 1000
_FENCE_IDLE = f"SET LOCAL idle_in_transaction_session_timeout = {FENCE_IDLE_MS}"


class Connection(Protocol):
    """The part of a DB-API connection the store uses."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """What differs between SQLite and PostgreSQL. All methods run in a store thread."""

    dialect: str  # "sqlite" | "postgresql": picks Migration.sqlite / .postgresql
    types: dict[str, str]  # {json}, {real}, {text} in migrations
    threads: int

    def connect(self) -> Connection: ...
    def transaction(self, conn: Connection, *, exclusive: bool = False) -> Any: ...
    def sql(self, statement: str) -> str: ...
    def json_out(self, value: Any) -> Any: ...
    def refused(self, error: BaseException) -> bool:
        """Whether ``error`` (raised by a statement) is the database refusing the
        values given, which the same values would meet again, rather than the
        database being away or broken, which passes."""
        ...


def check_cdr(cdr: dict[str, Any]) -> list[Any]:
    """Check a CDR dict and return its column values (JSON fields encoded).

    :class:`StoreRefused` (a ``ValueError``) names the field that cannot be stored."""
    if not isinstance(cdr, dict):
        raise TypeError(f"a CDR must be a dict, not {type(cdr).__name__}")
    unknown = sorted(set(cdr) - set(CDR_FIELDS))
    if unknown:
        raise StoreRefused(f"CDR keys {unknown} are unknown; accepted: {', '.join(CDR_FIELDS)}", unknown[0])
    uid = cdr.get("uniqueid")
    if not isinstance(uid, str) or not uid:
        raise StoreRefused(f"CDR uniqueid {uid!r} is not accepted; use the call's Linkedid (a non-empty string)",
                           "uniqueid")
    values: list[Any] = []
    for name in CDR_FIELDS:
        v = cdr.get(name)
        if v is None:
            values.append(None)
        elif name == "cause":
            if isinstance(v, bool) or not isinstance(v, int) or not -1 <= v <= 8:
                raise StoreRefused(f"CDR cause {v!r} is not accepted; use seed 002's cause, an integer from -1 to 8",
                                   name)
            values.append(v)
        elif name in _TIME_FIELDS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise StoreRefused(f"CDR {name} {v!r} is not accepted; use seconds since the epoch (a number) "
                                   "or None", name)
            values.append(float(v))
        elif name in _JSON_FIELDS:
            kind = _JSON_FIELDS[name]
            if not isinstance(v, kind):
                raise StoreRefused(f"CDR {name} {v!r} is not accepted; use a {kind.__name__} or None", name)
            values.append(dumps(v, f"CDR {name}", name))
        else:
            if not isinstance(v, str):
                raise StoreRefused(f"CDR {name} {v!r} is not accepted; use a string or None", name)
            values.append(no_nul(v))
    return values


def _kv_names(namespace: object, key: object) -> tuple[str, str]:
    for what, v in (("namespace", namespace), ("key", key)):
        if not isinstance(v, str) or not v:
            raise ValueError(f"kv {what} {v!r} is not accepted; use a non-empty string")
    return no_nul(namespace), no_nul(key)


_UPSERT_CDR = (
    f"INSERT INTO cdr ({', '.join(CDR_FIELDS)}, saved) VALUES ({', '.join('?' * (len(CDR_FIELDS) + 1))}) "
    "ON CONFLICT (uniqueid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*CDR_FIELDS[1:], "saved"))
)
_KV_UPSERT = (
    "INSERT INTO kv (namespace, key, value, updated) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated"
)
#: The stored document's revision (:class:`KVExpect`), as SQL: an integer ``rev``, else 0 (a
#: document written before revisions, or by hand) -- as :func:`kv_rev` reads it in Python.
_KV_REV = {
    "sqlite": "(CASE json_type(value, '$.rev') WHEN 'integer' THEN json_extract(value, '$.rev') ELSE 0 END)",
    "postgresql": "(CASE WHEN json_typeof(value -> 'rev') = 'number' AND (value ->> 'rev') ~ '^-{0,1}[0-9]+$' "
                  "THEN (value ->> 'rev')::numeric ELSE 0 END)",
}


def kv_rev(document: Any) -> int:
    """A stored document's revision (:class:`KVExpect`): its integer ``rev``, else 0."""
    rev = document.get("rev") if isinstance(document, dict) else None
    return rev if isinstance(rev, int) and not isinstance(rev, bool) else 0


_SELECT_CDR = f"SELECT {', '.join(CDR_FIELDS)} FROM cdr"
_DELETE_PARTIES = "DELETE FROM cdr_party WHERE uniqueid = ?"
_INSERT_PARTY = "INSERT INTO cdr_party (uniqueid, device, answered, created) VALUES (?, ?, ?, ?)"


def _parties(cdr: dict[str, Any]) -> list[tuple[str, float | None]]:
    """The phones of a CDR (from the legs of the call kept in ``data``) and when each
    first answered (``None``: it never did)."""
    legs = (cdr.get("data") or {}).get("legs") if isinstance(cdr.get("data"), dict) else None
    found: dict[str, float | None] = {}
    for leg in legs if isinstance(legs, list) else ():
        device = leg.get("device") if isinstance(leg, dict) else None
        if not isinstance(device, str) or not device:
            continue
        answered = leg.get("answered")
        answered = float(answered) if isinstance(answered, (int, float)) and not isinstance(answered, bool) else None
        before = found.get(device)
        found[device] = answered if before is None else (before if answered is None else min(before, answered))
    return [(no_nul(d), a) for d, a in found.items()]


class Store(AuditMixin, SessionsMixin):  # SessionsMixin: issue 20 (ucs.store.sessions)
    """CDRs and key-value data. Make one with :func:`ucs.store.open_store`.

    ``url`` is the :class:`StoreURL` (print it: the password is hidden);
    ``schema_version`` the schema version of the open database.
    """

    def __init__(self, url: StoreURL, backend: Backend, reactor: Any, clock: IReactorTime | None = None) -> None:
        self.url = url
        self._backend = backend
        self._reactor = reactor
        #: What rows are stamped with (``saved``, ``updated``, ``applied``): the
        #: reactor unless another clock is given. Read on the reactor thread, before
        #: the work goes to a store thread.
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._pool = ThreadPool(backend.threads, backend.threads, name=f"ucs-store-{url.scheme}")
        self._conns: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._all_conns: list[Connection] = []
        self._inflight: set[Deferred[Any]] = set()
        self._state = "new"  # new -> open -> closing -> closed
        self._shutdown_trigger: Any = None
        self.schema_version = 0
        #: Told ``(operation, "ok" | "error", seconds)`` as each public operation
        #: finishes, on the reactor thread (for metrics); ``None``: not timed.
        self.observe: Callable[[str, str, float], None] | None = None

    # --- plumbing ---------------------------------------------------------------

    def _in_thread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``f(conn, *args)`` in a store thread with a connection of its own."""

        def work() -> T:
            conn = self._conns.get()
            try:
                if getattr(conn, "closed", False):  # psycopg: the server ended it (restart, terminate)
                    conn = self._reconnect(conn)  # raises while the database is still away
                try:
                    return f(conn, *args)
                except Exception:
                    if not getattr(conn, "closed", False):
                        raise  # the statement's own error, the connection is fine
                    # The server had ended this connection (a restart while it sat idle; psycopg only
                    # finds out on use) or ended it now. Every statement the store runs is idempotent
                    # (upserts, reads, deletes, migrations re-checked under a lock), so once more on a
                    # new connection; while the database is still away that raises StoreError.
                    conn = self._reconnect(conn)
                    return f(conn, *args)
            finally:
                self._conns.put(conn)

        d = deferToThreadPool(self._reactor, self._pool, work)
        self._inflight.add(d)

        def done(result: Any) -> Any:
            self._inflight.discard(d)
            return result

        d.addBoth(done)
        return d

    def _reconnect(self, dead: Connection) -> Connection:
        """In a store thread: a new connection in place of one the database closed."""
        conn = self._backend.connect()
        self._all_conns = [conn if c is dead else c for c in self._all_conns]
        log.info("store {url}: reconnected", url=str(self.url))
        return conn

    async def _run(self, f: Callable[..., T], *args: Any) -> T:
        if self._state != "open":
            raise StoreError(f"store {self.url} is {self._state if self._state != 'new' else 'not open'}")
        return await self._in_thread(f, *args)

    async def _open(self) -> None:
        if self._state != "new":
            raise StoreError(f"store {self.url} was already opened")
        self._state = "opening"
        self._pool.start()
        self._shutdown_trigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._stop_threads
        )
        try:
            for _ in range(self._backend.threads):
                conn = await deferToThreadPool(self._reactor, self._pool, self._backend.connect)
                self._all_conns.append(conn)
                self._conns.put(conn)
                if len(self._all_conns) == 1:
                    self.schema_version = await self._in_thread(self._migrate, self._clock.seconds())
        except BaseException as e:
            await self._close_connections()
            self._state = "closed"
            if isinstance(e, Exception) and not isinstance(e, StoreError):
                message = " ".join(str(e).split()) or type(e).__name__
                raise StoreError(f"cannot open store {self.url}: {message}") from e
            raise
        self._state = "open"

    def _migrate(self, conn: Connection, now: float) -> int:
        b = self._backend
        conn.execute(SCHEMA_VERSION_TABLE.format(**b.types))
        version = 0
        for migration in MIGRATIONS:
            with b.transaction(conn, exclusive=True):
                # Re-read inside the (locked) transaction: another UCS node may have migrated.
                version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
                applied = {row[0] for row in conn.execute("SELECT version FROM schema_version").fetchall()}
                if version > LATEST_VERSION:
                    raise StoreError(
                        f"store {self.url}: the database schema is version {version}, newer than this "
                        f"UCS knows ({LATEST_VERSION}); run a newer UCS or use another database"
                    )
                if migration.version in applied:
                    continue  # by number: a migration merged from another branch may come below the highest
                log.info("store {url}: applying migration {v}: {d}", url=str(self.url),
                         v=migration.version, d=migration.description)
                for statement in migration.statements_for(b.dialect, b.types):
                    conn.execute(statement)
                conn.execute(
                    b.sql("INSERT INTO schema_version (version, description, applied) VALUES (?, ?, ?)"),
                    (migration.version, migration.description, now),
                )
                version = max(version, migration.version)
        return version

    async def _close_connections(self) -> None:
        conns, self._all_conns = self._all_conns, []

        def close_all() -> None:
            for conn in conns:
                try:
                    conn.close()
                except Exception:
                    log.failure("store: closing a connection failed")

        try:
            if conns:
                await deferToThreadPool(self._reactor, self._pool, close_all)
        finally:
            self._stop_threads()

    def _stop_threads(self) -> None:
        if self._shutdown_trigger is not None:
            try:
                self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass  # already fired
            self._shutdown_trigger = None
        if self._pool.started:
            self._pool.stop()

    # --- the API ------------------------------------------------------------------

    @_deferred
    async def close(self) -> None:
        """Wait for operations in progress, then close the connections and threads.

        Further calls fail with :class:`StoreError`; closing twice is harmless.
        """
        if self._state in ("closing", "closed", "new"):
            self._state = "closed" if self._state == "new" else self._state
            return
        self._state = "closing"
        while self._inflight:
            await DeferredList(list(self._inflight), consumeErrors=False)
        await self._close_connections()
        self._state = "closed"

    @_deferred
    async def save_cdr(self, cdr: dict[str, Any]) -> None:
        """Insert or replace (by ``uniqueid``) one finished call's CDR.

        ``cdr`` has keys from :data:`CDR_FIELDS`; missing keys are stored as
        ``None``, unknown keys raise :class:`ValueError` (nothing is written).
        Times are seconds since the epoch; ``metadata`` and ``data`` dicts and
        ``journey`` a list, stored as JSON.  A CDR refused for what it holds (by
        these checks or by the database) fails with :class:`StoreRefused`; any
        other failure (the database away) with another error.
        """
        values = check_cdr(cdr)
        parties = _parties(cdr)
        b = self._backend
        sql, forget, remember = b.sql(_UPSERT_CDR), b.sql(_DELETE_PARTIES), b.sql(_INSERT_PARTY)
        refused = b.refused
        now = self._clock.seconds()

        def save(conn: Connection) -> None:
            try:
                with b.transaction(conn):
                    conn.execute(sql, (*values, now))
                    conn.execute(forget, (values[0],))
                    for device, answered in parties:
                        conn.execute(remember, (values[0], device, answered, values[CDR_FIELDS.index("created")]))
            except Exception as e:
                if refused(e):
                    message = " ".join(str(e).split()) or type(e).__name__
                    raise StoreRefused(f"CDR {values[0]}: the database refused it: {message}") from e
                raise

        await self._run(save)

    def _row_to_cdr(self, row: Any) -> dict[str, Any]:
        cdr = dict(zip(CDR_FIELDS, row))
        for name in _JSON_FIELDS:
            if cdr[name] is not None:
                cdr[name] = self._backend.json_out(cdr[name])
        return cdr

    @_deferred
    async def get_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """The CDR saved under ``uniqueid``, or ``None``."""
        sql = self._backend.sql(f"{_SELECT_CDR} WHERE uniqueid = ?")

        if not isinstance(uniqueid, str):
            raise ValueError(f"CDR uniqueid {uniqueid!r} is not accepted; use a string")
        uniqueid = no_nul(uniqueid)

        def get(conn: Connection) -> Any:
            return conn.execute(sql, (uniqueid,)).fetchone()

        row = await self._run(get)
        return None if row is None else self._row_to_cdr(row)

    @_deferred
    async def list_cdrs(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        newest_first: bool = False,
        devices: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """CDRs created at or after ``since`` and before ``until`` (epoch seconds);
        with ``devices``, only calls one of those phones had a leg in (table ``cdr_party``).

        Ordered by creation time, oldest first (newest first with
        ``newest_first``), at most ``limit`` (1-10000). CDRs without a creation
        time sort as the oldest.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit {limit!r} is not accepted; use an integer 1-{MAX_LIST_LIMIT}")
        where, params = [], []
        for name, v, op in (("since", since, ">="), ("until", until, "<")):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name} {v!r} is not accepted; use seconds since the epoch or None")
            where.append(f"created {op} ?")
            params.append(float(v))
        if devices is not None:
            if isinstance(devices, str) or not all(isinstance(d, str) and d for d in devices):
                raise ValueError(f"devices {devices!r} is not accepted; use a list of device names")
            if not devices:
                return []
            where.append(f"uniqueid IN (SELECT uniqueid FROM cdr_party WHERE device IN ({', '.join('?' * len(devices))}))")
            params.extend(no_nul(d) for d in devices)
        order = "DESC" if newest_first else "ASC"
        sql = self._backend.sql(
            _SELECT_CDR
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY COALESCE(created, 0) {order}, uniqueid {order} LIMIT {limit}"
        )

        def select(conn: Connection) -> list[Any]:
            return list(conn.execute(sql, params).fetchall())

        return [self._row_to_cdr(r) for r in await self._run(select)]

    @_deferred
    async def kv_get(self, namespace: str, key: str, default: Any = None) -> Any:
        """The value stored under (``namespace``, ``key``), or ``default``."""
        namespace, key = _kv_names(namespace, key)
        sql = self._backend.sql("SELECT value FROM kv WHERE namespace = ? AND key = ?")

        def get(conn: Connection) -> Any:
            return conn.execute(sql, (namespace, key)).fetchone()

        row = await self._run(get)
        return default if row is None else self._backend.json_out(row[0])

    @_deferred
    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under (``namespace``, ``key``)."""
        namespace, key = _kv_names(namespace, key)
        encoded = dumps(value, f"kv {namespace}/{key}")
        sql = self._backend.sql(_KV_UPSERT)
        now = self._clock.seconds()

        def put(conn: Connection) -> None:
            conn.execute(sql, (namespace, key, encoded, now))

        await self._run(put)

    @_deferred
    async def kv_write(self, items: Sequence[tuple[str, str, Any]], *,
                       audit: Sequence[dict[str, Any]] = (), fence: Fence | None = None) -> None:
        """Several keys in one transaction: ``(namespace, key, value)`` stores
        ``value``, a value of :data:`KV_DELETE` deletes the key.  All or none
        is written.  A :class:`KVNew` value is inserted only if the key is free
        (:class:`~ucs.store.errors.KeyTaken` otherwise, nothing written); a :class:`KVExpect`
        value is written (or deleted) only if the stored document is still at the revision
        the writer read (:class:`~ucs.store.errors.Changed` otherwise, nothing written).  For a
        writer with many small documents (the agents' states after thousands of logins): one
        trip to a store thread, one commit, and the JSON encoded there, not on the reactor thread.

        ``audit``: entries of the audit log (:meth:`audit_write`) that record this
        change, inserted in the same transaction: a change is never kept without
        its entry, nor an entry without its change (the directory's changes).

        ``fence`` (issue 20, a cluster's AMI owner): written only while the ``election`` row
        of ``fence.lock`` names ``fence.term``; else :class:`~ucs.store.errors.Fenced` and
        nothing written (:class:`Fence`).  ``None`` (a single node): written as always."""
        checked = [(*_kv_names(namespace, key), value) for namespace, key, value in items]
        now = self._clock.seconds()
        audit_rows = self._audit_rows(audit, now)
        if not checked and not audit_rows:
            return
        upsert = self._backend.sql(_KV_UPSERT)
        insert = self._backend.sql("INSERT INTO kv (namespace, key, value, updated) VALUES (?, ?, ?, ?) "
                                   "ON CONFLICT (namespace, key) DO NOTHING")
        delete = self._backend.sql("DELETE FROM kv WHERE namespace = ? AND key = ?")
        rev = _KV_REV[self._backend.dialect]
        update_if = self._backend.sql(f"UPDATE kv SET value = ?, updated = ? WHERE namespace = ? AND key = ? "
                                      f"AND {rev} = ?")
        delete_if = self._backend.sql(f"DELETE FROM kv WHERE namespace = ? AND key = ? AND {rev} = ?")
        insert_audit = self._audit_insert()
        postgresql = self._backend.dialect == "postgresql"
        check = self._fence_check()

        def write(conn: Connection) -> None:
            def encoded(ns: str, key: str, value: Any) -> Any:
                if value is KV_DELETE:
                    return value
                if isinstance(value, (KVNew, KVExpect)):
                    return attrs.evolve(value, value=encoded(ns, key, value.value))
                return dumps(value, f"kv {ns}/{key}")

            rows = [(ns, key, encoded(ns, key, value)) for ns, key, value in checked]
            with self._backend.transaction(conn):
                if fence is not None and postgresql:
                    conn.execute(_FENCE_IDLE)
                for ns, key, value in rows:
                    if value is KV_DELETE:
                        conn.execute(delete, (ns, key))
                    elif isinstance(value, KVNew):
                        if not conn.execute(insert, (ns, key, value.value, now)).rowcount:
                            raise KeyTaken(ns, key)  # rolls the whole write back
                    elif isinstance(value, KVExpect):
                        done = (conn.execute(delete_if, (ns, key, value.rev)) if value.value is KV_DELETE
                                else conn.execute(update_if, (value.value, now, ns, key, value.rev)))
                        if not done.rowcount:
                            raise Changed(ns, key, value.rev)  # rolls the whole write back
                    else:
                        conn.execute(upsert, (ns, key, value, now))
                for row in audit_rows:
                    conn.execute(insert_audit, row)
                if fence is not None:
                    check(conn, fence)  # raising rolls the whole write back

        await self._run(write)

    def _fence_check(self) -> Callable[[Connection, Fence], None]:
        """What a fenced write (:class:`Fence`) runs last in its transaction: raises
        :class:`~ucs.store.errors.Fenced` (rolling the whole write back) unless the ``election``
        row of the fence's lock still names its term."""
        fenced = self._backend.sql("SELECT term, node FROM election WHERE lock = ?"
                                   + (" FOR SHARE" if self._backend.dialect == "postgresql" else ""))

        def check(conn: Connection, fence: Fence) -> None:
            # Last, just before the commit: the row is share-locked for the least time (each
            # check of the owner's session writes it too, :meth:`LockConnection.check`).
            row = conn.execute(fenced, (fence.lock,)).fetchone()
            if row is None or row[0] != fence.term:
                raise Fenced(fence.lock, fence.term, *(row if row is not None else (None, None)))

        return check

    @_deferred
    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete (``namespace``, ``key``); ``True`` if it was there."""
        namespace, key = _kv_names(namespace, key)
        sql = self._backend.sql("DELETE FROM kv WHERE namespace = ? AND key = ?")

        def delete(conn: Connection) -> bool:
            return bool(conn.execute(sql, (namespace, key)).rowcount)

        return await self._run(delete)

    @_deferred
    async def kv_items(self, namespace: str) -> dict[str, Any]:
        """Every key and value of ``namespace`` (e.g. all agents' saved state)."""
        namespace, _ = _kv_names(namespace, "-")
        sql = self._backend.sql("SELECT key, value FROM kv WHERE namespace = ? ORDER BY key")

        def select(conn: Connection) -> list[Any]:
            return list(conn.execute(sql, (namespace,)).fetchall())

        return {k: self._backend.json_out(v) for k, v in await self._run(select)}


    # -- statistics by interval (migration 3) -------------------------------------------------

    @_deferred
    async def stats_write(self, rows: Sequence[tuple[str, str, str, int, dict[str, Any]]], *,
                          fence: Fence | None = None) -> None:
        """``(kind, subject, day, slot, figures)`` rows, each replacing the row it names, in
        one transaction.  ``kind`` is ``agent`` or ``queue``, ``subject`` the user id or the
        queue's Asterisk name, ``day`` an ISO date, ``slot`` the minute of the day the
        15-minute interval starts at.

        ``fence`` (issue 20, a cluster's AMI owner): as for :meth:`kv_write` -- written only
        while the ``election`` row names its term, else :class:`~ucs.store.errors.Fenced` and
        nothing written: a demoted owner's last rows cannot replace those the new owner read
        and counted on from."""
        if not rows:
            return
        sql = self._backend.sql(
            "INSERT INTO stats (kind, subject, day, slot, figures, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, day, subject, slot) DO UPDATE SET figures = excluded.figures, "
            "updated = excluded.updated")
        now = self._clock.seconds()
        postgresql = self._backend.dialect == "postgresql"
        check = self._fence_check()

        def write(conn: Connection) -> None:
            encoded = [(str(k), str(s), str(d), int(slot), dumps(f, f"stats {k}/{s}/{d}/{slot}"), now)
                       for k, s, d, slot, f in rows]
            with self._backend.transaction(conn):
                if fence is not None and postgresql:
                    conn.execute(_FENCE_IDLE)
                for row in encoded:
                    conn.execute(sql, row)
                if fence is not None:
                    check(conn, fence)  # raising rolls the whole write back

        await self._run(write)

    @_deferred
    async def stats_read(self, kind: str, first_day: str, last_day: str) -> list[tuple[str, str, int, dict[str, Any]]]:
        """``(subject, day, slot, figures)`` of ``kind`` from ``first_day`` to ``last_day``
        (ISO dates, both included), by day, subject and slot."""
        sql = self._backend.sql("SELECT subject, day, slot, figures FROM stats WHERE kind = ? AND day >= ? AND day <= ? "
                                "ORDER BY day, subject, slot")

        def select(conn: Connection) -> list[Any]:
            return list(conn.execute(sql, (kind, first_day, last_day)).fetchall())

        return [(str(s), str(d), int(slot), self._backend.json_out(f)) for s, d, slot, f in await self._run(select)]
