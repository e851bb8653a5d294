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

What the hub coordinates lives beside it: the index in :mod:`ucs.web.index`,
each phone's view of a call in :mod:`ucs.web.callview`, the pacing and the
handing out of waiting-caller counts in :mod:`ucs.web.pacing`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from ucs import events as ev
from ucs.api.registry import Registry
from ucs.api.scope import supervises
from ucs.api.session import Session, SessionManager
from ucs.api.stored_sessions import GONE
from ucs.calls.call import Call
from ucs.constants import Role, SessionState
from ucs.error import InvalidDataInput, NotFound
import ucs.web.messages as messages
from ucs.web.callview import CallViews, my_end, my_number, my_times
from ucs.web.connection import Connection
from ucs.web.index import ConnectionIndex
from ucs.web.messages import Outgoing, Request
from ucs.web.options import WebOptions, fixed_host, normalize_origin
from ucs.web.pacing import SendQueue, WaitingPacer

Prepare = Callable[[bytes], Any]

#: Methods after which the sessions' phones may have changed.
_PAIRING = frozenset({"login", "sso", "logout", "identifier", "selectIdentifier", "provision", "identify"})

#: Methods that never change which sessions exist, their state or their phone.
_NO_SESSION_CHANGE = ("agent.", "agents.", "call.", "cdr.", "state", "config.", "devices.", "session.info",
                      "api.", "lookup.", "shared.", "softphone.")

def _name(value: Any) -> Any:
    """An agent status (IntEnum) as the bar shows it: ``READY``."""
    return getattr(value, "name", value)


def _user_id(agent: Any) -> int | None:
    user = getattr(agent, "user", None)
    uid = getattr(user, "id", None)
    return uid if isinstance(uid, int) else None


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
        #: What each session was shown of each call (:mod:`ucs.web.callview`).
        self._views = CallViews()
        # Who is where: events touch only the connections they concern instead of
        # scanning all of them.  Connections whose session changed are put in their
        # new place before the next event looks (``_dirty``); None: rebuild whole.
        self._index: ConnectionIndex | None = None
        self._dirty: set[Connection] = set()
        self._flush: Any = None
        #: The directory kinds changed since the last ``config.change`` (sent merged).
        self._stale_config: set[str] = set()
        #: When each set of queues may next be sent a waiting-caller count (:mod:`ucs.web.pacing`).
        self._pacer = WaitingPacer()
        #: Waiting-caller counts still to hand to their connections.
        self._sends = SendQueue(clock)
        self._subscribed = False
        #: Told of a logged-in session whose bar went away for good (not resumed within
        #: ``resume_window``; a closed tab whose logout failed): its agent stops taking
        #: calls (``Auth.session_expired``, set by the container).
        self.session_expired: Callable[[Session], Any] | None = None
        #: Issue 20, with ``[cluster]``: the sessions in the store
        #: (:class:`ucs.api.stored_sessions.StoredSessions`), told of attaches and detaches,
        #: asked for resumes; the owner expires bars gone for good.  ``None``: one node.
        self.stored: Any = None
        #: Issue 20, with ``[cluster]``: what the bars are told of the node's link to the
        #: other nodes (``{"ok": False, "message": ...}`` while NATS is away), sent to every
        #: bar when it changes and to each bar that connects meanwhile (:meth:`cluster_notice`).
        self.cluster: dict[str, Any] | None = None
        #: Issue 20, with ``[cluster]``: whether a call's changes wait before they reach the
        #: bars (``Mirror.holding``: a new owner's resync rebuilding, step by step, a call its
        #: bars were shown whole -- they keep what they were shown until the resync is done).
        self.holding: Callable[[str], bool] | None = None

    def cluster_notice(self, notice: dict[str, Any]) -> None:
        """Tell every bar (logged in or not) how the node stands in its cluster: a bar on a
        node cut off from the others may show stale truth (a standby) or miss commands
        (the owner), and its user should know why.  Sent only when it changed."""
        if notice == self.cluster:
            return
        self.cluster = notice
        self._send((c for c in self.connections if c.open), "cluster", notice)

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
        self._sends.clear()
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
        if self.cluster is not None and not self.cluster.get("ok", True):
            conn.push("cluster", self.cluster)  # issue 20: it connected while the node is cut off

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
        if self.stored is not None:  # issue 20
            self.stored.attached(session)

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
        if not self._subscribed:
            # UCS is stopping (stopService closed every bar, and the closes arrive after
            # the hub stopped): the bar is not gone for good, nothing expires it.
            return
        if code == 1001 and session.data.get("logout_on_close"):
            # The page went away (the tab was closed, not a lost network):
            # seed 002's integrated auto-logout.
            self.log.info("{user}'s agent bar tab was closed: logging out", user=session.user.username)
            d = self.registry.call(session, "logout")

            def refused(f: Any) -> None:
                # (a call still up on the phone): the tab is gone all the same
                self.log.info("logout on tab close refused ({why}); the session ends", why=f.getErrorMessage())
                session.data[GONE] = True  # issue 20: the owner expires it from the store
                self.sessions.close(session, "tab closed")
                self._gone_for_good(session)

            d.addCallbacks(lambda _: self.sessions.close(session, "tab closed"), refused)
            return
        self._expiry[session.sid] = self.clock.callLater(
            self.options.resume_window, self._expire, session)
        if self.stored is not None:  # issue 20: another node may resume it meanwhile
            self.stored.detached(session)

    def _expire(self, session: Session) -> None:
        self._expiry.pop(session.sid, None)
        if session.sid not in self._by_sid:
            session.data[GONE] = True  # issue 20: the owner expires it from the store
            self.sessions.close(session, "the agent bar did not reconnect")
            self._gone_for_good(session)

    def _gone_for_good(self, session: Session) -> None:
        """A closed tab never takes calls: the agent is logged out or set AUX, as configured."""
        if self.session_expired is None or session.user is None:
            return
        if self.stored is not None:
            return  # issue 20: the owner expires it, once, from the store (ucs.api.stored_sessions)
        self.log.info("{user}'s agent bar did not come back", user=session.user.username)
        d = maybeDeferred(self.session_expired, session)
        d.addErrback(lambda f: self.log.failure("an agent whose bar went away kept working", f))

    def _session_closed(self, session: Session, reason: str) -> None:
        """The session ended on the server (a log-in elsewhere with ``autologout``, expiry)."""
        dc = self._expiry.pop(session.sid, None)
        if dc is not None and dc.active():
            dc.cancel()
        self._views.forget(session.sid)
        conn = self._by_sid.pop(session.sid, None)
        if conn is not None:
            self._dirty.add(conn)
        session.push = None
        if conn is None or conn.session is not session or not conn.open:
            return
        fresh = self.sessions.create("ws", conn.address, autologout=session.autologout,
                                     data={k: v for k, v in session.data.items() if k == "logout_on_close"})
        self._attach(conn, fresh)
        messages_ = {"logged in elsewhere": "You were logged out: you logged in on another computer or window.",
                     "user deleted": "You were logged out: your user was deleted by an administrator.",
                     "logged out by an administrator": "You were logged out by an administrator."}
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
        elif req.method == "state":
            d.addCallback(self._stated, session)
        elif not req.method.startswith(_NO_SESSION_CHANGE):
            d.addBoth(self._changed)  # a plugin's method may change sessions: look again
        return d

    def _paired(self, result: Any, session: Session) -> Any:
        # Calls shown to a session belong to the phone it had.
        if session.line is None:
            self._views.forget(session.sid)
        return result

    def _stated(self, result: Any, session: Session) -> Any:
        # The calls a ``state`` answer listed were shown to this session: their changes are its own.
        for call in result.get("calls", ()) if isinstance(result, dict) else ():
            if isinstance(call, dict) and isinstance(call.get("uniqueid"), str):
                self._views.shown(session.sid, call["uniqueid"], int(call.get("state", 0)))
        return result

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

    def _resume(self, conn: Connection, args: Any) -> Any:
        sid = _one_arg(args, "sid", "session.resume")
        if self.stored is not None:  # issue 20: the session may be another node's, in the store
            d = Deferred.fromCoroutine(self.stored.resume(sid, conn.address))
            return d.addCallback(lambda session: self._take(conn, session))
        try:
            session = self.sessions.get(sid)
        except NotFound:
            raise NotFound("that session has ended (UCS restarted, or it waited longer than "
                           f"{self.options.resume_window:g} s); log in again") from None
        if session.kind != "ws":
            raise NotFound("that is not an agent-bar session; log in again")
        return self._take(conn, session)

    def _take(self, conn: Connection, session: Session) -> dict[str, Any]:
        if conn not in self.connections:  # it closed while the store was asked (issue 20)
            if session.user is not None and session.sid not in self._by_sid and session.sid not in self._expiry:
                self._expiry[session.sid] = self.clock.callLater(self.options.resume_window, self._expire, session)
                if self.stored is not None:
                    self.stored.detached(session)
            raise NotFound("this connection closed; reconnect")
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
                "user": self._user(session.user) if session.user else None,
                "device": session.line.to_dict() if session.line else None}

    def _user(self, user: Any) -> dict[str, Any]:
        builder = getattr(self.state, "user", None)  # the state builder knows the directory's lines
        return builder(user) if builder is not None else dict(user.to_dict())

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
        if self.stored is not None:  # issue 20: the options go with the session to another node
            self.stored.changed(session)
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

    def _idx(self) -> ConnectionIndex:
        index = self._index
        if index is None or not self._subscribed:
            index = self._index = ConnectionIndex()
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
            kind = args.get("kind", "users")
            self._stale_config.add(kind if isinstance(kind, str) else "users")
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
            view = getattr(agent, "wrapup_view", None)
            if data["status"] == "ACW" and callable(view):
                data["wrapup"] = view()  # extend / end / required reason (issue 16)
            self._send(mine, "agent.status", data)
            self._agents_change(agent, data["status"], data["reason"])
        elif name in (ev.EVENT_AGENT_SUSPEND, ev.EVENT_AGENT_RESUME):
            self._send(mine, name, {"queue_id": args.get("queue_id")})
        elif name in (ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT):
            status = _name(getattr(agent, "status", None)) if name == ev.EVENT_AGENT_LOGIN else "OFFLINE"
            self._send(mine, name, {"reason": args.get("reason", ""), "status": status})
            self._agents_change(agent, status, getattr(agent, "reason", "") or "")
        elif name == ev.EVENT_AGENT_WRAPUP:  # issue 16: wrap-up extended, held, reason saved
            self._send(mine, name, {"wrapup": args.get("wrapup")})
        elif name == ev.EVENT_AGENT_MISSED:  # issue 16: a missed call, the unseen count
            self._send(mine, name, {"missed": args.get("missed"), "call": args.get("call")})
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
        if self.holding is not None and self.holding(call.uniqueid):
            return  # told whole once the resync is done (``Mirror._settle``)
        views = self._views
        devices = {leg.device for leg in call.legs.values()}
        now = self.clock.seconds()
        base: dict[str, Any] | None = None
        groups: dict[tuple[tuple[str, ...], int, tuple[tuple[str, Any], ...]], list[Connection]] = {}
        index = self._idx()
        candidates: dict[int, Connection] = {}
        for device in devices:
            for conn in index.by_device.get(device, ()):
                candidates[id(conn)] = conn
        for sid in views.viewers.get(call.uniqueid, ()):
            viewer = self._by_sid.get(sid)
            if viewer is not None:
                candidates[id(viewer)] = viewer
        for conn in self._still_ready(candidates.values()):
            session = conn.session
            assert session is not None
            shown = views.calls.get(session.sid)
            if (session.line is None or session.line.device not in devices) and not (shown and call.uniqueid in shown):
                continue
            device = session.line.device if session.line is not None else ""
            names, state = views.view(session.sid, call, name, device)
            if quiet and names == (ev.EVENT_CALL_CHANGE,):
                continue
            if names:
                mine = my_number(call, device) + (my_end(call, device) if names == ("call.hangup",) else ())
                mine += my_times(call, device, state)  # what this phone's timer counts from
                groups.setdefault((names, state, mine), []).append(conn)
        if not groups:
            return
        base = call.to_dict(now)
        extra = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool)) or v is None}
        for (names, state, mine), conns in groups.items():
            data = dict(base, state=state, **dict(mine))
            for event_name in names:
                self._send(conns, event_name, data, extra if event_name == name else None)

    # waiting callers and configuration: merged, a few times a second at most

    def _schedule_flush(self) -> None:
        if self._flush is None or not self._flush.active():
            self._flush = self.clock.callLater(self.options.coalesce_delay, self._flush_now)

    def _flush_now(self) -> None:
        self._flush = None
        index = self._idx()
        if self._stale_config:
            kinds, self._stale_config = sorted(self._stale_config), set()
            # Which kinds changed (users, queues, lines, ...): the bar reloads its state
            # either way; a CRM page's script may look only at the kinds it shows.
            self._send(self._still_ready(index.ready), "config.change", {"kinds": kinds})
        waiting = getattr(self.state, "waiting_callers", None)
        if waiting is None:
            return
        due, later = self._pacer.due(index, functools.partial(self._waiting_of, waiting), self.clock.seconds(),
                                     self.options)
        if later:
            self._schedule_flush()  # the groups held back get their count when their time comes
        for n, group in due.items():
            self._sends.add(self._out(messages.event("waitingCallers", {"waitingCallers": n})), group)
        self._sends.send_some()

    def _waiting_of(self, waiting: Callable[[int], Any], uid: int) -> int:
        try:
            return int(waiting(uid))
        except Exception:
            self.log.failure("waiting callers of user {uid}", uid=uid)
            return 0

    def idle(self) -> bool:
        """Nothing the hub merges is still to come: no flush scheduled, no
        waiting-caller count left to hand out, no group held back by pacing."""
        return ((self._flush is None or not self._flush.active()) and not self._sends
                and not self._pacer.holding(self.clock.seconds()))

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
