"""Which open agent-bar connections an event concerns: by phone, by user,
supervisors, READY connections by their user's queues.

The :class:`Hub` keeps one :class:`ConnectionIndex` up to date one connection at
a time (each connection whose session changed is taken out and put back) and
rebuilds it whole only after a change no session reports.
"""

from __future__ import annotations

from typing import Any

from ucs.constants import Role, SessionState
from ucs.web.connection import Connection

_Place = tuple[int | None, bool, str | None, bool, frozenset[int] | None]


def _add(table: dict[Any, dict[Connection, None]], key: Any, conn: Connection) -> None:
    table.setdefault(key, {})[conn] = None


def _discard(table: dict[Any, dict[Connection, None]], key: Any, conn: Connection) -> None:
    conns = table.get(key)
    if conns is not None:
        conns.pop(conn, None)
        if not conns:
            del table[key]


class ConnectionIndex:
    """Open connections with a session, by what events look them up with.

    Dicts used as ordered sets; ``places`` remembers where each connection was put so
    that it can be taken out when its session changes."""

    __slots__ = ("by_device", "by_queues", "by_user", "places", "ready", "supervisors", "told")

    def __init__(self) -> None:
        self.ready: dict[Connection, None] = {}
        self.by_device: dict[str, dict[Connection, None]] = {}
        self.by_user: dict[int, dict[Connection, None]] = {}
        self.supervisors: dict[Connection, None] = {}
        #: READY connections by the ids of their user's queues: all of a group have the
        #: same waiting-callers count.
        self.by_queues: dict[frozenset[int], dict[Connection, None]] = {}
        #: The count every connection of a group was told (absent: look at each).
        self.told: dict[frozenset[int], int] = {}
        self.places: dict[Connection, _Place] = {}

    def add(self, conn: Connection) -> None:
        session = conn.session
        if not conn.open or session is None:
            return
        user = session.user
        uid = session.user_id
        ready = session.state is SessionState.READY
        device = session.line.device if ready and session.line is not None else None
        supervisor = ready and session.role >= Role.SUPERVISOR
        queues = frozenset(user.queues) if ready and user is not None else None
        self.places[conn] = (uid, ready, device, supervisor, queues)
        if uid is not None:
            _add(self.by_user, uid, conn)
        if ready:
            self.ready[conn] = None
        if device is not None:
            _add(self.by_device, device, conn)
        if supervisor:
            self.supervisors[conn] = None
        if queues is not None:
            _add(self.by_queues, queues, conn)
            self.told.pop(queues, None)

    def remove(self, conn: Connection) -> None:
        place = self.places.pop(conn, None)
        if place is None:
            return
        uid, ready, device, supervisor, queues = place
        if uid is not None:
            _discard(self.by_user, uid, conn)
        if ready:
            self.ready.pop(conn, None)
        if device is not None:
            _discard(self.by_device, device, conn)
        if supervisor:
            self.supervisors.pop(conn, None)
        if queues is not None:
            _discard(self.by_queues, queues, conn)
            if queues not in self.by_queues:
                self.told.pop(queues, None)
