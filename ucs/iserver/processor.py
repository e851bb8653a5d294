"""The Interaction Processor (seed 003): one controller per connection.

The autobahn protocol (:mod:`ucs.iserver.protocol`) only frames; every text
message goes to a :class:`Controller`, which parses it, answers it and sends
the events its session and its ``report.teamstatus`` subscription get.
:class:`~ucs.iserver.service.IServer` (in :mod:`ucs.iserver.service`,
re-exported here) is what the controllers share: the API registry, sessions,
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
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ucs import events as ev
from ucs import wirejson
from ucs.api.scope import Subject
from ucs.api.session import Session
from ucs.constants import Role, SessionState
from ucs.error import UCSError
from ucs.iserver.service import BLOCKED, MODELS, SERVICE_INFO, SESSION_EVENTS, Failed, IServer
from ucs.iserver.teams import TeamWatch

__all__ = ["Controller", "Failed", "IServer", "Transport"]

SERVICE_INFO_EVENT = "serviceInformation"
#: Agents one connection may follow with ``report.teamstatus.begin`` at a time.
MAX_WATCHES = 200


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
        #: ``report.teamstatus`` subscriptions: the followed agent's user id → its watch.
        self.watches: dict[int, TeamWatch] = {}
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
        self.watches.clear()
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
        if self.watches and name in (ev.EVENT_AGENT_STATUS, ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT):
            for watch in list(self.watches.values()):
                for msg in watch.status_changed(user_id):
                    self.send(msg)

    def directory_changed(self) -> None:
        for watch in list(self.watches.values()):
            for msg in watch.refresh():
                self.send(msg)

    # -- the session ----------------------------------------------------------------------

    def _end_session(self, reason: str) -> None:
        session, self.session, self.resource_id = self.session, None, None
        self.watches.clear()
        if session is not None:
            session.on_close = None
            session.push = None
            self.iserver.sessions.close(session, reason)

    def _session_closed(self, session: Session, reason: str) -> None:
        """UCS ended the session (another prepareSession overrode it, ...)."""
        if session is not self.session:
            return
        rid = self.resource_id
        self.session, self.resource_id = None, None
        self.watches.clear()
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
        if uid not in self.watches and len(self.watches) >= MAX_WATCHES:
            raise Failed("too_many_requests", f"this connection follows {len(self.watches)} agents already, "
                                              f"the most it may; send report.teamstatus.end for one first",
                         "data.agentId")
        # Several agents per connection (each event names its agentId); a second begin
        # for the same agent starts its report afresh.
        watch = self.watches[uid] = TeamWatch(uid, self.iserver.directory, self.iserver.agents)
        self.send({"command": command, "result": "success", "data": {}})
        for msg in watch.begin():
            self.send(msg)
        return None

    async def _team_end(self, command: str, request: dict[str, Any], data: Any) -> dict[str, Any]:
        uid = await self._subject(command, data)
        if self.watches.pop(uid, None) is None:
            agent_id = data["agentId"]
            raise Failed("not_subscribed", f"report.teamstatus.begin was not sent for agent {agent_id} "
                                           "(or has ended)", "data.agentId")
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
