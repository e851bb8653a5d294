"""The agent-bar hub's index, kept up to date one connection at a time: events reach
a user's connections after log-in, pairing, log-out, a lost socket and a resume;
waiting-caller counts are computed once per set of queues and sent only where they
changed; a change no session reports (a user's queues) makes the hub look at every
connection again.

A real :class:`Hub`, :class:`SessionManager`, :class:`EventBus` and :class:`Registry`
on a ``task.Clock``; the connections are real :class:`Connection` objects whose socket
records what it is given.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task

from ucs import events as ev
from ucs.api.registry import Registry
from ucs.api.session import SessionManager
from ucs.bus import EventBus
from ucs.constants import SessionState
from ucs.directory.model import Line, QueueMembership, User
from ucs.web.connection import Connection
from ucs.web.hub import Hub
from ucs.web.messages import Outgoing
from ucs.web.options import WebOptions


class Socket:
    """What a connection writes to: every message, decoded."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outgoing: list[Outgoing] = []
        self.closed: tuple[int, str] | None = None

    def send(self, out: Outgoing) -> None:
        self.outgoing.append(out)
        self.sent.append(json.loads(out.data))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self) -> None:
        self.closed = (1006, "aborted")

    def events(self, name: str) -> list[Any]:
        return [m["data"] for m in self.sent if m.get("event") == name]


class Waiting:
    """The state builder's ``waiting_callers``: counts per queue id, summed over the user's queues."""

    def __init__(self, users: dict[int, User]) -> None:
        self.users = users
        self.by_queue: dict[int, int] = {}
        self.asked: list[int] = []

    def waiting_callers(self, user_id: int) -> int:
        self.asked.append(user_id)
        return sum(self.by_queue.get(q, 0) for q in self.users[user_id].queues)


class Agent:
    """The subject of agent events: the hub reads its user."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.status = "READY"
        self.reason = ""


def make() -> tuple[Hub, SessionManager, EventBus, task.Clock, Waiting, dict[int, User]]:
    users = {1: User(1, "alice", queues={10: QueueMembership()}),
             2: User(2, "bob", queues={10: QueueMembership()}),
             3: User(3, "carol", queues={10: QueueMembership(), 11: QueueMembership()})}
    clock, sessions, bus = task.Clock(), SessionManager(task.Clock()), EventBus()
    state = Waiting(users)
    hub = Hub(Registry(), sessions, bus, state, clock, WebOptions())
    hub.start()
    return hub, sessions, bus, clock, state, users


def connect(hub: Hub) -> tuple[Connection, Socket]:
    sock = Socket()
    conn = Connection(hub, sock, "10.0.0.1")
    conn.opened()
    return conn, sock


def work(conn: Connection, user: User, device: str) -> None:
    """Logged in and paired, as Auth does it: assignments the session reports."""
    session = conn.session
    assert session is not None
    session.user = user
    session.state = SessionState.IDENTIFY
    session.line = Line(user.id, device)
    session.state = SessionState.READY


def status(bus: EventBus, user: User) -> None:
    bus.publish(ev.EVENT_AGENT_STATUS, Agent(user), status="AUX", reason="Lunch", previous="READY")


def test_events_follow_login_logout_close_and_resume() -> None:
    hub, sessions, bus, clock, _, users = make()
    (a, sa), (b, sb) = connect(hub), connect(hub)
    status(bus, users[1])  # nobody logged in yet
    assert sa.events("agent.status") == sb.events("agent.status") == []

    work(a, users[1], "SIP/1")
    work(b, users[2], "SIP/2")
    status(bus, users[1])
    assert len(sa.events("agent.status")) == 1 and sb.events("agent.status") == []

    # A second tab of alice's, logged in after the index was built.
    a2, sa2 = connect(hub)
    work(a2, users[1], "SIP/1")
    status(bus, users[1])
    assert len(sa.events("agent.status")) == 2 and len(sa2.events("agent.status")) == 1

    # Logged out (as Auth.logout does it): no more of alice's events on that tab.
    assert a2.session is not None
    a2.session.user, a2.session.line, a2.session.state = None, None, SessionState.CREDENTIALS
    status(bus, users[1])
    assert len(sa.events("agent.status")) == 3 and len(sa2.events("agent.status")) == 1

    # The socket is lost: the session waits; a new socket takes it back.
    session = a.session
    assert session is not None
    a.closed(1006)
    assert a not in hub._dirty and a not in hub._idx().places  # nothing holds a closed connection
    status(bus, users[1])
    assert len(sa.events("agent.status")) == 3
    a3, sa3 = connect(hub)
    a3.received(json.dumps({"id": 1, "method": "session.resume", "args": [session.sid]}).encode(), False)
    reply = sa3.sent[-1]
    assert reply["id"] == 1 and reply["result"]["sid"] == session.sid and reply["result"]["state"] == "READY"
    status(bus, users[1])
    assert len(sa3.events("agent.status")) == 1

    # Calls follow the phone: the index knows the resumed connection's phone.
    assert hub._idx().by_device["SIP/1"] == {a3: None}

    # Closed on the server: the connection gets a fresh session, alice's events stop.
    sessions.close(session, "logged in elsewhere")
    assert sa3.events("session.closed")[0]["reason"] == "logged in elsewhere"
    status(bus, users[1])
    assert len(sa3.events("agent.status")) == 1
    assert sb.events("agent.status") == []
    hub.stop()


def test_waiting_counts_once_per_set_of_queues_and_only_where_they_changed() -> None:
    hub, sessions, bus, clock, state, users = make()
    conns = {uid: connect(hub) for uid in (1, 2, 3)}
    for uid, (conn, _) in conns.items():
        work(conn, users[uid], f"SIP/{uid}")

    def flush() -> None:
        bus.publish(ev.EVENT_QUEUE_WAITING, None, waiting=0)
        clock.advance(hub.options.coalesce_delay)

    state.by_queue = {10: 2}
    flush()
    assert sorted(state.asked) in ([1, 3], [2, 3])  # alice and bob share queue 10: one count
    counts = {uid: sock.events("waitingCallers") for uid, (_, sock) in conns.items()}
    assert counts == {1: [{"waitingCallers": 2}], 2: [{"waitingCallers": 2}], 3: [{"waitingCallers": 2}]}
    # One message, encoded once, for all three.
    outs = [o for _, sock in conns.values() for o in sock.outgoing if o.data.startswith(b'{"event":"waiting')]
    assert len({id(o) for o in outs}) == 1

    state.by_queue = {10: 2, 11: 1}  # only carol's count changes
    flush()
    counts = {uid: len(sock.events("waitingCallers")) for uid, (_, sock) in conns.items()}
    assert counts == {1: 1, 2: 1, 3: 2} and conns[3][1].events("waitingCallers")[-1] == {"waitingCallers": 3}

    # A new tab of bob's is told the count at the next flush, the others are not told again.
    b2, sb2 = connect(hub)
    work(b2, users[2], "SIP/2")
    flush()
    assert sb2.events("waitingCallers") == [{"waitingCallers": 2}]
    assert len(conns[2][1].events("waitingCallers")) == 1

    # Bob joins queue 11: no session reports that, the directory's event does.
    users[2].queues[11] = QueueMembership()
    bus.publish(ev.EVENT_USER_CHANGE, users[2], action="edit")
    flush()
    assert conns[2][1].events("waitingCallers")[-1] == {"waitingCallers": 3}
    assert sb2.events("waitingCallers")[-1] == {"waitingCallers": 3}
    assert len(conns[1][1].events("waitingCallers")) == 1
    hub.stop()
