"""Sessions: who is calling the API, from where, and how far they got.

An agent bar tab, an Interaction Processor connection or a plugin each has a
session.  Its ``state`` follows seed 002's component states: CREDENTIALS
(not logged in) → IDENTIFY (logged in, no phone) → DEVICE (phone chosen, not
confirmed) → READY (working).  Its ``role`` comes from the user.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ucs.constants import Role, SessionState
from ucs.directory.model import Line, User
from ucs.error import NotFound


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
    user: User | None = None
    state: SessionState = SessionState.CREDENTIALS
    line: Line | None = None      # the paired phone
    #: Log this session out when its user logs in elsewhere (seed 002 ``autologout``).
    autologout: bool = False
    closed: bool = False
    #: Called with (event name, payload) to push to the client; set by the transport.
    push: Callable[[str, Any], None] | None = None
    #: Called with a reason when the server ends the session; set by the transport.
    on_close: Callable[[str], None] | None = None
    data: dict[str, Any] = attrs.Factory(dict)

    @property
    def role(self) -> Role:
        return role_of(self.user)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None


class SessionManager:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        #: Bumped whenever a session is created, closed, logged in or out, or
        #: pairs a phone: who keeps an index of sessions rebuilds it then.
        self.generation = 0

    def touch(self) -> None:
        """Sessions changed (their user, state or phone)."""
        self.generation += 1

    def create(self, kind: str = "ws", address: str | None = None, **kw: Any) -> Session:
        session = Session(secrets.token_urlsafe(18), kind, address, self._clock.seconds(), **kw)
        self._sessions[session.sid] = session
        self.touch()
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
        return [s for s in self._sessions.values() if s.user_id == user_id and not s.closed]

    def __iter__(self) -> Iterator[Session]:
        return iter([s for s in self._sessions.values() if not s.closed])

    def __len__(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.closed)

    def close(self, session: Session, reason: str = "") -> None:
        if session.closed:
            return
        session.closed = True
        self._sessions.pop(session.sid, None)
        self.touch()
        if session.on_close is not None:
            session.on_close(reason)
