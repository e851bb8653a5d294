"""Agent-bar sessions a cluster shares (migration 5), as :class:`ucs.store.Store` methods.

Why in the store: a bar whose node died reconnects (behind a load balancer) to
another node, which has never seen its session; ``session.resume`` finds it
here (issue 20).  A row is what a resume needs -- the user, the paired line,
the session's state and options, when it was created and last seen -- keyed
by the SHA-256 of the session id (the id is the bar's resume token, a secret:
it is never stored).

``node`` is the node that serves the session now; only that node writes the
row (every write says which node it comes from, and a row another node has
claimed meanwhile is left alone).  ``expires`` is when the session ends if
nobody resumes it: ``NULL`` while a bar is attached to a live node, the
detach time + the resume window while it waits, "now" when its bar is gone
for good.  A node that stops sending its heartbeat (kv namespace
:data:`NODES`) is dead: its attached sessions expire a resume window after
its last heartbeat.  ``version`` grows with every write: a claim (a resume)
and a sweep (the owner expiring what is due) are compare-and-set on it, so a
session is either resumed or expired, once, whatever the nodes do at the
same time.

``logouts`` (migration 8) holds each user's logout, for the nodes that missed
its notice on NATS (:mod:`ucs.api.stored_logouts`): ``at`` is when it was
made, ``written`` when it was written (the writer's clock both; a write tried
again later has a later ``written``), which the readers follow.  Each write
prunes what was written longer ago than the writer keeps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ucs.store.coding import _deferred, dumps, no_nul

#: The key-value namespace of the nodes' heartbeats: node name → ``{"seen": t}``.
NODES = "sessions.nodes"

#: The columns of a session row, in order.
SESSION_FIELDS = ("sid_hash", "kind", "user_id", "line_id", "state", "options", "node", "created", "seen",
                  "expires", "version")

_SELECT = f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions"
_PUT = (
    "INSERT INTO sessions (sid_hash, kind, user_id, line_id, state, options, node, created, seen, expires, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (sid_hash) DO UPDATE SET kind = excluded.kind, user_id = excluded.user_id, "
    "line_id = excluded.line_id, state = excluded.state, options = excluded.options, seen = excluded.seen, "
    "expires = excluded.expires, version = sessions.version + 1 "
    "WHERE sessions.node = excluded.node"
)
_DELETE = "DELETE FROM sessions WHERE sid_hash = ? AND node = ?"
_CLAIM = ("UPDATE sessions SET node = ?, expires = NULL, seen = ?, version = version + 1 "
          "WHERE sid_hash = ? AND version = ?")
_EXPIRE = "DELETE FROM sessions WHERE sid_hash = ? AND version = ?"
_HEARTBEAT = ("INSERT INTO kv (namespace, key, value, updated) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated")
#: The columns of a logout row, in order.
LOGOUT_FIELDS = ("id", "user_id", "how", "reason", "node", "at", "written")
_LOGOUT = (f"INSERT INTO logouts ({', '.join(LOGOUT_FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (id) DO NOTHING")
_PRUNE = "DELETE FROM logouts WHERE written < ?"
_LOGOUTS = f"SELECT {', '.join(LOGOUT_FIELDS)} FROM logouts WHERE written >= ? ORDER BY written, id"
_LOGOUTS_OF = f"SELECT {', '.join(LOGOUT_FIELDS)} FROM logouts WHERE user_id = ? AND at > ? ORDER BY at, id"
_RELEASE = "UPDATE sessions SET expires = ?, version = version + 1 WHERE node = ? AND expires IS NULL"


def effective_expiry(row: dict[str, Any], seen_of: dict[str, float], now: float, stale_after: float,
                     window: float) -> float | None:
    """When ``row``'s session ends if nobody resumes it; ``None``: a bar is attached to it
    on a live node.  A node whose heartbeat is older than ``stale_after`` is dead: its
    sessions end a resume ``window`` after it was last heard of."""
    if row["expires"] is not None:
        return float(row["expires"])
    seen = seen_of.get(row["node"])
    if seen is not None and seen >= now - stale_after:
        return None
    return (seen if seen is not None else float(row["seen"])) + window


class SessionsMixin:
    """Needs the store's ``_backend``, ``_clock`` and ``_run`` (:class:`ucs.store.base.Store`)."""

    _backend: Any
    _clock: Any

    async def _run(self, f: Any, *args: Any) -> Any:  # provided by Store
        raise NotImplementedError

    def _session_row(self, row: Sequence[Any]) -> dict[str, Any]:
        found = dict(zip(SESSION_FIELDS, row))
        found["options"] = self._backend.json_out(found["options"])
        return found

    def _heartbeats(self, conn: Any) -> dict[str, float]:
        rows = conn.execute(self._backend.sql("SELECT key, value FROM kv WHERE namespace = ?"), (NODES,)).fetchall()
        seen: dict[str, float] = {}
        for key, value in rows:
            value = self._backend.json_out(value)
            if isinstance(value, dict) and isinstance(value.get("seen"), (int, float)):
                seen[str(key)] = float(value["seen"])
        return seen

    @_deferred
    async def session_write(self, ops: Sequence[tuple[str, Any]]) -> None:
        """``("put", row)`` stores a session (a dict of :data:`SESSION_FIELDS` but
        ``version``) unless another node has claimed it; ``("delete", (sid_hash, node))``
        deletes it if ``node`` still serves it.  In order, in one transaction."""
        b = self._backend
        put, delete = b.sql(_PUT), b.sql(_DELETE)
        rows: list[tuple[str, tuple[Any, ...]]] = []
        for op, value in ops:
            if op == "put":
                rows.append((put, (no_nul(value["sid_hash"]), no_nul(value["kind"]), int(value["user_id"]),
                                   value["line_id"], no_nul(value["state"]),
                                   dumps(value["options"], "session options"), no_nul(value["node"]),
                                   float(value["created"]), float(value["seen"]),
                                   None if value["expires"] is None else float(value["expires"]))))
            elif op == "delete":
                rows.append((delete, (no_nul(value[0]), no_nul(value[1]))))
            else:
                raise ValueError(f"session_write: {op!r} is not an operation; 'put' or 'delete'")
        if not rows:
            return

        def write(conn: Any) -> None:
            with b.transaction(conn):
                for sql, params in rows:
                    conn.execute(sql, params)

        await self._run(write)

    @_deferred
    async def session_get(self, sid_hash: str) -> dict[str, Any] | None:
        """The row of the session whose id hashes to ``sid_hash``, or ``None``."""
        sql = self._backend.sql(f"{_SELECT} WHERE sid_hash = ?")

        def get(conn: Any) -> Any:
            return conn.execute(sql, (no_nul(sid_hash),)).fetchone()

        row = await self._run(get)
        return None if row is None else self._session_row(row)

    @_deferred
    async def session_claim(self, sid_hash: str, node: str, now: float, window: float,
                            stale_after: float) -> tuple[str, dict[str, Any] | None]:
        """Take a session over for ``node`` (a resume): ``("claimed", row)`` with the row as
        it was before (its ``node`` the one that served it), ``("expired", row)`` when it
        waited past its expiry, ``("missing", None)`` when there is no such session (it
        ended, or never was)."""
        b = self._backend
        select, claim = b.sql(f"{_SELECT} WHERE sid_hash = ?"), b.sql(_CLAIM)

        def take(conn: Any) -> tuple[str, dict[str, Any] | None]:
            for _ in range(5):  # another write between the read and the claim: read again
                found = conn.execute(select, (sid_hash,)).fetchone()
                if found is None:
                    return "missing", None
                row = self._session_row(found)
                expires = effective_expiry(row, self._heartbeats(conn), now, stale_after, window)
                if expires is not None and expires <= now:
                    return "expired", row
                if conn.execute(claim, (node, now, sid_hash, row["version"])).rowcount:
                    return "claimed", row
            return "missing", None

        result: tuple[str, dict[str, Any] | None] = await self._run(take)
        return result

    @_deferred
    async def session_heartbeat(self, node: str, now: float, *, release: float | None = None) -> None:
        """``node`` is alive at ``now``.  ``release``: the node has just started, so the
        sessions it left attached in an earlier run have no bar on it: they wait for their
        bars until ``release``."""
        b = self._backend
        beat, free = b.sql(_HEARTBEAT), b.sql(_RELEASE)
        value = json.dumps({"seen": now})

        def write(conn: Any) -> None:
            with b.transaction(conn):
                if release is not None:
                    conn.execute(free, (release, no_nul(node)))
                conn.execute(beat, (NODES, no_nul(node), value, now))

        await self._run(write)

    @_deferred
    async def session_nodes(self, now: float, stale_after: float) -> list[str]:
        """The nodes whose heartbeat is at most ``stale_after`` old: those alive."""

        def read(conn: Any) -> list[str]:
            return sorted(n for n, seen in self._heartbeats(conn).items() if seen >= now - stale_after)

        result: list[str] = await self._run(read)
        return result

    @_deferred
    async def session_sweep(self, now: float, window: float, stale_after: float) -> list[dict[str, Any]]:
        """End every session due to end (:func:`effective_expiry`), each once whoever else
        sweeps: the rows deleted here, each with ``alone``: no other session of its user
        is still alive (attached, or waiting within its window) -- the user's agent bars
        are all gone for good."""
        b = self._backend
        expire = b.sql(_EXPIRE)
        of_user = b.sql(f"{_SELECT} WHERE user_id = ? AND kind = ?")

        def sweep(conn: Any) -> list[dict[str, Any]]:
            seen_of = self._heartbeats(conn)
            live = sorted(n for n, s in seen_of.items() if s >= now - stale_after)
            attached = f"(expires IS NULL AND node NOT IN ({', '.join('?' * len(live))}))" if live \
                else "expires IS NULL"
            candidates = conn.execute(b.sql(f"{_SELECT} WHERE expires <= ? OR {attached}"),
                                      (now, *live)).fetchall()
            ended = []
            for found in candidates:
                row = self._session_row(found)
                expires = effective_expiry(row, seen_of, now, stale_after, window)
                if expires is None or expires > now:
                    continue
                if conn.execute(expire, (row["sid_hash"], row["version"])).rowcount:
                    ended.append(row)
            for row in ended:
                others = [self._session_row(r) for r in conn.execute(of_user, (row["user_id"], row["kind"]))]
                row["alone"] = not any(
                    (e := effective_expiry(o, seen_of, now, stale_after, window)) is None or e > now for o in others)
            return ended

        result: list[dict[str, Any]] = await self._run(sweep)
        return result

    @_deferred
    async def logout_write(self, logout: dict[str, Any], written: float, prune_before: float) -> None:
        """Store a user's logout (a dict of :data:`LOGOUT_FIELDS` but ``written``), once
        whatever the retries (its ``id``); those written before ``prune_before`` go."""
        b = self._backend
        insert, prune = b.sql(_LOGOUT), b.sql(_PRUNE)
        params = (no_nul(str(logout["id"])), int(logout["user_id"]), no_nul(str(logout["how"])),
                  no_nul(str(logout["reason"] or "")), no_nul(str(logout["node"])), float(logout["at"]),
                  float(written))

        def write(conn: Any) -> None:
            with b.transaction(conn):
                conn.execute(prune, (float(prune_before),))
                conn.execute(insert, params)

        await self._run(write)

    @_deferred
    async def logouts_since(self, since: float) -> list[dict[str, Any]]:
        """The logouts written at or after ``since``, oldest first."""
        sql = self._backend.sql(_LOGOUTS)

        def read(conn: Any) -> list[dict[str, Any]]:
            return [dict(zip(LOGOUT_FIELDS, row)) for row in conn.execute(sql, (float(since),)).fetchall()]

        result: list[dict[str, Any]] = await self._run(read)
        return result

    @_deferred
    async def logouts_of(self, user_id: int, after: float) -> list[dict[str, Any]]:
        """The logouts of ``user_id`` made after ``after``, oldest first."""
        sql = self._backend.sql(_LOGOUTS_OF)

        def read(conn: Any) -> list[dict[str, Any]]:
            return [dict(zip(LOGOUT_FIELDS, row)) for row in conn.execute(sql, (int(user_id), float(after))).fetchall()]

        result: list[dict[str, Any]] = await self._run(read)
        return result
