"""API calls made on a standby, carried out by the AMI owner (issue 20).

Only the owner holds the AMI link and the live agents, so whatever acts on
Asterisk or on the agents must run there, whichever node the client's session
is on.  One mechanism for all of it, not one per method:

- the standby's registry checks the session's rights as always (role, session
  state, an agent named by the call in the caller's scope), runs its plugins'
  middleware, and where the handler would run it sends the *domain call* —
  who (user, role's source, session state, paired line), what (the method) and
  the checked arguments — to the owner (:class:`Forwarder`, installed as
  ``Registry.forward``);
- the owner (:class:`OwnerWork`, answering the ``api.call`` command) rebuilds a
  session for that user from its own directory, checks it again (role, state
  and scope, which for a *call* needs the owner's live calls), runs the
  method's handler, and sends back the result or the error as the owner would
  have answered it (same code, kind and message; the standby raises the same
  :class:`~ucs.error.UCSError` class).

The agents' own requests that are not registry methods (a bar's ``provision``
logs the agent in, ``logout``, a bar that did not come back) go the same way
through ``Agents.remote`` (``agents.login``, ``agents.logout``,
``agents.sessionExpired``).

No owner (an election in progress, a take-over not done yet, NATS cut): the
request is sent again, every 100-250 ms on the node's clock, for up to ``[cluster]
takeover_wait`` -- so an agent who clicks READY during a failover gets the answer
once the new owner serves commands, not an error to retry by hand -- and then
:class:`OwnerUnavailable`, code 503: the client may try again in a few seconds.
That is safe for every command, a dial included, because nobody received it:
NATS said "no responders" (or this node's link is down), or the owner refused it
before doing anything (:class:`OwnerWork` while its agents are not restored).
An owner that was heard but did not answer within ``request_timeout`` is asked
again only for what does no harm twice (:data:`SAFE_AGAIN`: a status change, a
read); anything else (a dial would ring twice) gets the 503 saying it may have been
done.

Which methods are the owner's work is :data:`OWNER_WORK` (the PBX, the agents,
calls, recording, supervision).  Everything else runs where the session is:
the login and the session's own state, directory reads and writes (the store
is shared; :mod:`ucs.cluster.dirsync` tells the other nodes), lookups, plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from ucs.cluster.codec import jsonable
from ucs.cluster.commands import CommandClient, CommandError, NoOwner, OwnerTimeout
from ucs.constants import AgentStatus
from ucs.error import InvalidState, ProcessingError, UCSError

#: Registry methods carried out by the AMI owner when called on a standby.
OWNER_WORK: frozenset[str] = frozenset({
    # the agents (ucs.agents.api, ucs.supervisor.api)
    "agent.changeStatus", "agent.suspend", "agent.resume", "agent.state", "agent.extendWrapUp",
    "agent.endWrapUp", "agent.queueFigures", "agents.list", "agents.changeStatus", "agents.logout",
    # calls on the paired phone, their codes and metadata (ucs.calls.control_api)
    "call.dial", "call.answer", "call.hangup", "call.tribute", "call.unhold", "call.mute", "call.transfer",
    "call.finishTransfer", "call.blindTransfer", "call.swap", "call.conference", "call.dtmf",
    "call.setAccountCode", "cdr.metadata",
    # recording (ucs.calls.recording_api), supervision's ChanSpy, the AMI link's state
    "call.record", "call.stopRecord", "supervisor.monitor", "ops.ami",
})

#: What may be sent again after an owner was *heard* and did not answer in time
#: (:class:`OwnerTimeout`): done twice, it does what it did once -- a status set (asked
#: ACW again, a wrap-up starts over), a read, a queue paused or resumed, a code or
#: metadata set.  That gap is real: after the owner's network went (no TCP close),
#: NATS keeps its subscription until its pings fail, so the next owner's answer
#: comes only on a second try.  Never a dial, an answer, a hang-up, a transfer or a
#: wrap-up's extension: twice, they ring twice or cut a second call.
SAFE_AGAIN: frozenset[str] = frozenset({
    "agent.changeStatus", "agents.changeStatus", "agent.suspend", "agent.resume", "agent.state",
    "agent.queueFigures", "agents.list", "ops.ami", "call.setAccountCode", "cdr.metadata",
})

#: The commands :class:`OwnerWork` answers.
COMMANDS = ("api.call", "agents.login", "agents.logout", "agents.sessionExpired")

#: While no owner answers, a command is sent again after the first delay, each next one
#: half as long again, never more than the last: NATS's "no responders" comes back at
#: once, so this is what a waiting request costs NATS (4-10 requests a second).
RETRY_FIRST, RETRY_MAX = 0.1, 0.25


def safe_again(command: str, args: tuple[Any, ...]) -> bool:
    """Whether ``command`` may be sent again after the owner was heard (:data:`SAFE_AGAIN`)."""
    if command in ("agents.logout", "agents.sessionExpired"):  # the agent out, or stopped: once is all
        return True
    return command == "api.call" and bool(args) and args[0] in SAFE_AGAIN


class OwnerUnavailable(UCSError):
    """No node owns the AMI link now, or it did not answer: retry in a few seconds."""

    code = 503
    kind = "owner_unavailable"


def _error_classes() -> dict[str, type[UCSError]]:
    found: dict[str, type[UCSError]] = {}
    todo: list[type[UCSError]] = [UCSError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.kind, cls)
        todo.extend(cls.__subclasses__())
    return found


def rebuild_error(error: dict[str, Any]) -> UCSError:
    """The owner's :class:`UCSError` (its ``to_dict()``) as the same class, code and message here."""
    cls = _error_classes().get(str(error.get("error", "")), UCSError)
    fields = error.get("fields")
    e = cls(dict(fields) if isinstance(fields, dict) else str(error.get("message", "")))
    code = error.get("code")
    if isinstance(code, int) and code != e.code:
        e.code = code
    return e


def context(session: Any) -> dict[str, Any]:
    """Who calls: what the owner needs to rebuild the session."""
    user, line, state = getattr(session, "user", None), getattr(session, "line", None), getattr(session, "state", None)
    return {"sid": str(getattr(session, "sid", "")), "kind": str(getattr(session, "kind", "ws")),
            "address": getattr(session, "address", None),
            "user_id": user.id if user is not None else None,
            "line_id": line.id if line is not None else None,
            "state": state.value if state is not None else None}


@attrs.frozen
class AgentView:
    """The owner's agent as this standby's replica has it: what the login, the logout and
    the session need to know (its phone, its status), read-only.  ``Agents.get`` on a
    standby returns it."""

    user: Any
    line: Any
    status: AgentStatus
    reason: str
    since: float
    logged_in: float
    doc: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.user.id)

    @property
    def suspended(self) -> frozenset[int]:
        """The queues (ids) the agent suspended."""
        return frozenset(q for q in self.doc.get("suspended") or () if isinstance(q, int))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.doc.items() if k not in ("acw_until", "stored")}  # mirror.AGENT_EXTRA


class Forwarder:
    """A standby's side: the registry's ``forward`` and the agents' ``remote``.

    ``client()`` is the node's :class:`CommandClient` (``None`` before NATS is set
    up); ``is_owner()`` says whether this node is the owner now (then nothing is
    forwarded: its own registry and agents do the work); ``agents()`` the owner's
    agents as this node's replica has them (seed 002 User objects by user id),
    ``directory()`` this node's directory.

    While no node serves the owner's commands, a request is sent again on ``clock``
    for up to ``takeover_wait`` seconds (0, or no clock: the 503 at once); see the
    module's docstring for which failures are retried and why."""

    def __init__(self, client: Callable[[], CommandClient | None], is_owner: Callable[[], bool],
                 agents: Callable[[], dict[str, dict[str, Any]]] = dict,
                 directory: Callable[[], Any] = lambda: None, *,
                 clock: IReactorTime | None = None, takeover_wait: float = 0.0) -> None:
        self._client = client
        self._is_owner = is_owner
        self._agents = agents
        self._directory = directory
        self._clock = clock
        self.takeover_wait = takeover_wait if clock is not None else 0.0
        #: How many requests are waiting for an owner now (sent, nobody answered, sent again later).
        self.waiting = 0

    def wants(self, name: str) -> bool:
        return name in OWNER_WORK and not self._is_owner()

    def call(self, session: Any, name: str, args: list[Any]) -> Deferred[Any]:
        """The owner's result of ``name(*args)`` for ``session``, or its error."""
        return Deferred.fromCoroutine(self._ask("api.call", name, jsonable(args), context(session)))

    # --- the agents' requests (Agents.remote) ------------------------------------------------

    def get(self, user_id: int) -> AgentView | None:
        """The owner's agent of a user, as the replica has it; ``None`` if not logged in."""
        doc, directory = self._agents().get(str(user_id)), self._directory()
        if not isinstance(doc, dict) or directory is None:
            return None
        user = directory.users.get(user_id)
        device = doc.get("device")
        line = directory.line_by_device(device) if isinstance(device, str) else None
        status = AgentStatus.__members__.get(str(doc.get("status")))
        if user is None or line is None or status is None:
            return None
        return AgentView(user, line, status, str(doc.get("reason") or ""), float(doc.get("since") or 0.0),
                         float(doc.get("logged_in") or 0.0), doc)

    async def login(self, user: Any, line: Any, *, session: Any = None) -> Any:
        return await self._ask("agents.login", user.id, line.id)

    async def logout(self, user_id: int, reason: str = "") -> None:
        await self._ask("agents.logout", user_id, reason)

    async def session_expired(self, user_id: int) -> None:
        await self._ask("agents.sessionExpired", user_id)

    async def _ask(self, command: str, *args: Any) -> Any:
        """The owner's result, sent again while nobody received it (up to ``takeover_wait``)."""
        what = args[0] if command == "api.call" else command
        client = self._client()
        if client is None:
            raise OwnerUnavailable(f"{what}: this node is not connected to the cluster yet; try again in a few seconds")
        clock = self._clock
        deadline = clock.seconds() + self.takeover_wait if clock is not None else 0.0
        delay, waiting = RETRY_FIRST, False
        try:
            while True:
                served, result = await self._once(client, what, command, args)
                if served:
                    return result
                now = clock.seconds() if clock is not None else 0.0
                if clock is None or now >= deadline:
                    if self.takeover_wait > 0:
                        result += f" (waited {self.takeover_wait:g} s for an owner: [cluster] takeover_wait)"
                    raise OwnerUnavailable(result)
                if not waiting:
                    waiting = True
                    self.waiting += 1
                await deferLater(clock, min(delay, deadline - now), lambda: None)
                delay = min(delay * 1.5, RETRY_MAX)
        finally:
            if waiting:
                self.waiting -= 1

    async def _once(self, client: CommandClient, what: str, command: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        """``(True, the owner's result)``, or ``(False, why)`` when it may be sent again: nobody
        received it (whatever it is), or the owner heard it, did not answer in time, and it does
        no harm twice (:func:`safe_again`).  Else the owner's error, or the 503 saying it may
        have been carried out."""
        try:
            reply = await client.request(command, *args)
        except NoOwner as e:
            return False, str(e)
        except OwnerTimeout as e:
            if safe_again(command, args):
                return False, str(e)
            raise OwnerUnavailable(f"{e}; it may still have been carried out: check before trying again") from None
        except CommandError as e:
            raise ProcessingError(f"{what}: the AMI owner could not carry it out: {e}") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise ProcessingError(f"{what}: the AMI owner's answer is not understood: {reply!r}")
        if reply["ok"]:
            return True, reply.get("result")
        error: dict[str, Any] = reply["error"] if isinstance(reply.get("error"), dict) else {}
        if error.get("error") == OwnerUnavailable.kind:
            return False, str(error.get("message", ""))  # refused before any work (OwnerWork._run)
        raise rebuild_error(error)


class OwnerWork:
    """The owner's side: carries out what standbys forward, as their users."""

    def __init__(self, registry: Callable[[], Any], directory: Callable[[], Any], agents: Callable[[], Any]) -> None:
        self._registry = registry
        self._directory = directory
        self._agents = agents

    def handle(self, command: str, args: list[Any]) -> Deferred[dict[str, Any]]:
        """``{"ok": true, "result"}`` or ``{"ok": false, "error": UCSError.to_dict()}``."""
        return Deferred.fromCoroutine(self._answer(command, args))

    async def _answer(self, command: str, args: list[Any]) -> dict[str, Any]:
        try:
            result = await self._run(command, args)
        except UCSError as e:
            return {"ok": False, "error": e.to_dict()}
        return {"ok": True, "result": jsonable(result)}

    async def _run(self, command: str, args: list[Any]) -> Any:
        if command not in COMMANDS:
            raise ProcessingError(f"{command!r} is not a command the owner answers")
        if command == "api.call":
            if len(args) != 3 or not isinstance(args[0], str) or not isinstance(args[1], list) or not isinstance(
                    args[2], dict):
                raise ProcessingError("api.call takes [method, arguments, caller]")
            if args[0] not in OWNER_WORK:
                raise ProcessingError(f"{args[0]} is not carried out by the AMI owner for another node")
        if not self._agents().running:
            raise OwnerUnavailable(f"{command}: the AMI owner is taking over (its agents are being restored); "
                                   "try again in a few seconds")
        if command == "api.call":
            return await self._api_call(args[0], args[1], args[2])
        if command == "agents.login":
            user, line = self._user(args[0]), self._line(args[1])
            if line is None:
                raise InvalidState(f"line {args[1]} does not exist on the AMI owner")
            return (await self._agents().login(user, line)).to_dict()
        if command == "agents.logout":
            await self._agents().logout(self._user(args[0]).id, str(args[1]) if len(args) > 1 else "")
            return None
        if command == "agents.sessionExpired":
            await self._agents().session_expired(self._user(args[0]).id)
            return None
        raise ProcessingError(f"{command!r} is not a command the owner answers")

    def _user(self, user_id: Any) -> Any:
        user = self._directory().users.get(user_id) if isinstance(user_id, int) else None
        if user is None:
            raise InvalidState(f"user {user_id!r} does not exist on the AMI owner")
        return user

    def _line(self, line_id: Any) -> Any:
        return self._directory().lines.get(line_id) if isinstance(line_id, int) else None

    async def _api_call(self, name: str, args: list[Any], caller: dict[str, Any]) -> Any:
        from ucs.api.session import Session
        from ucs.constants import SessionState

        registry = self._registry()
        method = registry.get(name)
        session = Session(sid=str(caller.get("sid", "")), kind=str(caller.get("kind", "ws")),
                          address=caller.get("address"))
        if caller.get("user_id") is not None:
            session.user = self._user(caller["user_id"])
        session.line = self._line(caller.get("line_id"))
        try:
            session.state = SessionState(caller.get("state"))
        except ValueError:
            raise ProcessingError(f"{caller.get('state')!r} is not a session state") from None
        registry.check(session, method)  # the owner's directory says the user's role too
        positional = method.bind(args)
        if method.acts_on is not None:
            index = [p.name for p in method.params].index(method.acts_on.param)
            await registry.authorize(session, method.acts_on.subject, positional[index], name)
            registry.check(session, method)
        result = method.handler(session, *positional)
        if isinstance(result, Deferred) or hasattr(result, "__await__"):
            result = await ensureDeferred(result) if not isinstance(result, Deferred) else await result
        return result
