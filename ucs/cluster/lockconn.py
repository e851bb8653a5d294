"""The election's PostgreSQL connection: blocking calls, run in a thread by the elector.

Why a connection of its own, and not the store's pool: a session-level advisory
lock belongs to the session that took it, and is released when that session
ends -- which is exactly what the election needs (the owner's death, or its
network's, ends its session and frees the lock) and exactly what a pool, which
reconnects and shares sessions, must not do to it.

Why both sides' keepalives: libpq's ``keepalives_*`` and ``tcp_user_timeout``
make *this* node find a dead link (its check fails, it steps down); the
server's ``tcp_keepalives_*`` and ``tcp_user_timeout``, set for this session
only, make *PostgreSQL* drop a silent owner's session and so free its lock.
The first must come before the second (``[cluster] release_after`` >
``check_interval + step_down_after``, checked with the config), so that the old
owner has stopped its AMI link before another node can take it.

Why the ``election`` table (store migration 6): each check of the holder's session
also writes, in PostgreSQL's time, that the holder was alive then.  A node that wins
the lock claims it only for what is left of ``check_interval + step_down_after`` since
that proof: when PostgreSQL freed the lock because the owner fell silent (its network
cut), the proof is ``release_after`` old and the old owner has certainly stepped down,
so the new one need not wait again (issue 20: a cut owner's failover within 10 s).

Why a term (store migration 7): the claim's last check also raises the ``election`` row's
``term`` (:meth:`LockConnection.take_term`), and the owner's agent documents are written
only while the row still names its term (:class:`ucs.store.base.Fence`).  A demoted owner --
cut off, paused, or slow -- whose save arrives after the new owner restored the agents is
refused instead of overwriting the newer documents.  Why not compare the documents' ``as_of``:
it is each node's own clock, an owner that goes on for seconds after a cut writes states
newer than the ones the new owner restored (which then reconciled with Asterisk), and a
deletion or a day's figures carry none.

Why blocking psycopg in a thread (like :mod:`ucs.store.postgres`): UCS's reactor
need not be asyncio's, and these calls are few (one every second or so).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import attrs

from ucs.store.base import Fence

#: First key of the election's advisory lock (``pg_locks.classid``): "ucs" then 1 (the migrations' is 0).
ELECTION_LOCK = 0x7563_7301
#: Added to what is left of a claim: the old owner's step-down runs on its reactor a moment
#: after its check's deadline.
CLAIM_MARGIN = 0.5
#: Server-side keepalive probes before PostgreSQL gives up on a silent client, one second apart.
SERVER_PROBES = 3


def lock_key(domain: str, asterisk: str) -> tuple[int, int]:
    """The advisory lock of the AMI owner of ``asterisk`` (``host:port``) in ``domain``:
    ``(ELECTION_LOCK, a signed 32-bit hash)``, the same on every node (Python's ``hash``
    is salted per process; SHA-256 is not)."""
    digest = hashlib.sha256(f"{domain}\0{asterisk}".encode()).digest()
    return ELECTION_LOCK, int.from_bytes(digest[:4], "big", signed=True)


@attrs.frozen
class Timings:
    """How fast a dead owner is noticed, by itself and by PostgreSQL (``[cluster]``)."""

    retry_interval: float = 1.0
    check_interval: float = 1.0
    step_down_after: float = 3.0
    release_after: int = 6

    @classmethod
    def from_config(cls, cluster: Any) -> Timings:
        return cls(cluster.retry_interval, cluster.check_interval, cluster.step_down_after, cluster.release_after)

    @property
    def claim(self) -> float:
        """How long a node that won the lock holds it before it connects AMI: by then an
        old owner that lost its session without dying has stepped down."""
        return self.check_interval + self.step_down_after

    def client_params(self) -> dict[str, Any]:
        """libpq parameters: this node notices a dead link within ``step_down_after``."""
        seconds = max(1, math.ceil(self.step_down_after))
        return {"keepalives": 1, "keepalives_idle": 1, "keepalives_interval": 1,
                "keepalives_count": seconds, "tcp_user_timeout": int(self.step_down_after * 1000),
                "connect_timeout": max(2, seconds)}

    def server_settings(self) -> dict[str, int]:
        """This session's server settings: PostgreSQL drops it ``release_after`` s after it fell silent."""
        return {"tcp_keepalives_idle": max(1, self.release_after - SERVER_PROBES),
                "tcp_keepalives_interval": 1, "tcp_keepalives_count": SERVER_PROBES,
                "tcp_user_timeout": self.release_after * 1000}


class LockConnection:
    """One dedicated session; every method blocks (the elector runs them in a thread)."""

    def __init__(self, url: str, key: tuple[int, int], timings: Timings, application_name: str) -> None:
        self.url = url
        self.key = key
        self.timings = timings
        self.application_name = application_name
        self._conn: Any = None

    def connect(self) -> int:
        """Open the session and apply the server's keepalives; its backend pid."""
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        params: dict[str, Any] = dict(conninfo_to_dict(self.url))
        params.update(self.timings.client_params())
        params["application_name"] = self.application_name[:63]
        conn = psycopg.connect(autocommit=True, **params)
        try:
            for name, value in self.timings.server_settings().items():
                conn.execute(f"SET {name} = {int(value)}")
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return int(row[0]) if row else 0

    def try_lock(self) -> bool:
        """``pg_try_advisory_lock``: ``True`` when this session holds the lock now (never waits)."""
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key).fetchone()
        return bool(row and row[0])

    @property
    def _lock(self) -> str:
        return f"{self.key[0]}:{self.key[1]}"

    def check(self) -> None:
        """A round trip on the session that records, in PostgreSQL's time, that this holder of the
        lock is alive now; raises when the session is gone (terminated, the network dead)."""
        import psycopg

        try:
            self._conn.execute(
                "INSERT INTO election (lock, node, proved) VALUES (%s, %s, extract(epoch from clock_timestamp())) "
                "ON CONFLICT (lock) DO UPDATE SET node = excluded.node, proved = excluded.proved",
                (self._lock, self.application_name))
        except psycopg.errors.UndefinedTable:  # a store not migrated yet: a plain round trip
            self._conn.execute("SELECT 1").fetchone()

    def take_term(self) -> Fence | None:
        """The claim's last check (:meth:`check`), which also begins a new term of ownership in
        the same statement: the ``election`` row's ``term`` raised by one (1 for the first
        owner).  Only the holder of the lock runs it, so terms are never given twice.  ``None``
        for a store not migrated to version 7 yet (the owner's writes are then not fenced)."""
        import psycopg

        try:
            row = self._conn.execute(
                "INSERT INTO election (lock, node, proved, term) "
                "VALUES (%s, %s, extract(epoch from clock_timestamp()), 1) "
                "ON CONFLICT (lock) DO UPDATE SET node = excluded.node, proved = excluded.proved, "
                "term = election.term + 1 RETURNING term",
                (self._lock, self.application_name)).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            self.check()
            return None
        return Fence(self._lock, int(row[0]))

    def claim_left(self, claim: float) -> float:
        """How long a node that has just won the lock must still hold it before it connects AMI:
        ``claim`` less the time since the last owner last proved its session alive (all of it
        when nothing says)."""
        import psycopg

        try:
            row = self._conn.execute("SELECT extract(epoch from clock_timestamp()) - proved FROM election "
                                     "WHERE lock = %s", (self._lock,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return claim
        if row is None or row[0] is None:
            return claim
        return min(claim, max(0.0, claim + CLAIM_MARGIN - float(row[0])))

    def close(self) -> None:
        """End the session (which frees the lock); never raises."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: S110 - a dead connection is what is being closed
                pass
