"""The Interaction Processor (seed 003): the shared service and one controller per connection.

The autobahn protocol (:mod:`ucs.iserver.protocol`) only frames; every text
message goes to a :class:`Controller`, which parses it, answers it and sends
the events its session and its ``report.teamstatus`` subscription get.
:class:`IServer` is what the controllers share: the API registry, sessions,
agents, directory, call tracker, store and the bus's events.

Every reply has the seed's form: ``{"command", "result": "success", ...}``,
``{"command", "result": "confirm", "message", "original"}`` or
``{"command", "result": "failure", "failure": {"code", "message", "context"},
"original"}``.  Events are ``{"name", "data"}`` (with ``"resource"`` for the
session's own events).  docs/iserver.md lists every message.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import ucs
from ucs import events as ev
from ucs import wirejson
from ucs.api.scope import Subject
from ucs.api.session import Session
from ucs.constants import Role, SessionState
from ucs.error import UCSError
from ucs.iserver.teams import TeamWatch

#: The call models a session may be prepared with (``prepareSession`` ``data.model``).
MODELS = ("ucs", "uccx")
#: Registry methods a client may not call through the session resource (prepareSession logs in).
BLOCKED = frozenset({"login", "sso", "session.resume"})
#: Events sent to a session (its own agent's, and calls on its phone).
SESSION_EVENTS = (ev.EVENT_AGENT_STATUS, ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT, ev.EVENT_AGENT_SUSPEND,
                  ev.EVENT_AGENT_RESUME, ev.EVENT_AGENT_DEVICE, ev.EVENT_CALL_NEW, ev.EVENT_CALL_RINGING,
                  ev.EVENT_CALL_CONNECT, ev.EVENT_CALL_HOLD, ev.EVENT_CALL_RESUME, ev.EVENT_CALL_MUTE,
                  ev.EVENT_CALL_UNMUTE, ev.EVENT_CALL_TRANSFER, ev.EVENT_CALL_HANGUP, ev.EVENT_CALL_CHANGE)
#: Ended calls whose journey is kept in memory (the CDR reaches the store a moment later).
RECENT_CALLS = 2000
SERVICE_INFO = "getServiceInformation"
SERVICE_INFO_EVENT = "serviceInformation"


class Failed(Exception):
    """A request that gets a failure reply: ``code`` (a stable word), message, context."""

    def __init__(self, code: str, message: str, context: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


def _from_ucs_error(e: UCSError) -> Failed:
    context = ""
    if isinstance(e.message, dict):
        context = ", ".join(str(k) for k in e.message)
    return Failed(e.kind, str(e), context)


def _dumps(message: Any) -> bytes:
    return json.dumps(message, default=str, allow_nan=False).encode("utf-8")


def _redacted(value: Any) -> Any:
    """The request as echoed back: the agent's password is never sent again."""
    if isinstance(value, dict):
        return {k: ("********" if k == "password" and isinstance(v, str) else _redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class Transport(Protocol):
    """What a controller needs of its socket."""

    def send(self, data: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def abort(self) -> None: ...


class IServer(Service):
    """The Interaction Processor service; see the module docstring.

    Started, it follows the bus; stopped, it closes every connection (1001) and
    every session they had.  ``ami`` (the AMI client) answers ``CoreSettings``
    for ``cti-version``; ``store`` (or the store proxy) has the CDRs of ended calls.
    """

    log = Logger()

    def __init__(self, *, registry: Any, sessions: Any, bus: Any, agents: Any, directory: Any, tracker: Any,
                 store: Any, ami: Any, reactor: Any, instance_domain: str = "", version: str = "",
                 max_request_size: int = 64 * 1024, max_pending: int = 32,
                 max_client_buffer: int = 1024 * 1024, max_message_size: int = 1024 * 1024) -> None:
        self.setName("iserver")
        self.registry = registry
        self.sessions = sessions
        self.bus = bus
        self.agents = agents
        self.directory = directory
        self.tracker = tracker
        self.store = store
        self.ami = ami
        self.clock = reactor
        self.instance_domain = instance_domain
        self.version = version or ucs.__version__
        self.max_request_size = max_request_size
        self.max_pending = max_pending
        self.max_client_buffer = max_client_buffer
        #: The largest message autobahn sends (``[web] max_frame_size``); a larger
        #: reply becomes a failure reply, a larger event loses the call's data.
        self.max_message_size = max_message_size
        self.controllers: set[Controller] = set()
        self._cti_version: str | None = None
        #: Calls just ended, until their CDR is surely stored: the journey's steps and
        #: when the call ended (rendered when a client asks, not at every hangup).
        self._recent: OrderedDict[str, tuple[list[Any], float]] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.bus.subscribe_all(self._on_event)

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        self.bus.unsubscribe_all(self._on_event)
        for c in list(self.controllers):
            c.shutdown()

    # -- service information ---------------------------------------------------------

    async def cti_version(self) -> str:
        """Asterisk's version (``CoreSettings`` ``AsteriskVersion``), asked once per link."""
        if self._cti_version:
            return self._cti_version
        try:
            msg = await self.ami.sendAction("CoreSettings", timeout=5)
            self._cti_version = str(msg.get("AsteriskVersion") or msg.get("asteriskversion") or "") or None
        except Exception as e:
            self.log.info("cti-version unknown for now: {e}", e=str(e) or repr(e))
        return self._cti_version or ""

    async def service_info(self, host: str = "") -> dict[str, Any]:
        return {"vendor": "UCS", "version": self.version, "cti-vendor": "Asterisk",
                "cti-version": await self.cti_version(), "instance-domain": self.instance_domain or host}

    def capabilities(self) -> dict[str, Any]:
        names = sorted(n for n in self.registry.names() if n not in BLOCKED)
        return {
            "models": list(MODELS),
            "service": [SERVICE_INFO, "prepareSession", "getCapabilities", "endSession"],
            "agentControl": [n for n in names if n.startswith("agent.")] + ["identifier", "provision", "logout"],
            "callControl": [n for n in names if n.startswith("call.")],
            "methods": names,
            "reports": ["report.calljourney", "report.teamstatus.begin", "report.teamstatus.end"],
            "reportEvents": ["report.teamstatus." + e for e in ("teamadded", "teamchanged", "teamremoved",
                                                                 "memberadded", "memberstatuschanged",
                                                                 "memberremoved")],
            "sessionEvents": list(SESSION_EVENTS) + ["session.closed", "logout"],
            "memberStatuses": ["ready", "not_ready", "ACW"],
            "override": True,
        }

    # -- reports ----------------------------------------------------------------------

    async def journey(self, call_id: str) -> list[dict[str, Any]]:
        """The journey of a call by its id (the Linkedid): live, just ended, or from its CDR."""
        call = self.tracker.call_of(call_id)
        if call is not None and call.uniqueid == call_id:
            now = self.clock.seconds()
            return [step.to_dict(now, call_id) for step in call.journey]
        if call_id in self._recent:
            steps, ended = self._recent[call_id]
            return [step.to_dict(ended, call_id) for step in steps]
        cdr = await self.store.get_cdr(call_id)
        if cdr is None:
            raise Failed("not_found", f"no call has the id {call_id!r} (live or ended); give a call's "
                                      "uniqueid (its Linkedid)", "data.CallId")
        return [{"CallId": call_id, **step} for step in (cdr.get("journey") or [])]

    # -- events ------------------------------------------------------------------------

    def _on_event(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        if name == ev.EVENT_CALL_HANGUP and subject is not None and hasattr(subject, "journey"):
            now = self.clock.seconds()
            self._recent[subject.uniqueid] = (list(subject.journey), now)
            while len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
        if not self.controllers:
            return
        if name.startswith("agent."):
            user = getattr(subject, "user", None)
            uid = getattr(user, "id", None)
            if uid is None:
                return
            data = _agent_data(name, subject, args)
            for c in list(self.controllers):
                c.agent_event(name, uid, data)
        elif name.startswith("call.") and name in SESSION_EVENTS:
            devices = {leg.device for leg in getattr(subject, "legs", {}).values()}
            base: dict[str, Any] | None = None
            for c in list(self.controllers):
                if c.follows(devices):
                    if base is None:
                        base = subject.to_dict(self.clock.seconds())
                        base.update({k: v for k, v in args.items()
                                     if isinstance(v, (str, int, float, bool)) or v is None})
                    c.session_event(name, base)
        elif name in (ev.EVENT_CONFIG_CHANGE, ev.EVENT_USER_CHANGE):
            if name == ev.EVENT_USER_CHANGE:
                return  # a config.change for the same user follows
            for c in list(self.controllers):
                c.directory_changed()


def _agent_data(name: str, agent: Any, args: dict[str, Any]) -> dict[str, Any]:
    def word(v: Any) -> Any:
        return getattr(v, "name", v)

    if name == ev.EVENT_AGENT_STATUS:
        return {"status": word(args.get("status", agent.status)), "reason": args.get("reason", agent.reason) or "",
                "previous": word(args.get("previous")), "previous_reason": args.get("previous_reason") or ""}
    if name == ev.EVENT_AGENT_DEVICE:
        line = args.get("line")
        return {"device": line.to_dict() if line is not None else None}
    out = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool)) or v is None}
    out["status"] = word(getattr(agent, "status", None)) if name != ev.EVENT_AGENT_LOGOUT else "OFFLINE"
    return out


@implementer(IPushProducer)
class Controller:
    """One Interaction Processor connection, without the socket; its socket's push producer."""

    log = Logger()

    def __init__(self, iserver: IServer, transport: Transport, address: str | None = None, host: str = "") -> None:
        self.iserver = iserver
        self.transport = transport
        self.address = address
        self.host = host
        self.open = False
        self.session: Session | None = None
        self.resource_id: str | None = None
        self.watch: TeamWatch | None = None
        self._pending = 0
        self._paused = False
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self.dropped = False

    # -- push producer: the socket pauses us while the client does not read -------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._queue and not self._paused and self.open:
            data = self._queue.popleft()
            self._queued -= len(data)
            self.transport.send(data)

    def stopProducing(self) -> None:
        self._paused = True

    # -- from the protocol --------------------------------------------------------------

    def opened(self) -> None:
        self.open = True
        self.iserver.controllers.add(self)
        d = Deferred.fromCoroutine(self.iserver.service_info(self.host))
        d.addCallback(lambda info: self.send({"name": SERVICE_INFO_EVENT, "data": info}))
        d.addErrback(lambda f: self.log.failure("service information", f))

    def closed(self) -> None:
        if not self.open:
            return
        self.open = False
        self.iserver.controllers.discard(self)
        self.watch = None
        self._queue.clear()
        self._queued = 0
        self._end_session("connection closed")

    def shutdown(self) -> None:
        self.transport.close(1001, "UCS is shutting down")
        self.closed()

    def received(self, payload: bytes, is_binary: bool) -> None:
        if len(payload) > self.iserver.max_request_size:
            self.fail(None, None, Failed("request_too_large", f"a request may have at most "
                                         f"{self.iserver.max_request_size} bytes; this one has {len(payload)}"))
            return
        if is_binary:
            self.fail(None, None, Failed("malformed_request", "send requests as text frames of JSON, not binary"))
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(None, None, Failed("malformed_request", "the request is not UTF-8 text"))
            return
        try:
            request = wirejson.loads(text)
        except wirejson.NotCarried as e:
            self.fail(None, None, Failed("malformed_json", f"the request is not accepted: {e}"))
            return
        except ValueError as e:
            self.fail(None, text, Failed("malformed_json", f"the request is not JSON: {e}"))
            return
        if not isinstance(request, dict):
            self.fail(None, request, Failed("malformed_request", "a request is a JSON object with "
                                            "\"command\" and \"data\""))
            return
        command = request.get("command")
        if not isinstance(command, str) or not command:
            self.fail(command, request, Failed("missing_field", "the request has no \"command\" (a string)",
                                               "command"))
            return
        if self._pending >= self.iserver.max_pending:
            self.fail(command, request, Failed("too_many_requests", f"{self._pending} requests are in progress "
                                               "on this connection; wait for their replies"))
            return
        self._pending += 1
        d = Deferred.fromCoroutine(self._handle(command, request))
        d.addBoth(self._answered, command, request)

    def _answered(self, outcome: Any, command: str, request: dict[str, Any]) -> None:
        self._pending -= 1
        if isinstance(outcome, Failure):
            err = outcome.value
            if isinstance(err, UCSError):
                err = _from_ucs_error(err)
            if not isinstance(err, Failed):
                self.log.failure("Interaction Processor command {command} failed", outcome, command=command)
                err = Failed("internal_error", f"{command} failed inside UCS; the UCS log has the details")
            self.fail(command, request, err)
            return
        if outcome is not None:
            self.send(outcome)

    # -- out ------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if not self.open:
            return
        data = self._encode(message)
        if data is None:
            return
        if not self._paused and not self._queue:
            self.transport.send(data)
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self.iserver.max_client_buffer:
            self.log.warn("Interaction Processor client {address} reads too slowly: {n} bytes wait for it; "
                          "dropped", address=self.address, n=self._queued)
            self.dropped = True
            self._queue.clear()
            self._queued = 0
            self.transport.abort()

    def _encode(self, message: dict[str, Any]) -> bytes | None:
        """``message`` as the client gets it: JSON (no NaN, which no client could
        read), at most ``max_message_size`` bytes, which autobahn would refuse to send.

        Never a reply that vanishes: a reply that cannot go is a failure reply
        saying why; an event loses the call's data (``dataDropped`` says why), so
        the client still hears of the call.  Logged either way."""
        limit = self.iserver.max_message_size
        try:
            data = _dumps(message)
            if len(data) <= limit:
                return data
            problem = f"it would be {len(data)} bytes; a message may have at most {limit} bytes ([web] max_frame_size)"
            code = "reply_too_large"
        except (TypeError, ValueError) as e:
            problem, code = f"it is not JSON ({e})", "internal_error"
        command = message.get("command")
        if command is not None and message.get("result") != "failure":
            self.log.error("the reply to {command} cannot be sent: {problem}", command=command, problem=problem)
            reply = {"command": command, "result": "failure",
                     "failure": {"code": code, "message": f"the reply to {command} cannot be sent: {problem}",
                                 "context": ""}}
            return _dumps(reply)
        data_ = message.get("data")
        if "name" in message and isinstance(data_, dict) and data_.get("data"):
            smaller = dict(message, data=dict(data_, data={}, dataDropped=problem))
            try:
                data = _dumps(smaller)
            except (TypeError, ValueError):
                pass
            else:
                if len(data) <= limit:
                    self.log.error("{name} sent without the call's data: {problem}", name=message["name"],
                                   problem=problem)
                    return data
        self.log.error("message not sent to Interaction Processor client {address}: {problem}",
                       address=self.address, problem=problem)
        return None

    def fail(self, command: Any, original: Any, err: Failed) -> None:
        self.send({"command": command, "result": "failure",
                   "failure": {"code": err.code, "message": err.message, "context": err.context},
                   "original": _redacted(original)})

    def session_event(self, name: str, data: Any) -> None:
        self.send({"name": name, "resource": self.resource_id, "data": data})

    # -- events from the service ------------------------------------------------------------

    def follows(self, devices: set[str]) -> bool:
        s = self.session
        return s is not None and s.line is not None and s.line.device in devices

    def agent_event(self, name: str, user_id: int, data: dict[str, Any]) -> None:
        if self.session is not None and self.session.user_id == user_id and name in SESSION_EVENTS:
            self.session_event(name, data)
        if self.watch is not None and name in (ev.EVENT_AGENT_STATUS, ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT):
            for msg in self.watch.status_changed(user_id):
                self.send(msg)

    def directory_changed(self) -> None:
        if self.watch is not None:
            for msg in self.watch.refresh():
                self.send(msg)

    # -- the session ----------------------------------------------------------------------

    def _end_session(self, reason: str) -> None:
        session, self.session, self.resource_id = self.session, None, None
        self.watch = None
        if session is not None:
            session.on_close = None
            session.push = None
            self.iserver.sessions.close(session, reason)

    def _session_closed(self, session: Session, reason: str) -> None:
        """UCS ended the session (another prepareSession overrode it, ...)."""
        if session is not self.session:
            return
        rid = self.resource_id
        self.session, self.resource_id, self.watch = None, None, None
        self.send({"name": "session.closed", "resource": rid, "data": {"reason": reason}})

    def _attach(self, session: Session) -> str:
        rid = secrets.token_hex(12)
        self.session, self.resource_id = session, rid
        session.data["iserver_resource"] = rid
        session.on_close = lambda reason: self._session_closed(session, reason)
        session.push = lambda name, data: self.session_event(name, data) if self.session is session else None
        return rid

    def _needs_session(self, command: str) -> Session:
        if self.session is None:
            raise Failed("no_session", f"{command} needs a session: send prepareSession first")
        return self.session

    # -- commands ------------------------------------------------------------------------

    async def _handle(self, command: str, request: dict[str, Any]) -> dict[str, Any] | None:
        data = request.get("data")
        handler = _COMMANDS.get(command)
        if handler is not None:
            return await handler(self, command, request, data)
        if command in BLOCKED or command not in self.iserver.registry:
            raise Failed("unknown_command", f"{command!r} is not a command of this Interaction Processor; "
                                            "getCapabilities lists them", "command")
        session = self._needs_session(command)
        if data is not None and not isinstance(data, (dict, list)):
            raise Failed("invalid_data", f"{command}: \"data\" is an object of named arguments or a list",
                         "data")
        result = await self.iserver.registry.call(session, command, data)
        return {"command": command, "result": "success", "data": result}

    async def _service_info(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        return {"command": command, "result": "success", "data": await self.iserver.service_info(self.host)}

    async def _capabilities(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        return {"command": command, "result": "success", "data": self.iserver.capabilities()}

    async def _end(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        self._needs_session(command)
        self._end_session("ended by the client")
        return {"command": command, "result": "success", "data": {}}

    async def _prepare(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise Failed("missing_field", "prepareSession needs \"data\": {\"model\", \"override\", "
                                          "\"agent\": {\"id\", \"password\"}}", "data")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise Failed("missing_field", "prepareSession needs data.model, the call model's name "
                                          f"(one of {', '.join(MODELS)})", "data.model")
        if model.lower() not in MODELS:
            raise Failed("unknown_model", f"the call model {model!r} is not offered; use one of "
                                          f"{', '.join(MODELS)}", "data.model")
        override = data.get("override", False)
        if not isinstance(override, bool):
            raise Failed("invalid_data", "data.override is true or false", "data.override")
        agent = data.get("agent")
        if not isinstance(agent, dict):
            raise Failed("missing_field", "prepareSession needs data.agent: {\"id\", \"password\"}", "data.agent")
        agent_id, password = agent.get("id"), agent.get("password")
        if isinstance(agent_id, int) and not isinstance(agent_id, bool):
            agent_id = str(agent_id)
        if not isinstance(agent_id, str) or not agent_id:
            raise Failed("missing_field", "prepareSession needs data.agent.id, the agent's user name",
                         "data.agent.id")
        if not isinstance(password, str) or not password:
            raise Failed("missing_field", "prepareSession needs data.agent.password", "data.agent.password")
        device = data.get("device", agent.get("extension"))
        if device is not None and (not isinstance(device, str) or not device):
            raise Failed("invalid_data", "data.device is a phone identifier (device, MAC, name or IP address)",
                         "data.device")
        if self.session is not None:
            raise Failed("session_exists", f"this connection has a session already (resource "
                                           f"{self.resource_id}); send endSession first")

        ix = self.iserver
        session = ix.sessions.create("iserver", self.address)
        try:
            try:
                await ix.registry.call(session, "login", {"username": agent_id, "password": password})
            except UCSError as e:
                f = _from_ucs_error(e)
                f.context = "data.agent"
                raise f from None
            if not self.open:
                raise Failed("closed", "the connection closed")
            user_id = session.user_id
            assert user_id is not None
            others = [s for s in ix.sessions.of_user(user_id) if s is not session and s.kind == "iserver"]
            if others and not override:
                ix.sessions.close(session, "not confirmed")
                return {"command": command, "result": "confirm",
                        "message": f"Agent {agent_id} has a session elsewhere already "
                                   f"({len(others)}). Replace it?",
                        "original": _redacted(request)}
            for other in others:
                ix.sessions.close(other, "replaced by a session prepared elsewhere")
            if device is not None and session.state in (SessionState.IDENTIFY, SessionState.DEVICE):
                try:
                    await ix.registry.call(session, "identifier", [device])
                    await ix.registry.call(session, "provision", [])
                except UCSError as e:
                    f = _from_ucs_error(e)
                    f.context = "data.device"
                    raise f from None
            if not self.open or session.closed or self.session is not None:
                raise Failed("closed", "the connection closed or got a session meanwhile")
        except BaseException:
            if not session.closed:
                ix.sessions.close(session, "prepareSession failed")
            raise
        rid = self._attach(session)
        return {"command": command, "result": "success",
                "resource": {"id": rid, "data": _redacted(data),
                             "state": session.state.value,
                             "device": session.line.device if session.line is not None else None}}

    async def _journey(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        session = self._needs_session(command)
        call_id = data.get("CallId") if isinstance(data, dict) else None
        if not isinstance(call_id, str) or not call_id:
            raise Failed("missing_field", "report.calljourney needs data.CallId, the call's id (its Linkedid)",
                         "data.CallId")
        # Scoped like call.setAccountCode: the calls of the agent's phone, a supervisor's queues and agents.
        await self.iserver.registry.authorize(session, Subject.CALL, call_id, command)
        return {"command": command, "result": "success",
                "data": {"CallJourney": await self.iserver.journey(call_id)}}

    async def _subject(self, command: str, data: Any) -> int:
        session = self._needs_session(command)
        agent_id = data.get("agentId") if isinstance(data, dict) else None
        if isinstance(agent_id, int) and not isinstance(agent_id, bool):
            agent_id = str(agent_id)
        if not isinstance(agent_id, str) or not agent_id:
            raise Failed("missing_field", f"{command} needs data.agentId, the agent's user name", "data.agentId")
        user = self.iserver.directory.user_by_username(agent_id)
        assert session.user is not None
        if user is None:
            raise Failed("not_found", f"no agent has the id {agent_id!r}", "data.agentId")
        if user.id != session.user.id and session.role < Role.SUPERVISOR:
            raise Failed("permission_denied", f"{command} for another agent needs a supervisor", "data.agentId")
        try:
            await self.iserver.registry.authorize(session, Subject.AGENT, user.id, command)
        except UCSError as e:
            failed = _from_ucs_error(e)
            failed.context = "data.agentId"
            raise failed from None
        if self.session is not session:
            raise Failed("closed", "the session ended meanwhile")
        return int(user.id)

    async def _team_begin(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any] | None:
        uid = await self._subject(command, data)
        self.watch = TeamWatch(uid, self.iserver.directory, self.iserver.agents)
        self.send({"command": command, "result": "success", "data": {}})
        for msg in self.watch.begin():
            self.send(msg)
        return None

    async def _team_end(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        await self._subject(command, data)
        if self.watch is None:
            raise Failed("not_subscribed", "report.teamstatus.begin was not sent (or has ended)")
        self.watch = None
        return {"command": command, "result": "success", "data": {}}


_Handler = Callable[[Controller, str, dict[str, Any], Any], Awaitable[dict[str, Any] | None]]
_COMMANDS: dict[str, _Handler] = {
    SERVICE_INFO: Controller._service_info,
    "getServiceInfo": Controller._service_info,
    "getCapabilities": Controller._capabilities,
    "prepareSession": Controller._prepare,
    "endSession": Controller._end,
    "report.calljourney": Controller._journey,
    "report.teamstatus.begin": Controller._team_begin,
    "report.teamstatus.end": Controller._team_end,
}
