"""What all agent-bar connections share: sessions, requests, and the fan-out of events.

The :class:`Hub` gives each connection a session (kind ``ws``, the peer's IP
address), keeps a logged-in session for ``resume_window`` seconds after its
socket went away so that a reconnecting bar takes it back (``session.resume``),
sends requests through the API registry, and turns the bus's events into
pushes for the sessions they concern:

* an agent's own status, suspensions, log-in and log-out to that agent's sessions;
* calls to the sessions paired with a phone that has a leg in the call, each
  seeing the call from its phone's side (ringing for the phone that rings, hang-up
  for the phone that left a call that goes on);
* waiting-caller counts to the members of the queues, merged over
  ``coalesce_delay`` so that a busy queue sends at most a few counts a second,
  counted once per set of queues that agents share (not once per agent), and
  paced by the size of that group: N agents get a new count at most every
  ``N / waiting_rate`` seconds (500 agents: every 2 s), so that the messages
  a second stay bounded however many agents a queue has;
* agent list changes to supervisors.

A message that several clients get is encoded and framed once (``prepare``,
autobahn's ``prepareMessage``).

Events find their connections through an index (by phone, by user, supervisors,
READY connections by their user's queues) kept up to date one connection at a
time: the :class:`SessionManager` reports each session whose user, state or
phone changes, the hub each connection it attaches or loses.  It is rebuilt
whole only after a change no session reports (a user's role or queues, the
directory: their events; a plugin's method).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from ucs import events as ev
from ucs.api.registry import Registry
from ucs.api.scope import supervises
from ucs.api.session import Session, SessionManager
from ucs.calls.call import INCOMING, Call, CallState, Cause
from ucs.calls.view import PHONE_RINGING, state_event
from ucs.constants import Role, SessionState
from ucs.error import InvalidDataInput, NotFound
import ucs.web.messages as messages
from ucs.web.connection import Connection
from ucs.web.messages import Outgoing, Request
from ucs.web.options import WebOptions, fixed_host, normalize_origin

Prepare = Callable[[bytes], Any]

#: Methods after which the sessions' phones may have changed.
_PAIRING = frozenset({"login", "sso", "logout", "identifier", "selectIdentifier", "provision", "identify"})

#: Methods that never change which sessions exist, their state or their phone.
_NO_SESSION_CHANGE = ("agent.", "agents.", "call.", "cdr.", "state", "config.", "devices.", "session.info",
                      "api.", "lookup.", "shared.")

_RINGING = (CallState.NEW, CallState.DIALING, CallState.RINGING)


def _name(value: Any) -> Any:
    """An agent status (IntEnum) as the bar shows it: ``READY``."""
    return getattr(value, "name", value)


def _user_id(agent: Any) -> int | None:
    user = getattr(agent, "user", None)
    uid = getattr(user, "id", None)
    return uid if isinstance(uid, int) else None


_Place = tuple[int | None, bool, str | None, bool, frozenset[int] | None]


def _my_end(call: Call, device: str) -> tuple[tuple[str, Any], ...]:
    """How the call ended for this phone when the call itself goes on (the agent
    hung up and the caller's leg is still being torn down, the agent transferred
    the caller away): seed 002's ``onCallHangup`` needs a cause, never -1."""
    if call.ended:
        return ()
    mine = [leg for leg in call.legs.values() if leg.device == device and leg.ended is not None]
    if not mine:
        return ()
    leg = max(mine, key=lambda l: l.ended or 0.0)
    if (leg.answered is None and call.connected is not None and leg.created <= call.connected
            and not leg.dial_status.startswith(("BUSY", "CONGESTION"))):
        # It rang for the caller and someone else answered (ringall, a pickup).  A phone
        # rung later in the call (a consultation, a transfer) that does not answer keeps
        # its own cause.
        cause = Cause.PICKUP
    elif leg.answered is None and call.connected is not None and leg.dial_status in ("CANCEL", "NOANSWER"):
        # Rung later in the call (a consultation, a transfer) and withdrawn unanswered,
        # by the attended transfer's no-answer timeout or the agent giving up: for
        # this phone it rang out, as a Dial timeout does (6), not a caller hanging up.
        cause = Cause.UNAVAILABLE
    else:
        cause = leg.cause if leg.cause != Cause.NOT_SET else Cause.UNKNOWN
    return (("cause", int(cause)), ("disconnected", leg.ended))


def _my_number(call: Call, device: str) -> tuple[tuple[str, Any], ...]:
    """Seed 002's ``number`` as this phone sees it (:meth:`Call.number_for`): the
    phone that placed an internal call would otherwise be shown its own extension."""
    number = call.number_for(device)
    return (("number", number),) if number != call.number else ()


def _add(table: dict[Any, dict[Connection, None]], key: Any, conn: Connection) -> None:
    table.setdefault(key, {})[conn] = None


def _discard(table: dict[Any, dict[Connection, None]], key: Any, conn: Connection) -> None:
    conns = table.get(key)
    if conns is not None:
        conns.pop(conn, None)
        if not conns:
            del table[key]


class _Index:
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


#: Waiting-caller messages handed to connections in one reactor turn at most: 250
#: writes are about 10 ms, short enough for a call event that arrives meanwhile
#: (500 were 25–40 ms at 10,000 bars, bench/README.md).
SENDS_PER_TURN = 250


class Hub:
    log = Logger()

    def __init__(
        self,
        registry: Registry,
        sessions: SessionManager,
        bus: Any,
        state: Any,
        clock: Any,
        options: WebOptions,
        *,
        version: str = "",
        prepare: Prepare | None = None,
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.bus = bus
        self.state = state
        self.clock = clock
        self.options = options
        self.version = version
        self._prepare = prepare
        self.connections: set[Connection] = set()
        self._by_sid: dict[str, Connection] = {}
        self._expiry: dict[str, Any] = {}        # sid → DelayedCall of a detached session
        self._calls: dict[str, dict[str, int]] = {}  # sid → call uniqueid → state last shown
        self._viewers: dict[str, set[str]] = {}  # call uniqueid → sids it was shown to
        self._hold_parties: dict[str, frozenset[str]] = {}  # held call uniqueid → the phones of its parties then
        # Who is where: events touch only the connections they concern instead of
        # scanning all of them.  Connections whose session changed are put in their
        # new place before the next event looks (``_dirty``); None: rebuild whole.
        self._index: _Index | None = None
        self._dirty: set[Connection] = set()
        self._flush: Any = None
        self._stale_config = False
        #: When each set of queues may next be sent a waiting-caller count (pacing).
        self._waiting_next: dict[frozenset[int], float] = {}
        #: Waiting-caller counts still to hand to their connections (:meth:`_send_some`).
        # Counts waiting to be handed out: (message, its connections), and how far
        # into the first group it got — a group, not one tuple per connection, so
        # that a flush to 10,000 bars leaves no 10,000 objects for the GC to walk.
        self._sends: deque[tuple[Outgoing, list[Connection]]] = deque()
        self._sent_of_first = 0
        self._sending: Any = None
        self._subscribed = False

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        if not self._subscribed:
            self.bus.subscribe_all(self._on_event)
            self.sessions.watch(self._session_changed)
            self._subscribed = True
            self._index = None

    def stop(self) -> None:
        if self._subscribed:
            self.bus.unsubscribe_all(self._on_event)
            self.sessions.unwatch(self._session_changed)
            self._subscribed = False
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        if self._sending is not None and self._sending.active():
            self._sending.cancel()
        self._sending = None
        self._sends.clear()
        self._sent_of_first = 0
        for sid, dc in list(self._expiry.items()):
            if dc.active():
                dc.cancel()
        self._expiry.clear()

    # -- origins -----------------------------------------------------------------------

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        """Browsers say which page opens a WebSocket: one of ``allowed_origins`` may, and
        a page served by UCS itself under an IP address or ``localhost`` (a host name
        in ``Host`` may be an attacker's, rebound to UCS: :func:`fixed_host`); a
        client that sends no Origin is not a browser."""
        if origin is None or origin == "":
            return True
        allowed = self.options.origins
        if "*" in allowed:
            return True
        norm = normalize_origin(origin)
        if norm in allowed:
            return True
        if host and fixed_host(host):
            own = normalize_origin(("https://" if secure else "http://") + host)
            if norm == own:
                return True
        return False

    # -- connections and sessions ----------------------------------------------------------

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._attach(conn, self.sessions.create("ws", conn.address))
        conn.push("hello", self.hello(conn))

    def hello(self, conn: Connection) -> dict[str, Any]:
        assert conn.session is not None
        return {
            "version": self.version,
            "address": conn.address,
            "sid": conn.session.sid,
            "state": conn.session.state.value,
            "now": self.clock.seconds(),
            "heartbeat": self.options.ping_interval,
            "resumeWindow": self.options.resume_window,
        }

    def _attach(self, conn: Connection, session: Session) -> None:
        self._dirty.add(conn)
        old = self._by_sid.get(session.sid)
        if old is not None and old is not conn:
            self._dirty.add(old)
            old.session = None
            if old.open:
                old.transport.close(4001, "this session was taken over by another connection")
        dc = self._expiry.pop(session.sid, None)
        if dc is not None and dc.active():
            dc.cancel()
        conn.session = session
        conn.last_waiting = None
        session.push = conn.push
        session.on_close = functools.partial(self._session_closed, session)
        self._by_sid[session.sid] = conn

    def connection_closed(self, conn: Connection, code: int | None) -> None:
        # Out of the index at once: nothing keeps a closed connection until the next event.
        self._dirty.discard(conn)
        if self._index is not None:
            self._index.remove(conn)
        self.connections.discard(conn)
        session, conn.session = conn.session, None
        if session is None or session.closed:
            return
        if self._by_sid.get(session.sid) is conn:
            del self._by_sid[session.sid]
        session.push = None
        if session.user is None:
            self.sessions.close(session, "connection closed")
            return
        if code == 1001 and session.data.get("logout_on_close"):
            # The page went away (the tab was closed, not a lost network):
            # seed 002's integrated auto-logout.
            self.log.info("{user}'s agent bar tab was closed: logging out", user=session.user.username)
            d = self.registry.call(session, "logout")
            d.addErrback(lambda f: self.log.failure("logout on tab close failed", f))
            d.addBoth(lambda _: self.sessions.close(session, "tab closed"))
            return
        self._expiry[session.sid] = self.clock.callLater(
            self.options.resume_window, self._expire, session)

    def _expire(self, session: Session) -> None:
        self._expiry.pop(session.sid, None)
        if session.sid not in self._by_sid:
            self.sessions.close(session, "the agent bar did not reconnect")

    def _session_closed(self, session: Session, reason: str) -> None:
        """The session ended on the server (a log-in elsewhere with ``autologout``, expiry)."""
        dc = self._expiry.pop(session.sid, None)
        if dc is not None and dc.active():
            dc.cancel()
        self._forget_calls(session.sid)
        conn = self._by_sid.pop(session.sid, None)
        if conn is not None:
            self._dirty.add(conn)
        session.push = None
        if conn is None or conn.session is not session or not conn.open:
            return
        fresh = self.sessions.create("ws", conn.address, autologout=session.autologout,
                                     data={k: v for k, v in session.data.items() if k == "logout_on_close"})
        self._attach(conn, fresh)
        messages_ = {"logged in elsewhere": "You were logged out: you logged in on another computer or window."}
        conn.push("session.closed", {"reason": reason, "message": messages_.get(reason, f"Session ended: {reason}"),
                                     "sid": fresh.sid, "state": fresh.state.value})

    # -- requests ----------------------------------------------------------------------------

    def dispatch(self, conn: Connection, req: Request) -> Deferred[Any]:
        session = conn.session
        if session is None:
            return maybeDeferred(_raise, NotFound("this connection has no session; reconnect"))
        own = self._transport_methods.get(req.method)
        if own is not None:
            return maybeDeferred(own, self, conn, req.args).addBoth(self._changed)
        d = self.registry.call(session, req.method, req.args)
        if req.method in _PAIRING:
            # What these change (a session's user, state, phone) the sessions report.
            d.addCallback(self._paired, session)
        elif not req.method.startswith(_NO_SESSION_CHANGE):
            d.addBoth(self._changed)  # a plugin's method may change sessions: look again
        return d

    def _paired(self, result: Any, session: Session) -> Any:
        # Calls shown to a session belong to the phone it had.
        if session.line is None:
            self._forget_calls(session.sid)
        return result

    def _forget_calls(self, sid: str) -> None:
        for uid in self._calls.pop(sid, {}):
            viewers = self._viewers.get(uid)
            if viewers is not None:
                viewers.discard(sid)
                if not viewers:
                    del self._viewers[uid]

    def _changed(self, result: Any) -> Any:
        # A plugin's method may have changed what no session reports (a user's
        # role or queues): look at every connection again before the next event.
        self._index = None
        return result

    def _session_changed(self, session: Session) -> None:
        """From the session manager: this session was created, closed, or is being given
        another user, state or phone."""
        conn = self._by_sid.get(session.sid)
        if conn is not None:
            self._dirty.add(conn)

    def _resume(self, conn: Connection, args: Any) -> dict[str, Any]:
        sid = _one_arg(args, "sid", "session.resume")
        try:
            session = self.sessions.get(sid)
        except NotFound:
            raise NotFound("that session has ended (UCS restarted, or it waited longer than "
                           f"{self.options.resume_window:g} s); log in again") from None
        if session.kind != "ws":
            raise NotFound("that is not an agent-bar session; log in again")
        current = conn.session
        if current is session:
            return self._resumed(session)
        self._attach(conn, session)
        if current is not None and current.user is None:
            self.sessions.close(current, "replaced by a resumed session")
        self.log.info("agent bar session of {user} resumed from {address}",
                      user=session.user.username if session.user else "-", address=conn.address)
        return self._resumed(session)

    def _resumed(self, session: Session) -> dict[str, Any]:
        return {"sid": session.sid, "state": session.state.value,
                "user": session.user.to_dict() if session.user else None,
                "device": session.line.to_dict() if session.line else None}

    def _options(self, conn: Connection, args: Any) -> dict[str, Any]:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            if isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict):
                args = args[0]
            else:
                raise InvalidDataInput("session.options takes an object {autologout, logoutOnClose}")
        known = {"autologout", "logoutOnClose"}
        unknown = [k for k in args if k not in known]
        if unknown:
            raise InvalidDataInput({k: "unknown option; session.options takes autologout, logoutOnClose"
                                    for k in unknown})
        for k, v in args.items():
            if not isinstance(v, bool):
                raise InvalidDataInput({k: f"{v!r} is not accepted; give true or false"})
        session = conn.session
        assert session is not None
        if "autologout" in args:
            session.autologout = args["autologout"]
        if "logoutOnClose" in args:
            session.data["logout_on_close"] = args["logoutOnClose"]
        return {"autologout": session.autologout, "logoutOnClose": bool(session.data.get("logout_on_close"))}

    def _ping(self, conn: Connection, args: Any) -> dict[str, Any]:
        return {"now": self.clock.seconds()}

    _transport_methods: dict[str, Callable[[Hub, Connection, Any], Any]] = {
        "session.resume": _resume,
        "session.options": _options,
        "session.ping": _ping,
    }

    # -- fan-out ---------------------------------------------------------------------------------

    def _out(self, data: bytes) -> Outgoing:
        return Outgoing(data, self._prepare(data) if self._prepare is not None else None)

    def event_bytes(self, name: str, data: Any, args: dict[str, Any] | None = None) -> bytes | None:
        """The event as it goes on the wire, never larger than ``[web] max_frame_size``.

        An event that cannot be encoded (a plugin put a NaN in a call's data) or is
        too large (a plugin's data past the limit) must not break the fan-out for
        every bar, nor reach the bar and be refused there: a call's event goes
        without the call's data (``data: {}``) and with ``dataDropped`` saying why,
        so the bar still shows the call.  Logged either way; ``None`` (nothing to
        send) only for an event that is not a call's and cannot be sent at all."""
        limit = self.options.max_frame_size
        try:
            payload = messages.event(name, data, args)
            if len(payload) <= limit:
                return payload
            problem = (f"the event was {len(payload)} bytes, over the {limit} bytes a message may have "
                       "([web] max_frame_size)")
        except (TypeError, ValueError) as e:
            problem = f"the event is not JSON ({e})"
        if isinstance(data, dict) and data.get("data"):
            try:
                payload = messages.event(name, dict(data, data={}, dataDropped=problem), args)
            except (TypeError, ValueError) as e:
                problem += f"; without the data still not JSON ({e})"
            else:
                if len(payload) <= limit:
                    self.log.error("{event} of call {uid} sent without the call's data: {problem}",
                                   event=name, uid=data.get("uniqueid"), problem=problem)
                    return payload
        self.log.error("{event} not sent to the agent bars: {problem}", event=name, problem=problem)
        return None

    def _send(self, conns: Iterable[Connection], name: str, data: Any,
              args: dict[str, Any] | None = None, key: str | None = None) -> None:
        conns = list(conns)
        if not conns:
            return
        payload = self.event_bytes(name, data, args)
        if payload is None:
            return
        out = self._out(payload)
        for conn in conns:
            conn.send(out, key)

    def _idx(self) -> _Index:
        index = self._index
        if index is None or not self._subscribed:
            index = self._index = _Index()
            self._dirty.clear()
            for conn in self.connections:
                index.add(conn)
        elif self._dirty:
            dirty, self._dirty = self._dirty, set()
            for conn in dirty:
                index.remove(conn)
                index.add(conn)
        return index

    @staticmethod
    def _still_ready(conns: Iterable[Connection]) -> list[Connection]:
        return [c for c in conns if c.open and c.session is not None and c.session.state is SessionState.READY]

    def _ready(self) -> list[Connection]:
        return self._still_ready(self._idx().ready)

    def _of_user(self, user_id: int) -> list[Connection]:
        return [c for c in self._idx().by_user.get(user_id, ()) if c.open and c.session is not None
                and c.session.user_id == user_id]

    def _on_event(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        if name in (ev.EVENT_USER_CHANGE, ev.EVENT_CONFIG_CHANGE):
            self._index = None  # a user's role or queues, or a phone, changed in the directory
        elif name in (ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT, ev.EVENT_AGENT_DEVICE):
            uid = _user_id(subject)
            if uid is not None and self._index is not None:
                self._dirty.update(self._index.by_user.get(uid, ()))  # that user's sessions, looked at again
        if name.startswith("call."):
            if isinstance(subject, Call):
                self._call_event(name, subject, args)
        elif name.startswith("agent."):
            self._agent_event(name, subject, args)
        elif name == ev.EVENT_QUEUE_WAITING:
            self._schedule_flush()
        elif name in (ev.EVENT_PBX_RESYNCED, ev.EVENT_PBX_RESTARTED):
            self._send(self._ready(), "resync", {"reason": name})
        elif name in (ev.EVENT_CONFIG_CHANGE, ev.EVENT_USER_CHANGE):
            self._stale_config = True
            self._schedule_flush()

    # agents

    def _agent_event(self, name: str, agent: Any, args: dict[str, Any]) -> None:
        uid = _user_id(agent)
        if uid is None:
            return
        mine = self._of_user(uid)
        if name == ev.EVENT_AGENT_STATUS:
            data = {
                "status": _name(args.get("status", getattr(agent, "status", None))),
                "reason": args.get("reason", getattr(agent, "reason", "")) or "",
                "previous": _name(args.get("previous")),
                "previous_reason": args.get("previous_reason") or "",
            }
            for attr, key in (("since", "since"), ("acw_until", "acwUntil")):
                value = getattr(agent, attr, None)
                if isinstance(value, (int, float)):
                    data[key] = value
            self._send(mine, "agent.status", data)
            self._agents_change(agent, data["status"], data["reason"])
        elif name in (ev.EVENT_AGENT_SUSPEND, ev.EVENT_AGENT_RESUME):
            self._send(mine, name, {"queue_id": args.get("queue_id")})
        elif name in (ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT):
            status = _name(getattr(agent, "status", None)) if name == ev.EVENT_AGENT_LOGIN else "OFFLINE"
            self._send(mine, name, {"reason": args.get("reason", ""), "status": status})
            self._agents_change(agent, status, getattr(agent, "reason", "") or "")
        elif name == ev.EVENT_AGENT_DEVICE:
            line: Any = args.get("line")
            to_dict = getattr(line, "to_dict", None)
            self._send(mine, name, {"device": to_dict() if callable(to_dict) else None})

    def _agents_change(self, agent: Any, status: Any, reason: str) -> None:
        user = getattr(agent, "user", None)
        # Only to those who supervise the agent (ucs.api.scope): a supervisor of one
        # queue is not told the statuses of the whole centre.
        supervisors = [c for c in self._still_ready(self._idx().supervisors)
                       if c.session is not None and c.session.role >= Role.SUPERVISOR
                       and user is not None and c.session.user is not None and supervises(c.session.user, user)]
        self._send(supervisors, "agents.change", {
            "id": _user_id(agent), "displayname": getattr(user, "name", ""), "status": status, "reason": reason})

    # calls

    def call_changed_quietly(self, call: Call) -> None:
        """A change of the call the bus says nothing about (the publisher's
        ``unpublished``): a phone that starts ringing or leaves inside a call that
        goes on (a consultation, a transfer) changes no call-level fact, but each
        phone's view may change.  Heard only while the hub runs, like the bus."""
        if self._subscribed:
            self._call_event(ev.EVENT_CALL_CHANGE, call, {}, quiet=True)

    def _call_event(self, name: str, call: Call, args: dict[str, Any], quiet: bool = False) -> None:
        if not self.connections:
            return  # no bar to show it to (a bar that comes back asks for its calls with ``state``)
        if call.state == CallState.HELD and not call.ended:
            # Who was in the call when it was put on hold: a phone that joins the
            # call while the caller still hears music (the consulted party of a
            # transfer that completes) did not hold it and is talking.
            self._hold_parties.setdefault(call.uniqueid, frozenset(self._holders(call)))
        else:
            self._hold_parties.pop(call.uniqueid, None)
        devices = {leg.device for leg in call.legs.values()}
        now = self.clock.seconds()
        base: dict[str, Any] | None = None
        groups: dict[tuple[tuple[str, ...], int, tuple[tuple[str, Any], ...]], list[Connection]] = {}
        index = self._idx()
        candidates: dict[int, Connection] = {}
        for device in devices:
            for conn in index.by_device.get(device, ()):
                candidates[id(conn)] = conn
        for sid in self._viewers.get(call.uniqueid, ()):
            viewer = self._by_sid.get(sid)
            if viewer is not None:
                candidates[id(viewer)] = viewer
        for conn in self._still_ready(candidates.values()):
            session = conn.session
            assert session is not None
            shown = self._calls.get(session.sid)
            if (session.line is None or session.line.device not in devices) and not (shown and call.uniqueid in shown):
                continue
            device = session.line.device if session.line is not None else ""
            names, state = self._view(session.sid, call, name, device)
            if quiet and names == (ev.EVENT_CALL_CHANGE,):
                continue
            if names:
                mine = _my_number(call, device) + (_my_end(call, device) if names == ("call.hangup",) else ())
                groups.setdefault((names, state, mine), []).append(conn)
        if not groups:
            return
        base = call.to_dict(now)
        extra = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool)) or v is None}
        for (names, state, mine), conns in groups.items():
            data = dict(base, state=state, **dict(mine))
            for event_name in names:
                self._send(conns, event_name, data, extra if event_name == name else None)

    def _view(self, sid: str, call: Call, name: str, device: str) -> tuple[tuple[str, ...], int]:
        """Which events one phone's bar gets for this change, and the call's state as that phone sees it."""
        shown = self._calls.setdefault(sid, {})
        uid = call.uniqueid
        prev = shown.get(uid)
        legs = [leg for leg in call.legs.values() if leg.device == device and leg.ended is None]
        if call.ended or name == ev.EVENT_CALL_HANGUP or not legs:
            if prev is None:
                return (), int(call.state)
            del shown[uid]
            self._unview(uid, sid)
            return ("call.hangup",), int(call.state)
        leg = legs[-1]
        state = int(call.state)
        if leg.answered is None and call.state not in _RINGING:
            state = int(CallState.RINGING)  # my phone rings in a call that is connected elsewhere
        elif leg.answered is not None and device not in self._hold_parties.get(uid, self._holders(call)):
            if prev == CallState.HELD:
                state = prev  # I held the caller, who went to the one I consulted; my own leg ends next
            elif call.state == CallState.HELD:
                state = int(CallState.CONNECTED)  # consulted while the caller waits on hold: I am talking
        if state == CallState.SUSPENDED and prev is not None:
            state = prev  # passing through on the way to hold or back
        names: list[str] = []
        if prev is None:
            origin = call.legs.get(call.origin)
            if origin is not None and origin.device == device and call.direction != INCOMING:
                names.append(ev.EVENT_CALL_NEW)
        told = state_event(state, prev, held=prev == CallState.HELD, ringing=PHONE_RINGING)
        if told is not None:
            names.append(told)
        if name in (ev.EVENT_CALL_MUTE, ev.EVENT_CALL_UNMUTE, ev.EVENT_CALL_TRANSFER) and prev is not None:
            names.append(name)
        if not names:
            names.append(ev.EVENT_CALL_CHANGE)
        shown[uid] = state
        self._viewers.setdefault(uid, set()).add(sid)
        return tuple(names), state

    def _unview(self, uid: str, sid: str) -> None:
        viewers = self._viewers.get(uid)
        if viewers is not None:
            viewers.discard(sid)
            if not viewers:
                del self._viewers[uid]

    @staticmethod
    def _holders(call: Call) -> set[str]:
        """The phones of the call's two parties (the caller's and the connected one's):
        when the call is on hold, one of them holds it."""
        out = set()
        for leg in call.legs.values():
            if leg.uniqueid == call.origin or (call.connected_channel and leg.channel == call.connected_channel):
                out.add(leg.device)
        return out

    # waiting callers and configuration: merged, a few times a second at most

    def _schedule_flush(self) -> None:
        if self._flush is None or not self._flush.active():
            self._flush = self.clock.callLater(self.options.coalesce_delay, self._flush_now)

    def _flush_now(self) -> None:
        self._flush = None
        index = self._idx()
        if self._stale_config:
            self._stale_config = False
            self._send(self._still_ready(index.ready), "config.change", {})
        waiting = getattr(self.state, "waiting_callers", None)
        if waiting is None:
            return
        # One count per set of queues (all its agents have the same), then one message
        # per distinct count, encoded once, to the connections not told it yet.
        due: dict[int, list[Connection]] = {}
        now = self.clock.seconds()
        paced = self._waiting_next
        later = False
        for queues, conns in index.by_queues.items():
            if paced.get(queues, 0.0) > now:
                later = True
                continue
            first = next(iter(conns))
            uid = first.session.user_id if first.session is not None else None
            if uid is None:
                continue
            try:
                n = int(waiting(uid))
            except Exception:
                self.log.failure("waiting callers of user {uid}", uid=uid)
                n = 0
            if index.told.get(queues) == n:
                continue
            index.told[queues] = n
            sent = 0
            for conn in conns:
                if conn.last_waiting != n:
                    conn.last_waiting = n
                    due.setdefault(n, []).append(conn)
                    sent += 1
            if sent:
                paced[queues] = now + max(self.options.coalesce_delay, len(conns) / self.options.waiting_rate)
        if len(paced) > 2 * len(index.by_queues) + 16:
            for queues in [q for q, t in paced.items() if t <= now]:
                del paced[queues]
        if later:
            self._schedule_flush()  # the groups held back get their count when their time comes
        for n, group in due.items():
            out = self._out(messages.event("waitingCallers", {"waitingCallers": n}))
            self._sends.append((out, group))
        self._send_some()

    def _send_some(self) -> None:
        """Hand queued counts to their connections, :data:`SENDS_PER_TURN` at a
        time: thousands of writes in one reactor turn would hold up the call
        events that came meanwhile."""
        sends = self._sends
        budget = SENDS_PER_TURN
        while sends and budget:
            out, group = sends[0]
            start = self._sent_of_first
            end = min(len(group), start + budget)
            for i in range(start, end):
                group[i].send(out, "waitingCallers")
            budget -= end - start
            if end == len(group):
                sends.popleft()
                self._sent_of_first = 0
            else:
                self._sent_of_first = end
        if sends and (self._sending is None or not self._sending.active()):
            self._sending = self.clock.callLater(0, self._send_some)

    # -- for the service --------------------------------------------------------------------

    def close_all(self, code: int = 1001, reason: str = "UCS is shutting down") -> None:
        for conn in list(self.connections):
            if conn.open:
                conn.transport.close(code, reason)

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections),
                "sessions": sum(1 for c in self.connections if c.session is not None and c.session.user is not None),
                "detached": len(self._expiry)}


def _raise(e: Exception) -> Any:
    raise e


def _one_arg(args: Any, name: str, method: str) -> Any:
    if isinstance(args, list) and len(args) == 1:
        value = args[0]
    elif isinstance(args, dict) and set(args) == {name}:
        value = args[name]
    else:
        raise InvalidDataInput({name: f"is required: {method} takes one argument, {name}"})
    if not isinstance(value, str) or not value:
        raise InvalidDataInput({name: f"{value!r} is not accepted; give a string"})
    return value
