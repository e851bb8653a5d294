"""Logouts in the store, for the nodes of a cluster that missed their notice (issue 20).

A logout, a forced logout, a supervisor's ``agents.logout`` or a login that closes
the user's tabs with ``autologout`` (:func:`ucs.api.logouts.end`) is told to the
other nodes on plain NATS (:mod:`ucs.cluster.sessync`).  A node away from NATS
then -- NATS down, or this node alone cut off from it -- misses the notice, which
is not repeated, and its bars of that user would stay logged in until they
reconnect.  So the node that makes the logout also writes it to the store
(``logouts``, :mod:`ucs.store.sessions`): its id, the user, how, the reason, when
and where.  Every node reads the logouts written since its last read at each
heartbeat of its stored sessions (:class:`ucs.api.stored_sessions.StoredSessions`,
one query) and when its NATS link comes back, and carries out those of other
nodes on its own sessions of the user, as the notice would have (the same
messages) -- but only on the sessions logged in before the logout: a tab that
logged in since stays.  A session taken over from another node (a resume) is
checked at once against its user's logouts since it logged in (:meth:`StoredLogouts.resumed`):
its old node, dead or away, may have left it logged in.

**Once.**  The notice carries the logout's id (and when it was made).  A node
notes, per logout, the sessions it carried it out on (heard or read); a logout
read after its notice, or heard after it was read, leaves those alone -- a bar
that chose a phone again after a supervisor's ``agents.logout`` keeps it.

**Clocks.**  "Logged in before the logout" compares the logging-out node's clock
with this node's: the nodes' clocks must agree (NTP; a skew of a few
milliseconds matters only to a login made within it of the logout).  Each read
reaches back :data:`MARGIN` seconds before the previous one, which covers a
skew, a write that committed late, and a write tried again after the store was
away (its ``written`` is then later).  A node away from the store longer than
:data:`KEEP` may miss logouts pruned meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger

from ucs.api import logouts
from ucs.api.session import Session, SessionManager

#: How long a logout stays in the store (pruned by the next write after that).
KEEP = 86400.0
#: How far before its previous read each read reaches (skew, late commits, retried writes).
MARGIN = 60.0


class LogoutStoreLike(Protocol):
    def logout_write(self, logout: dict[str, Any], written: float, prune_before: float) -> Deferred[None]: ...
    def logouts_since(self, since: float) -> Deferred[list[dict[str, Any]]]: ...
    def logouts_of(self, user_id: int, after: float) -> Deferred[list[dict[str, Any]]]: ...


def logged_in(session: Session) -> float:
    """Since when ``session`` is logged in (its creation, for one restored without it)."""
    at = session.data.get("logged_in")
    return float(at) if isinstance(at, (int, float)) else float(session.created)


class StoredLogouts:
    """One node's part.  Its own logouts are written and handed to :attr:`told` (the
    node's :class:`ucs.cluster.sessync.SessionSync`, while it has one); another node's
    come through :meth:`heard` (a notice) or :meth:`catch_up` (the store)."""

    log = Logger()

    def __init__(self, store: LogoutStoreLike, sessions: SessionManager, clock: Any, node: str, *,
                 keep: float = KEEP, margin: float = MARGIN) -> None:
        self._store = store
        self._sessions = sessions
        self._clock = clock
        self.node = node
        self.keep = keep
        self.margin = margin
        #: Called with each logout made on this node (a dict: id, user_id, how, reason, node, at).
        self.told: list[Callable[[dict[str, Any]], None]] = []
        #: logout id → (when it was made, the sids it was carried out on here).
        self._done: dict[str, tuple[float, set[str]]] = {}
        self._unwritten: list[dict[str, Any]] = []
        self._writing: set[Deferred[None]] = set()
        self._since: float | None = None  # when the previous read began
        self._reading = False
        #: Reads of the store made (for tests), and logouts carried out from them.
        self.reads = 0
        self.caught_up = 0

    def start(self) -> None:
        self._sessions.ended_watchers.append(self._local)

    def stop(self) -> None:
        if self._local in self._sessions.ended_watchers:
            self._sessions.ended_watchers.remove(self._local)

    def flushed(self) -> Deferred[None]:
        """Fires when this node's logouts made so far are written (or failed)."""
        return DeferredList(list(self._writing)).addCallback(lambda _: None)

    # -- this node's logouts ------------------------------------------------------------------

    def _local(self, user_id: int, how: str, reason: str) -> None:
        logout = {"id": uuid.uuid4().hex, "user_id": user_id, "how": how, "reason": reason or "",
                  "node": self.node, "at": self._clock.seconds()}
        self._write(logout)
        for tell in list(self.told):
            tell(logout)

    def _write(self, logout: dict[str, Any]) -> Deferred[None]:
        now = self._clock.seconds()
        d = self._store.logout_write(logout, now, now - self.keep)

        def failed(f: Any) -> None:
            self.log.warn("the logout of user {user} was not written to the store ({e}); trying again at the "
                          "next heartbeat", user=logout["user_id"], e=f.getErrorMessage())
            self._unwritten.append(logout)

        d.addErrback(failed)
        self._writing.add(d)

        def written(result: Any) -> Any:
            self._writing.discard(d)
            return result

        return d.addBoth(written)

    # -- other nodes' logouts -----------------------------------------------------------------

    def heard(self, notice: dict[str, Any]) -> int:
        """Another node's logout, told on NATS as it was made: every session of the user
        here ends, but those it ended already (it was read from the store first)."""
        lid = notice.get("id")
        if not isinstance(lid, str):  # a node that gives no id: carried out, nothing to note
            return logouts.end(self._sessions, notice["user_id"], notice["how"], notice.get("reason") or "",
                               announce=False)
        at = notice.get("at")
        before = at if lid in self._done and isinstance(at, (int, float)) else None
        return self._apply(lid, notice, before)

    def catch_up(self) -> Deferred[int]:
        """Read the logouts written since the previous read and carry out those of other
        nodes not carried out here yet; fires with how many sessions it touched (0 when
        the store is away: logged, and the next heartbeat reads again).  One read at a time."""
        if self._reading:
            return succeed(0)  # the read under way covers it; the next heartbeat reads again
        self._reading = True

        def failed(f: Any) -> int:
            self.log.warn("the logouts made on other nodes could not be read from the store ({e}); trying "
                          "again at the next heartbeat", e=f.getErrorMessage())
            return 0

        def done(result: Any) -> Any:
            self._reading = False
            return result

        return Deferred.fromCoroutine(self._catch_up()).addErrback(failed).addBoth(done)

    async def _catch_up(self) -> int:
        unwritten, self._unwritten = self._unwritten, []
        for logout in unwritten:  # the store was away when they were made
            await self._write(logout)
        now = self._clock.seconds()
        since = (self._since if self._since is not None else now) - self.margin
        rows = await self._store.logouts_since(since)
        self._since = now
        self.reads += 1
        touched = 0
        for row in rows:
            if row["node"] == self.node or not self._sessions.of_user(int(row["user_id"])):
                continue
            n = self._apply(str(row["id"]), row, float(row["at"]))
            if n:
                self.caught_up += 1
                touched += n
                self.log.info("user {user} logged out on node {node} ({how}), not heard here: {n} session(s) "
                              "logged in before it ended", user=row["user_id"], node=row["node"], how=row["how"],
                              n=n)
        old = now - self.keep  # what the store has pruned cannot come back
        for lid in [lid for lid, (at, _) in self._done.items() if at < old]:
            del self._done[lid]
        return touched

    async def resumed(self, session: Session) -> int:
        """``session`` was just taken over from another node (a resume): the logouts of its
        user made since it logged in, which its old node did not carry out (it was away, or
        dead, and left its row), are -- one query, whatever the heartbeats read.  Not
        ``unpaired``: the take-over pairs the session from the agents as they are now."""
        user_id = session.user_id
        if user_id is None:
            return 0
        try:
            rows = await self._store.logouts_of(user_id, logged_in(session))
        except Exception as e:
            self.log.warn("the logouts of user {user} could not be read from the store ({e}); a session taken "
                          "over is resumed as it was", user=user_id, e=e)
            return 0
        touched = 0
        for row in rows:
            if session.closed or session.user is None:
                break
            if row["how"] != logouts.UNPAIRED:
                touched += self._apply(str(row["id"]), row, float(row["at"]), sid=session.sid)
        return touched

    def _apply(self, lid: str, logout: dict[str, Any], before: float | None, *, sid: str | None = None) -> int:
        """Carry ``logout`` out on the user's sessions here it has not touched yet (logged in
        before ``before``, when given; ``sid`` only, when given), and note them."""
        user_id = int(logout["user_id"])
        done = self._done.get(lid, (0.0, set()))[1]
        chosen = {s.sid for s in self._sessions.of_user(user_id)
                  if s.sid not in done and (before is None or logged_in(s) < before) and sid in (None, s.sid)}
        if not chosen:
            return 0
        at = logout.get("at")
        self._done[lid] = (float(at) if isinstance(at, (int, float)) else self._clock.seconds(), done | chosen)
        return logouts.end(self._sessions, user_id, str(logout["how"]), str(logout.get("reason") or ""),
                           announce=False, only=lambda s: s.sid in chosen)
