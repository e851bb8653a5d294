"""Agent-bar sessions in the store, so that any node of a cluster resumes them (issue 20).

A bar keeps its session id (``hello``'s ``sid``) and, when its socket goes, sends
``session.resume(sid)`` on the next one.  Behind a load balancer that next
socket may reach another node -- always, when its node died.  So with
``[cluster]`` each node writes what a resume needs of its logged-in agent-bar
sessions to the store (:mod:`ucs.store.sessions`): the user, the paired line,
the state, the options, created and last seen, whether a bar is attached and
until when one may come back -- keyed by the SHA-256 of the id, never the id.
A node that is asked to resume a session claims its row (compare-and-set: one
node wins) and re-creates the session as it was, paired to the same phone: no
login in Asterisk, no status change; the bar then loads ``state`` as after a
reload.

Ending a session (logout, a forced logout, a login elsewhere with autologout, a
deleted user) deletes its row: it cannot be resumed anywhere.  A logout is also
written to the store, and read at each heartbeat by the nodes that did not hear
its notice (:mod:`ucs.api.stored_logouts`).  A bar gone for
good (not back within the resume window, a closed tab whose logout failed)
leaves its row due; so do the sessions of a node that died (its heartbeat
stops).  Only the node that owns the AMI link expires what is due, once
(:meth:`Store.session_sweep` deletes each row by its version), and tells its
agents (``[agents] session_expiry``) only when no other bar of the user is
alive on any node.  Without ``[cluster]`` none of this runs.

Writes follow the session's changes, off the reactor thread, latest first-come
(the newest document per session, by one writer, in order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ucs.api.session import Session, SessionManager
from ucs.api.stored_logouts import LogoutStoreLike, StoredLogouts
from ucs.constants import SessionState
from ucs.directory.model import Line, User
from ucs.error import NotFound, UCSError

#: Set by the hub on a session it closes because its bar is gone for good: its row is
#: left due, for the owner to expire its agent, instead of deleted.
GONE = "gone_for_good"
#: Set on a local copy of a session that another node took over: closing it ends nothing.
MOVED = "served_elsewhere"
#: What a session carries in ``data`` that its next node needs (never the remember-me cookie).
KEPT = ("logout_on_close", "sso_provider", "logged_in")
#: The kind of session stored: the agent bar's (Interaction Processor sessions have no resume).
KIND = "ws"


class Unavailable(UCSError):
    code = 503


class SessionStoreLike(LogoutStoreLike, Protocol):
    def session_write(self, ops: Any) -> Deferred[None]: ...
    def session_claim(self, sid_hash: str, node: str, now: float, window: float,
                      stale_after: float) -> Deferred[tuple[str, dict[str, Any] | None]]: ...
    def session_heartbeat(self, node: str, now: float, *, release: float | None = None) -> Deferred[None]: ...
    def session_sweep(self, now: float, window: float, stale_after: float) -> Deferred[list[dict[str, Any]]]: ...
    def session_nodes(self, now: float, stale_after: float) -> Deferred[list[str]]: ...


class DirectoryLike(Protocol):
    users: dict[int, User]
    lines: dict[int, Line]


class AgentsLike(Protocol):
    def get(self, user_id: int) -> Any: ...
    async def session_expired(self, user_id: int) -> None: ...


def token_hash(sid: str) -> str:
    """What the store keeps of a session id (the bar's resume token)."""
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class StoredSessions:
    """One node's part: its sessions written, resumes from the store, and -- while this
    node owns the AMI link (``is_owner``) -- expiring what is due.

    ``window`` is ``[web] resume_window``; the heartbeat comes every ``heartbeat``
    seconds (default: a quarter of the window, at most 5 s), a node not heard of for
    three heartbeats is dead, and the owner sweeps at each of its heartbeats."""

    log = Logger()

    def __init__(self, store: SessionStoreLike, sessions: SessionManager, directory: DirectoryLike,
                 agents: AgentsLike, clock: Any, node: str, window: float, is_owner: Callable[[], bool],
                 heartbeat: float | None = None) -> None:
        self._store = store
        self._sessions = sessions
        self._directory = directory
        self._agents = agents
        self._clock = clock
        self.node = node
        self.window = window
        self._is_owner = is_owner
        self.heartbeat = heartbeat if heartbeat is not None else max(0.05, min(5.0, window / 4))
        self.stale_after = 3 * self.heartbeat
        #: sid → when its bar must be back by (a detached session); absent: attached.
        self._waiting: dict[str, float] = {}
        #: sids whose row this node wrote and has not deleted.
        self._stored: set[str] = set()
        self._dirty: dict[str, Session] = {}
        self._flush_call: Any = None
        self._pending: dict[str, tuple[str, Any]] = {}  # sid → the write still to do
        self._inflight: set[str] = set()  # the sids being written now
        self._writing = False
        self._idle: list[Deferred[None]] = []
        self._loop: LoopingCall | None = None
        self._first = True
        self._sweeping = False
        #: Sessions this node expired as the owner (for /health and tests).
        self.expired = 0
        #: The logouts of other nodes this node missed, read at each heartbeat (ucs.api.stored_logouts).
        self.logouts = StoredLogouts(store, sessions, clock, node)

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._sessions.watch(self._changed)
        self.logouts.start()
        self._first = True
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.heartbeat, now=True)

    async def stop(self) -> None:
        """Stop listening; what is queued is written.  The rows stay: the bars of a node
        that stops come back elsewhere, or are expired by the owner."""
        self._sessions.unwatch(self._changed)
        self.logouts.stop()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._flush()
        self._kick()  # what failed before is tried once more
        await self.flushed()
        await self.logouts.flushed()

    def flushed(self) -> Deferred[None]:
        """Fires when every change so far is written (or failed)."""
        d: Deferred[None] = Deferred()
        if not self._writing and not self._pending and not self._dirty:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    # -- what the hub tells ----------------------------------------------------------------

    def changed(self, session: Session) -> None:
        """Something the session manager does not report changed (``session.options``)."""
        self._changed(session)

    def attached(self, session: Session) -> None:
        """A bar's socket took the session (a new connection, or a resume)."""
        self._waiting.pop(session.sid, None)
        self._changed(session)

    def detached(self, session: Session) -> None:
        """The session's socket went: it waits ``window`` seconds for its bar."""
        self._waiting[session.sid] = self._clock.seconds() + self.window
        self._changed(session)

    async def resume(self, sid: str, address: str | None) -> Session:
        """The session ``sid`` for a bar that reconnected to this node: taken over from the
        store (from whichever node served it), or this node's own."""
        local = self._local(sid)
        now = self._clock.seconds()
        try:
            status, row = await self._store.session_claim(token_hash(sid), self.node, now, self.window,
                                                          self.stale_after)
        except Exception as e:
            if local is not None and local.kind == KIND:
                self.log.warn("session store unreachable ({e}); resuming this node's own session", e=e)
                return local
            raise Unavailable("this session cannot be looked up now (the store is unreachable); "
                              "try again, or log in again") from e
        if status == "expired":
            raise NotFound(f"that session has expired: its agent bar did not come back within "
                           f"{self.window:g} s; log in again")
        if status != "claimed" or row is None:
            if local is not None and local.kind == KIND:
                if local.user is None or self._unwritten(sid):
                    return local  # not logged in (nothing stored), or its row is not written yet
                local.data[MOVED] = True  # another node served it since, and ended it
                self._sessions.close(local, "ended on another node")
            raise NotFound("that session has ended (logged out, expired, or unknown); log in again")
        if row["kind"] != KIND:
            raise NotFound("that is not an agent-bar session; log in again")
        if local is not None and not local.closed:
            if row["node"] == self.node:
                return local  # this node's own, and nobody took it meanwhile
            local.data[MOVED] = True  # a stale copy: another node served it since
            self._sessions.close(local, "resumed on another node")
        restored = getattr(self._agents, "restored", None)
        if restored is not None:
            await restored()  # a take-over restoring the agents: wait to know where the agent works
        again = self._local(sid)
        if again is not None and not again.closed:
            # Another socket of the same bar resumed it meanwhile (a quick reconnect while the old
            # socket was not yet seen closed): the same session, not a second one.
            return again
        session = self._recreate(sid, row, address)
        await self.logouts.resumed(session)  # its user logged out since, and its old node did not end it
        if session.closed or session.user is None:
            self._sessions.close(session, "logged out on another node")
            raise NotFound("that session has ended (its user was logged out since, on another node); log in again")
        return session

    def _local(self, sid: str) -> Session | None:
        """This node's session ``sid``, if it has one."""
        try:
            return self._sessions.get(sid)
        except NotFound:
            return None

    def _recreate(self, sid: str, row: dict[str, Any], address: str | None) -> Session:
        user = self._directory.users.get(int(row["user_id"]))
        if user is None:
            self._put_now(sid, ("delete", (token_hash(sid), self.node)))
            raise NotFound("that session's user no longer exists; log in again")
        line_id = row["line_id"]
        line = self._directory.lines.get(line_id) if isinstance(line_id, int) else None
        try:
            state = SessionState(row["state"])
        except ValueError:
            state = SessionState.IDENTIFY
        # The agent as this node's model has it now: the phone it works on wins (as at a login).
        agent = self._agents.get(user.id)
        if agent is not None and getattr(agent, "line", None) is not None:
            line, state = agent.line, SessionState.READY
        elif state is SessionState.READY or (state is SessionState.DEVICE and line is None):
            line, state = None, SessionState.IDENTIFY  # the agent stopped working meanwhile
        options = row["options"] if isinstance(row["options"], dict) else {}
        session = self._sessions.restore(
            sid, KIND, address, float(row["created"]), user=user, line=line, state=state,
            autologout=bool(options.get("autologout")), data={k: options[k] for k in KEPT if k in options})
        self._stored.add(sid)
        self.log.info("agent bar session of {user} taken over from node {node}", user=user.username,
                      node=row["node"])
        return session

    # -- writing --------------------------------------------------------------------------------

    def _changed(self, session: Session) -> None:
        """From the session manager (before the change is made): written on the next turn,
        once, as the session is then."""
        if session.kind != KIND or session.data.get(MOVED):
            return
        self._dirty[session.sid] = session
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        dirty, self._dirty = self._dirty, {}
        now = self._clock.seconds()
        for sid, session in dirty.items():
            op = self._op(session, now)
            if op is not None:
                self._put_now(sid, op)
        self._done_if_idle()

    def _op(self, session: Session, now: float) -> tuple[str, Any] | None:
        sid = session.sid
        gone = session.closed and bool(session.data.get(GONE))
        if session.user is None or (session.closed and not gone):
            self._waiting.pop(sid, None)
            if sid not in self._stored:
                return None
            self._stored.discard(sid)
            return "delete", (token_hash(sid), self.node)
        if session.closed:  # gone for good: the row stays, due now, for the owner to expire
            self._waiting.pop(sid, None)
            self._stored.discard(sid)
        else:
            self._stored.add(sid)
        options = {k: session.data[k] for k in KEPT if k in session.data}
        options["autologout"] = session.autologout
        return "put", {
            "sid_hash": token_hash(sid), "kind": session.kind, "user_id": session.user.id,
            "line_id": session.line.id if session.line is not None else None, "state": session.state.value,
            "options": options, "node": self.node, "created": session.created, "seen": now,
            "expires": now if gone else self._waiting.get(sid)}

    def _put_now(self, sid: str, op: tuple[str, Any]) -> None:
        self._pending.pop(sid, None)  # re-inserted: written after the older ones
        self._pending[sid] = op
        self._kick()

    def _kick(self) -> None:
        if self._pending and not self._writing:
            self._writing = True
            Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = list(self._pending.items())[:200]
                for sid, _ in batch:
                    del self._pending[sid]
                self._inflight = {sid for sid, _ in batch}
                try:
                    await self._store.session_write([op for _, op in batch])
                except Exception as e:
                    if self._loop is None:  # stopping: nobody would try again
                        self.log.warn("sessions: {n} change(s) not written to the store ({e})",
                                      n=len(batch) + len(self._pending), e=e)
                        self._pending.clear()
                        return
                    self.log.warn("sessions: {n} change(s) not written to the store ({e}); trying again at the "
                                  "next heartbeat", n=len(batch), e=e)
                    for sid, op in batch:
                        self._pending.setdefault(sid, op)
                    return
        finally:
            self._inflight = set()
            self._writing = False
            self._done_if_idle()

    def _unwritten(self, sid: str) -> bool:
        return sid in self._dirty or sid in self._pending or sid in self._inflight

    def _done_if_idle(self) -> None:
        if self._writing or self._pending or self._dirty:
            return
        idle, self._idle = self._idle, []
        for d in idle:
            d.callback(None)

    # -- heartbeat and expiry -------------------------------------------------------------------

    async def live_nodes(self) -> list[str]:
        """The nodes alive now, by their heartbeats (``ops.sessions`` expects each to answer)."""
        nodes: list[str] = await self._store.session_nodes(self._clock.seconds(), self.stale_after)
        return nodes

    def _tick(self) -> Deferred[None]:
        d = Deferred.fromCoroutine(self._beat())
        d.addErrback(lambda f: self.log.warn("sessions: heartbeat failed: {e}", e=f.getErrorMessage()))
        return d

    async def _beat(self) -> None:
        now = self._clock.seconds()
        # First beat of this run: the rows this node left attached before (a restart) have no bar here.
        await self._store.session_heartbeat(self.node, now, release=now + self.window if self._first else None)
        self._first = False
        self._kick()  # what failed before
        await self.logouts.catch_up()  # another node's logout this node did not hear (logs its failures)
        if self._is_owner() and not self._sweeping:
            self._sweeping = True
            try:
                await self.sweep()
            finally:
                self._sweeping = False

    async def sweep(self) -> list[dict[str, Any]]:
        """The owner: end what is due; an agent with no bar left anywhere stops taking calls."""
        ended = await self._store.session_sweep(self._clock.seconds(), self.window, self.stale_after)
        for row in ended:
            self.expired += 1
            user = self._directory.users.get(int(row["user_id"]))
            name = user.username if user is not None else row["user_id"]
            if not row.get("alone"):
                self.log.info("agent bar session of {user} on node {node} expired; another bar of theirs is alive",
                              user=name, node=row["node"])
                continue
            self.log.info("agent bar session of {user} on node {node} expired: no bar of theirs came back",
                          user=name, node=row["node"])
            try:
                await self._agents.session_expired(int(row["user_id"]))
            except Exception as e:
                self.log.warn("an agent whose bar went away kept working: {e}", e=e)
        return ended
