"""Sessions: who is calling the API, from where, and how far they got.

An agent bar tab, an Interaction Processor connection or a plugin each has a
session.  Its ``state`` follows seed 002's component states: CREDENTIALS
(not logged in) → IDENTIFY (logged in, no phone) → DEVICE (phone chosen, not
confirmed) → READY (working).  Its ``role`` comes from the user.

The :class:`SessionManager` keeps the sessions by id and by user, and tells
who indexes sessions further (the agent-bar hub) which session changed: a
session's ``user``, ``state`` and ``line`` report every assignment to the
manager that made it, whoever assigns them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ucs.constants import Role, SessionState
from ucs.directory.model import Line, User
from ucs.error import NotFound


def _report(session: Session, attribute: attrs.Attribute[Any], value: Any) -> Any:
    """``on_setattr`` of a session's user, state and phone: its manager hears of the
    change before the value is set (it still sees the old one)."""
    manager = session._manager
    if manager is not None:
        manager._changing(session, attribute.name, value)
    return value


def role_of(user: User | None) -> Role:
    if user is None:
        return Role.ANONYMOUS
    if user.superuser:
        return Role.SUPERUSER
    if user.supervisor or any(m.supervisor for m in user.queues.values()):
        return Role.SUPERVISOR
    return Role.AGENT


@attrs.define(eq=False)
class Session:
    sid: str
    kind: str = "ws"              # ws | iserver | plugin | system
    address: str | None = None    # the client's IP address
    created: float = 0.0
    user: User | None = attrs.field(default=None, on_setattr=_report)
    state: SessionState = attrs.field(default=SessionState.CREDENTIALS, on_setattr=_report)
    line: Line | None = attrs.field(default=None, on_setattr=_report)  # the paired phone
    #: Log this session out when its user logs in elsewhere (seed 002 ``autologout``).
    autologout: bool = False
    closed: bool = False
    #: Called with (event name, payload) to push to the client; set by the transport.
    push: Callable[[str, Any], None] | None = None
    #: Called with a reason when the server ends the session; set by the transport.
    on_close: Callable[[str], None] | None = None
    data: dict[str, Any] = attrs.Factory(dict)
    #: The manager that made the session, told of changes; None for a session made by hand.
    _manager: SessionManager | None = attrs.field(default=None, init=False, repr=False)

    @property
    def role(self) -> Role:
        return role_of(self.user)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None


#: Told of a session that was created, closed, or is being given another user, state or phone.
Watcher = Callable[[Session], None]


class SessionManager:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._by_user: dict[int, dict[str, Session]] = {}  # user id → its open sessions by sid
        self._watchers: list[Watcher] = []
        #: Told ``(user_id, how, reason)`` when a logout ended a user's sessions here
        #: (:func:`ucs.api.logouts.end`): a cluster node tells the others (issue 20).
        self.ended_watchers: list[Callable[[int, str, str], None]] = []

    # -- who follows the changes --------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher(session)`` when a session is created or closed, or its user, state
        or phone is assigned (before the new value is set, whoever assigns it)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def _tell(self, session: Session) -> None:
        for watcher in list(self._watchers):
            watcher(session)

    def _changing(self, session: Session, name: str, value: Any) -> None:
        if session.closed:
            return
        if name == "user":
            old, new = session.user_id, (value.id if value is not None else None)
            if old != new:
                self._unindex(session, old)
                self._index(session, new)
        self._tell(session)

    def _index(self, session: Session, user_id: int | None) -> None:
        if user_id is not None:
            self._by_user.setdefault(user_id, {})[session.sid] = session

    def _unindex(self, session: Session, user_id: int | None) -> None:
        if user_id is None:
            return
        mine = self._by_user.get(user_id)
        if mine is not None and mine.pop(session.sid, None) is not None and not mine:
            del self._by_user[user_id]

    # -- sessions -------------------------------------------------------------------------

    def create(self, kind: str = "ws", address: str | None = None, **kw: Any) -> Session:
        session = Session(secrets.token_urlsafe(18), kind, address, self._clock.seconds(), **kw)
        session._manager = self
        self._sessions[session.sid] = session
        self._index(session, session.user_id)
        self._tell(session)
        return session

    def restore(self, sid: str, kind: str, address: str | None, created: float, **kw: Any) -> Session:
        """A session another node served, taken over under its own id (issue 20: a bar
        resumes on this node after its node died; :mod:`ucs.api.stored_sessions`)."""
        if sid in self._sessions:
            raise ValueError(f"a session with this id is open here already ({kind})")
        session = Session(sid, kind, address, created, **kw)
        session._manager = self
        self._sessions[sid] = session
        self._index(session, session.user_id)
        self._tell(session)
        return session

    def system(self, user: User | None = None) -> Session:
        """A session for UCS's own work and for plugins: superuser unless a user is given."""
        from ucs.directory.model import User as _User

        return self.create("system", user=user or _User(0, "system", superuser=True), state=SessionState.READY)

    def get(self, sid: str) -> Session:
        session = self._sessions.get(sid) if isinstance(sid, str) else None
        if session is None or session.closed:
            raise NotFound(f"session {sid!r} does not exist or has ended; log in again")
        return session

    def of_user(self, user_id: int) -> list[Session]:
        """The open sessions of a user (an index: no scan of all sessions)."""
        mine = self._by_user.get(user_id)
        return list(mine.values()) if mine else []

    def __iter__(self) -> Iterator[Session]:
        return iter([s for s in self._sessions.values() if not s.closed])

    def __len__(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.closed)

    def close(self, session: Session, reason: str = "") -> None:
        if session.closed:
            return
        session.closed = True
        if self._sessions.get(session.sid) is session:
            del self._sessions[session.sid]
            self._unindex(session, session.user_id)
        self._tell(session)
        if session.on_close is not None:
            session.on_close(reason)
