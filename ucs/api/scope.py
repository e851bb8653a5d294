"""Who may act on what: the scope of a session beyond its role.

The role (:class:`ucs.constants.Role`) says which methods a session may call;
the scope says on which agents and calls.  The registry applies it to every
method that names an agent or a call (``Method.acts_on``) and filters the
lists of agents a method returns (``Method.shows``), on every way in (the
agent bar, the Interaction Processor, plugins' ``ucs.api``), before the
handler and any middleware run.  docs/security.md ("Who may act on what") has
the table of methods.

The rule:

* a **superuser** is not scoped;
* a **supervisor** supervises the users who share a queue or a team with them:
  the queues where their membership has ``supervisor`` set (every queue they
  are a member of when the user's own ``supervisor`` flag is set), and the
  teams of those memberships.  A supervisor in no queue supervises nobody but
  themself (make a centre-wide supervisor a member of every queue, or a
  superuser);
* an **agent** acts on themself only.

A call belongs to the phones that had a leg in it (live, or in its stored
CDR: its legs and the lines of its journey) and to the queues it went through.
An agent may act on the calls of the phone paired with the session; a
supervisor also on those of the queues they supervise and of the phones of
the agents they supervise (the one an agent is paired with now, and the lines
the directory lists for the agent).

A refusal is :class:`PermissionDenied` (code 403, ``permission_denied``) saying
what was refused and why; a call that does not exist is :class:`NotFound`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred

from ucs.constants import Role
from ucs.directory.model import User
from ucs.error import NotFound, PermissionDenied


class Subject(str, enum.Enum):
    """What a scoped argument names."""

    AGENT = "agent"   # a user, by id
    CALL = "call"     # a call, by a uniqueid (its Linkedid or any leg's)


@attrs.define(frozen=True)
class ActsOn:
    """The argument of a method that names what it acts on."""

    subject: Subject
    param: str


# -- what the scope reads ------------------------------------------------------------------


class Users(Protocol):
    """The directory's users, lines and queues (:class:`ucs.directory.directory.Directory`)."""

    users: dict[int, User]
    lines: dict[int, Any]

    def queue_by_asterisk_name(self, name: str) -> Any: ...


class PairedAgents(Protocol):
    """Who is paired with which phone now (:class:`ucs.agents.service.Agents`)."""

    def get(self, user_id: int) -> Any: ...


class Calls(Protocol):
    """Calls live, just ended or stored (:class:`ucs.calls.control.CallControl`)."""

    def find_call(self, uniqueid: str) -> Any: ...

    def stored_cdr(self, uniqueid: str) -> Awaitable[dict[str, Any] | None]: ...


@attrs.define(frozen=True)
class CallFacts:
    """What a call's scope is decided on: its id, the phones (devices) that had a
    leg in it and the Asterisk names of the queues it went through."""

    uniqueid: str
    devices: frozenset[str]
    queues: frozenset[str]


def facts_of_call(call: Any) -> CallFacts:
    devices = {leg.device for leg in call.legs.values() if leg.device}
    devices |= {s.device for s in call.journey if s.device_type == "line"}
    queues = {s.device[len("Queue:"):] for s in call.journey if s.device.startswith("Queue:")}
    if call.queue:
        queues.add(call.queue)
    return CallFacts(call.uniqueid, frozenset(devices), frozenset(queues))


def facts_of_cdr(cdr: Mapping[str, Any]) -> CallFacts:
    devices: set[str] = set()
    queues: set[str] = set()
    raw = cdr.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for leg in data.get("legs") or ():
        if isinstance(leg, dict) and isinstance(leg.get("device"), str) and leg["device"]:
            devices.add(leg["device"])
    for step in cdr.get("journey") or data.get("journey") or ():
        if not isinstance(step, dict):
            continue
        device = step.get("Device")
        if not isinstance(device, str):
            continue
        if step.get("DeviceType") == "line":
            devices.add(device)
        elif device.startswith("Queue:"):
            queues.add(device[len("Queue:"):])
    if isinstance(cdr.get("queue"), str) and cdr["queue"]:
        queues.add(cdr["queue"])
    return CallFacts(str(cdr.get("uniqueid") or ""), frozenset(devices), frozenset(queues))


# -- the rule ----------------------------------------------------------------------------------


def supervised_queues(user: User) -> set[int]:
    """The ids of the queues ``user`` supervises."""
    return {qid for qid, m in user.queues.items() if m.supervisor or user.supervisor}


def supervised_teams(user: User) -> set[int]:
    """The ids of the teams ``user`` supervises: those of their supervised memberships."""
    return {m.team_id for m in user.queues.values() if m.team_id is not None and (m.supervisor or user.supervisor)}


def supervises(boss: User, user: User) -> bool:
    """Whether ``boss`` may act as supervisor on ``user`` (themself included)."""
    if boss.superuser or boss.id == user.id:
        return True
    queues = supervised_queues(boss)
    if queues and not queues.isdisjoint(user.queues):
        return True
    teams = supervised_teams(boss)
    return bool(teams) and any(m.team_id in teams for m in user.queues.values())


def _role(session: Any) -> Role:
    role = getattr(session, "role", Role.ANONYMOUS)
    return role if isinstance(role, Role) else Role.ANONYMOUS


def _device(session: Any) -> str | None:
    line = getattr(session, "line", None)
    device = getattr(line, "device", None)
    return device if isinstance(device, str) and device else None


def _who(user: User) -> str:
    return f"user {user.id} ({user.username})"


class Scope:
    """The scope rule, with what it reads.  The modules that register scoped
    methods give it their service (``directory``, ``agents``, ``calls``); a
    scope that lacks what a check needs refuses every caller but a superuser."""

    def __init__(self, directory: Users | None = None, agents: PairedAgents | None = None,
                 calls: Calls | None = None) -> None:
        self.directory = directory
        self.agents = agents
        self.calls = calls

    # -- agents ------------------------------------------------------------------------------

    def user(self, user_id: int) -> User | None:
        if self.directory is not None:
            found = self.directory.users.get(user_id)
            if found is not None:
                return found
        agent = self.agents.get(user_id) if self.agents is not None else None
        return getattr(agent, "user", None)

    def check_agent(self, session: Any, user_id: Any, what: str) -> None:
        """Refuse ``what`` on user ``user_id`` unless the session's user may act on them."""
        me: User | None = getattr(session, "user", None)
        if _role(session) >= Role.SUPERUSER or me is None:
            return  # no user: the role check has refused it already
        if user_id == me.id:
            return
        target = self.user(user_id) if isinstance(user_id, int) else None
        if target is None:
            if self.directory is None and self.agents is None:
                raise PermissionDenied(f"{what}: UCS cannot tell whose agent user {user_id!r} is, "
                                       "so only a superuser may do this")
            raise NotFound(f"there is no user {user_id!r}")
        if _role(session) >= Role.SUPERVISOR and supervises(me, target):
            return
        if _role(session) < Role.SUPERVISOR:
            raise PermissionDenied(f"{what}: {_who(target)} is not you; an agent acts on themself only")
        raise PermissionDenied(f"{what}: {_who(target)} is in no queue or team you supervise")

    def visible(self, session: Any, items: Any) -> Any:
        """``items`` (users or agents as dicts with their ``id``) without those the
        session's user may not see: for a supervisor the users they supervise."""
        me: User | None = getattr(session, "user", None)
        if _role(session) >= Role.SUPERUSER or me is None or not isinstance(items, list):
            return items
        out = []
        for item in items:
            uid = item.get("id") if isinstance(item, dict) else None
            if uid == me.id:
                out.append(item)
                continue
            target = self.user(uid) if isinstance(uid, int) else None
            if target is not None and _role(session) >= Role.SUPERVISOR and supervises(me, target):
                out.append(item)
        return out

    # -- calls -------------------------------------------------------------------------------

    def check_call(self, session: Any, uniqueid: Any, what: str) -> Deferred[None] | None:
        """Refuse ``what`` on call ``uniqueid`` unless it is in the session's scope.
        ``None`` when that is known at once (a superuser, a call in memory), else a
        Deferred (the call's CDR is read from the store)."""
        if _role(session) >= Role.SUPERUSER or getattr(session, "user", None) is None:
            return None
        if self.calls is None:
            raise PermissionDenied(f"{what}: UCS cannot tell whose call {uniqueid!r} is, "
                                   "so only a superuser may do this")
        uid = uniqueid.strip() if isinstance(uniqueid, str) else ""
        if not uid:
            return None  # the handler says what is wrong with the argument
        call = self.calls.find_call(uid)
        if call is not None:
            self._decide(session, facts_of_call(call), uid, what)
            return None

        async def stored() -> None:
            assert self.calls is not None
            cdr = await self.calls.stored_cdr(uid)
            if cdr is None:
                raise NotFound(f"there is no call {uid!r}: it is neither in progress nor in the CDRs")
            # Decided on the session as it is now, after the wait (its phone may have changed).
            self._decide(session, facts_of_cdr(cdr), uid, what)

        return Deferred.fromCoroutine(stored())

    def _decide(self, session: Any, call: CallFacts, uid: str, what: str) -> None:
        device = _device(session)
        if device is not None and device in call.devices:
            return
        me: User | None = getattr(session, "user", None)
        if me is not None and _role(session) >= Role.SUPERVISOR:
            if self._supervised_call(me, call):
                return
            raise PermissionDenied(
                f"{what}: call {uid} is not one your phone ({device or 'none paired'}) took part in, "
                "nor one of a queue or an agent you supervise")
        if device is None:
            raise PermissionDenied(f"{what}: call {uid}: no phone is paired with this session, and an agent "
                                   "acts only on the calls of their phone")
        raise PermissionDenied(f"{what}: call {uid} is not one your phone ({device}) took part in")

    def _supervised_call(self, me: User, call: CallFacts) -> bool:
        directory = self.directory
        if directory is None:
            return False
        mine = supervised_queues(me)
        for name in call.queues:
            queue = directory.queue_by_asterisk_name(name)
            if queue is not None and queue.id in mine:
                return True
        return any(self._supervises_device(me, device) for device in call.devices)

    def _supervises_device(self, me: User, device: str) -> bool:
        """Whether an agent ``me`` supervises is paired with ``device`` now, or has it
        among the lines the directory lists for them."""
        assert self.directory is not None
        line_ids = {lid for lid, line in self.directory.lines.items() if getattr(line, "device", None) == device}
        for user in self._users():
            if user.id == me.id or not supervises(me, user):
                continue
            agent = self.agents.get(user.id) if self.agents is not None else None
            if getattr(getattr(agent, "line", None), "device", None) == device:
                return True
            if line_ids and not line_ids.isdisjoint(user.lines):
                return True
        return False

    def _users(self) -> Iterable[User]:
        return list(self.directory.users.values()) if self.directory is not None else ()
