"""The audit log (migration 4) and the writers' locks, as :class:`ucs.store.Store` methods.

Audit: one row per administrative change -- when (``at``, the store's clock),
who (``actor``: a user name, ``ucs`` for UCS itself), through what
(``source``: ``api``, ``ucs-admin``, ``ucs``), what (``kind``, ``action``,
``entity_id``) and the entity before and after (JSON documents; ``None`` for
an add's before and a delete's after).  Read newest first, filtered, in pages
(``before_id``: the ``id`` of the last entry of the previous page).

Locks: who writes the directory (docs/administration.md, "Who writes"): each
running UCS holds ``ucs:<host>:<pid>`` and refreshes it; ``ucs-admin`` writing
the store directly holds ``admin``.  A lock not refreshed for ``stale_after``
seconds is free again (its holder crashed).  Kept in the key-value table
(namespace ``lock``), claimed in an exclusive transaction, so two claimants
never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ucs.store.coding import _deferred, dumps, no_nul

#: The columns of an audit entry, in order.
AUDIT_FIELDS = ("id", "at", "actor", "source", "kind", "action", "entity_id", "before", "after")
#: Filters :meth:`AuditMixin.audit_list` accepts that compare a column for equality.
AUDIT_FILTERS = ("actor", "source", "kind", "action", "entity_id")
MAX_AUDIT_PAGE = 1000
LOCK_NAMESPACE = "lock"


def _text(entry: dict[str, Any], name: str) -> str:
    v = entry.get(name)
    if not isinstance(v, (str, int)) or isinstance(v, bool) or v == "":
        raise ValueError(f"audit {name} {v!r} is not accepted; give a non-empty string")
    return no_nul(str(v))


class AuditMixin:
    """Needs the store's ``_backend``, ``_clock`` and ``_run`` (:class:`ucs.store.base.Store`)."""

    _backend: Any
    _clock: Any

    async def _run(self, f: Any, *args: Any) -> Any:  # provided by Store
        raise NotImplementedError

    def _audit_rows(self, entries: Sequence[dict[str, Any]], now: float) -> list[tuple[Any, ...]]:
        """The rows of ``entries``, checked (a bad entry raises before anything is written)."""
        return [(now, *(_text(e, n) for n in ("actor", "source", "kind", "action", "entity_id")),
                 None if e.get("before") is None else dumps(e["before"], "audit before"),
                 None if e.get("after") is None else dumps(e["after"], "audit after"))
                for e in entries]

    def _audit_insert(self) -> str:
        sql: str = self._backend.sql(
            "INSERT INTO audit (at, actor, source, kind, action, entity_id, before, after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        return sql

    @_deferred
    async def audit_write(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append entries (``actor``, ``source``, ``kind``, ``action``, ``entity_id``,
        ``before``, ``after``), stamped now, in one transaction.  A change that writes
        the store audits itself in the same transaction (``kv_write(..., audit=)``);
        this is for what changes nothing stored (a forced logout)."""
        rows = self._audit_rows(entries, self._clock.seconds())
        if not rows:
            return
        b = self._backend
        sql = self._audit_insert()

        def write(conn: Any) -> None:
            with b.transaction(conn):
                for row in rows:
                    conn.execute(sql, row)

        await self._run(write)

    @_deferred
    async def audit_list(self, *, since: float | None = None, until: float | None = None,
                         before_id: int | None = None, limit: int = 100,
                         **equal: str | None) -> list[dict[str, Any]]:
        """Entries newest first: ``at`` from ``since`` (included) to ``until`` (not),
        ``id`` below ``before_id``, and the columns of :data:`AUDIT_FILTERS` given equal."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIT_PAGE:
            raise ValueError(f"limit {limit!r} is not accepted; give an integer from 1 to {MAX_AUDIT_PAGE}")
        where: list[str] = []
        params: list[Any] = []
        for name, value in equal.items():
            if name not in AUDIT_FILTERS:
                raise ValueError(f"{name!r} is not an audit filter; accepted: {', '.join(AUDIT_FILTERS)}")
            if value is not None:
                where.append(f"{name} = ?")
                params.append(no_nul(str(value)))
        for name, v, op in (("since", since, "at >= ?"), ("until", until, "at < ?"), ("before_id", before_id, "id < ?")):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name} {v!r} is not accepted; give a number")
            where.append(op)
            params.append(v)
        b = self._backend
        sql = b.sql(f"SELECT {', '.join(AUDIT_FIELDS)} FROM audit"
                    + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY id DESC LIMIT {limit}")

        def select(conn: Any) -> list[Any]:
            return list(conn.execute(sql, params).fetchall())

        out = []
        for row in await self._run(select):
            entry = dict(zip(AUDIT_FIELDS, row))
            for name in ("before", "after"):
                if entry[name] is not None:
                    entry[name] = b.json_out(entry[name])
            out.append(entry)
        return out

    # -- locks ------------------------------------------------------------------------------

    @_deferred
    async def lock_claim(self, name: str, holder: dict[str, Any], stale_after: float) -> dict[str, Any] | None:
        """Take (or refresh) lock ``name`` for ``holder`` (a dict with a ``holder`` id).
        ``None`` when taken; else the other holder's dict, with ``age`` (seconds since
        it last refreshed it)."""
        b = self._backend
        now = self._clock.seconds()
        encoded = dumps(holder, f"lock {name}")
        select = b.sql("SELECT value, updated FROM kv WHERE namespace = ? AND key = ?")
        upsert = b.sql("INSERT INTO kv (namespace, key, value, updated) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated")

        def claim(conn: Any) -> dict[str, Any] | None:
            with b.transaction(conn, exclusive=True):
                row = conn.execute(select, (LOCK_NAMESPACE, name)).fetchone()
                if row is not None:
                    other = b.json_out(row[0])
                    age = now - float(row[1])
                    if other.get("holder") != holder.get("holder") and age < stale_after:
                        return {**other, "age": age}
                conn.execute(upsert, (LOCK_NAMESPACE, name, encoded, now))
                return None

        result: dict[str, Any] | None = await self._run(claim)
        return result

    @_deferred
    async def lock_release(self, name: str, holder_id: str) -> bool:
        """Give lock ``name`` back if ``holder_id`` holds it."""
        b = self._backend
        select = b.sql("SELECT value FROM kv WHERE namespace = ? AND key = ?")
        delete = b.sql("DELETE FROM kv WHERE namespace = ? AND key = ?")

        def release(conn: Any) -> bool:
            with b.transaction(conn, exclusive=True):
                row = conn.execute(select, (LOCK_NAMESPACE, name)).fetchone()
                if row is None or b.json_out(row[0]).get("holder") != holder_id:
                    return False
                conn.execute(delete, (LOCK_NAMESPACE, name))
                return True

        released: bool = await self._run(release)
        return released

    @_deferred
    async def locks(self, fresh_within: float) -> dict[str, dict[str, Any]]:
        """The locks refreshed within ``fresh_within`` seconds, by name, each with its ``age``."""
        b = self._backend
        now = self._clock.seconds()
        sql = b.sql("SELECT key, value, updated FROM kv WHERE namespace = ? AND updated > ? ORDER BY key")

        def select(conn: Any) -> list[Any]:
            return list(conn.execute(sql, (LOCK_NAMESPACE, now - fresh_within)).fetchall())

        return {k: {**b.json_out(v), "age": now - float(u)} for k, v, u in await self._run(select)}
