"""The state object of seed 002 (``onReady`` / ``state()``): everything an agent
bar needs to draw itself after a (re)connect, in one message.  A bar that lost
its connection for a minute calls ``state`` again and shows the truth."""

from __future__ import annotations

from typing import Any, Protocol

from ucs.api.registry import Registry
from ucs.api.scope import supervised_teams
from ucs.api.session import Session
from ucs.bus import EventBus
from ucs.calls.tracker import CallTracker
from ucs.calls.view import phone_view, primary
from ucs.constants import Role, SessionState
from ucs.directory.directory import Directory
from ucs.events import EVENT_AGENT_LOGIN, EVENT_AGENT_LOGOUT, EVENT_AGENT_STATUS, EVENT_USER_CHANGE
from ucs.fragments import Fragment
from ucs.pbx.pbx import PBX


class AgentsLike(Protocol):
    def get(self, user_id: int) -> Any: ...
    def all(self) -> list[Any]: ...


#: What changes the list of agents a state carries.
_AGENTS_CHANGE = (EVENT_AGENT_STATUS, EVENT_AGENT_LOGIN, EVENT_AGENT_LOGOUT, EVENT_USER_CHANGE)


class StateBuilder:
    """Builds seed 002's state.  Its ``agents`` list (the logged-in agents the
    user works with: see :meth:`agents`) is built and encoded once per change of
    an agent (:class:`~ucs.fragments.Fragment`): after a network blip thousands of bars ask for their state within seconds,
    and building and encoding the list for each of them made that storm
    quadratic in the number of agents."""

    def __init__(self, directory: Directory, agents: AgentsLike, tracker: CallTracker, pbx: PBX, clock: Any,
                 bus: EventBus | None = None) -> None:
        self._directory = directory
        self._agents = agents
        self._tracker = tracker
        self._pbx = pbx
        self._clock = clock
        self._bus = bus
        #: The agents lists, by the queues and supervised teams they are for (``None``: every agent).
        self._agents_lists: dict[tuple[frozenset[int], frozenset[int]] | None, Fragment] = {}
        if bus is not None:
            for event in _AGENTS_CHANGE:
                bus.subscribe(event, self._agents_changed)

    def _agents_changed(self, subject: Any, args: dict[str, Any]) -> None:
        self._agents_lists.clear()

    def agents(self, user: Any = None) -> Fragment:
        """The logged-in agents ``user``'s state lists: for a superuser (or no
        user) every agent; for an agent those who share one of its queues (those
        with no queue, when it has none); for a supervisor also the members of
        the teams it supervises (:mod:`ucs.api.scope`: a supervisor of one queue
        is not shown the whole centre).  One tuple, with its JSON, shared by
        every state for the same queues until an agent changes (treat it as
        read-only).  At 10,000 agents in 20 queues this is 500 an agent, not
        10,000 (700 KB a state)."""
        key: tuple[frozenset[int], frozenset[int]] | None = None
        if user is not None and not user.superuser:
            key = (frozenset(user.queues), frozenset(supervised_teams(user)))
        cached = self._agents_lists.get(key) if self._bus is not None else None
        if cached is None:
            agents = self._agents.all()
            if key is not None:
                queues, teams = key
                agents = [a for a in agents
                          if (not queues.isdisjoint(a.user.queues) if queues else not a.user.queues)
                          or (teams and any(m.team_id in teams for m in a.user.queues.values()))]
            cached = Fragment(
                {"id": a.user.id, "displayname": a.user.name, "status": a.status.name, "reason": a.reason}
                for a in agents
            )
            if self._bus is not None:
                self._agents_lists[key] = cached
        return cached

    def waiting_callers(self, user_id: int) -> int:
        user = self._directory.users.get(user_id)
        if user is None:
            return 0
        total = 0
        for queue, _ in self._directory.queues_of(user):
            pq = self._pbx.queues.get(queue.asterisk_name)
            if pq is not None:
                total += len(pq.callers)
        return total

    def user(self, user: Any) -> dict[str, Any]:
        """Seed 002's User object (configuration part), its lines as objects."""
        return self._directory.user_dict(user)

    def device(self, session: Session) -> dict[str, Any] | None:
        line = session.line
        if line is None:
            return None
        d = line.to_dict()
        dev = self._pbx.devices.get(line.device)
        d.update(dev.to_dict() if dev is not None else {"state": "UNKNOWN", "registration": "Unknown"})
        d["device"] = line.device
        return d

    def calls(self, session: Session, now: float) -> list[dict[str, Any]]:
        """Every call the session's phone is in, oldest first, each as that phone sees
        it (:func:`ucs.calls.view.phone_view`, the rule the live call events use):
        the consulted agent talking while the caller waits on hold is connected (3),
        a phone rung by a transfer is ringing (2), with this phone's timer fields."""
        if session.line is None:
            return []
        device = session.line.device
        views = (phone_view(call, device, now) for call in self._tracker.calls_of_device(device))
        return [v for v in views if v is not None]

    def __call__(self, session: Session) -> dict[str, Any]:
        user = session.user
        assert user is not None
        now = self._clock.seconds()
        agent = self._agents.get(user.id)
        calls = self.calls(session, now)
        queues = []
        for queue, membership in self._directory.queues_of(user):
            q = {**queue.to_dict(), **membership.to_dict()}
            if agent is not None:
                q["suspended"] = queue.id in getattr(agent, "suspended", ())
            queues.append(q)
        d = self._directory
        return {
            "status": agent.status.name if agent is not None else "OFFLINE",
            "reason": getattr(agent, "reason", "") if agent is not None else "",
            "call": primary(calls),
            "calls": calls,
            "user": agent.to_dict() if agent is not None else d.user_dict(user),
            "device": self.device(session),
            "auxReasons": [r.to_dict() for r in d.auxreasons.values()],
            "callReasons": [r.to_dict() for r in d.callreasons.values()],
            "queues": queues,
            "groups": [g.to_dict() for g in d.groups.values()],
            "agents": self.agents(user),
            "waitingCallers": self.waiting_callers(user.id),
            "now": now,
        }


    def transfer_directory(self, session: Session) -> dict[str, Any]:
        """Whom the agent can consult or transfer to (the bar's directory): the
        colleagues of :meth:`agents` (the same scope) but the agent itself, each
        with the number of the phone it works at (not the user's ``number``: that one is external) and whether it is on a call, and
        every incoming queue that has a ``number``.  Built for each request (the
        bar asks while the directory is open): presence changes with calls too."""
        user = session.user
        assert user is not None
        agents: list[dict[str, Any]] = []
        for a in self._agents.all():
            if a.user.id == user.id or not self._in_scope(user, a):
                continue
            line = getattr(a, "line", None)
            device = getattr(line, "device", "") or ""
            agents.append({
                "id": a.user.id, "displayname": a.user.name, "status": a.status.name, "reason": a.reason,
                "number": line_number(device), "device": device,
                "onCall": bool(device and self._tracker.calls_of_device(device)),
            })
        agents.sort(key=lambda a: str(a["displayname"]).casefold())
        queues = [{"id": q.id, "name": q.name, "number": q.number}
                  for q in self._directory.queues.values() if q.type == 1 and q.number]
        queues.sort(key=lambda q: str(q["name"]).casefold())
        return {"agents": agents, "queues": queues}

    def _in_scope(self, user: Any, agent: Any) -> bool:
        if user.superuser:
            return True
        queues, teams = frozenset(user.queues), frozenset(supervised_teams(user))
        return ((not queues.isdisjoint(agent.user.queues)) if queues else not agent.user.queues) or bool(
            teams and any(m.team_id in teams for m in agent.user.queues.values()))


def line_number(device: str) -> str:
    """The number that rings a line: its device's name when that is a number
    (``SIP/1001`` → ``1001``; the lab's and the usual dialplan), else ``""``."""
    name = device.partition("/")[2]
    return name if name.isdigit() else ""


def register(registry: Registry, state: StateBuilder) -> None:
    registry.add("state", state, role=Role.AGENT, states=[SessionState.READY],
                 doc="The whole current state of this agent (seed 002 onReady / state()).")
    registry.add("agents.directory", state.transfer_directory, role=Role.AGENT, states=[SessionState.READY],
                 doc="Colleagues (number, status, on a call) and queues to consult or transfer to.")
