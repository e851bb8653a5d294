"""One logged-in agent: a user working on a paired phone.

Plugins read an agent both ways (seed 000)::

    agent.status == AGENT_AUX and agent.reason == "Lunch"
    agent["status"] == AGENT_AUX and agent["displayname"] == "Alice Agent"

``agent[key]`` gives the attributes below (``status`` as
:class:`~ucs.constants.AgentStatus`, ``reason``, ``since``, ``line`` …) and
every key of :meth:`Agent.to_dict` (``id``, ``username``, ``displayname``,
``queues``, the statistics …).  The agents service owns every change; code
outside it only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ucs.agents.stats import AgentStats, accrue
from ucs.constants import AgentStatus
from ucs.directory.model import Line, User

if TYPE_CHECKING:
    from ucs.agents.service import Agents

#: Keys answered from the object itself rather than from ``to_dict()``.
_ATTRIBUTES = frozenset({"status", "reason", "since", "line", "user", "suspended", "logged_in", "busy", "queues"})


class Agent:
    def __init__(self, service: Agents, user: User, line: Line, stats: AgentStats, now: float) -> None:
        self._service = service
        self.user = user
        self.line = line
        self.status = AgentStatus.OFFLINE
        self.reason = ""
        #: When the current status began.
        self.since = now
        self.logged_in = now
        #: Directory ids of the queues this agent suspended.
        self.suspended: set[int] = set()
        self.stats = stats
        #: Up to when the time-in-state figures have been accrued.
        self.accrued_until = now
        #: Legs (uniqueids) live on the phone now: ringing or talking.
        self.live_legs: set[str] = set()
        #: Legs already counted in the statistics.
        self.counted_legs: set[str] = set()
        #: Asterisk queues where UCS made the phone a member (to remove at logout
        #: even if the queue was taken off the user meanwhile).
        self.applied: set[str] = set()
        #: While in ACW: the status and reason to go back to, and when.
        self.acw_return: tuple[AgentStatus, str] | None = None
        self.acw_until: float | None = None
        self.acw_timer: Any = None
        #: The wrap-up's call (its uniqueid), that call's queue (directory id), the
        #: call reason saved for it, when the wrap-up began, and whether its end is
        #: held for a required call reason (:mod:`ucs.agents.wrapup`).
        self.acw_call: str | None = None
        self.acw_queue: int | None = None
        self.acw_reason = ""
        self.acw_started: float | None = None
        self.acw_held = False
        #: Legs (uniqueids) of queue calls the agent is talking on: wrap-up
        #: follows each, so the queues are paused "ACW" already (status unchanged).
        self.held: set[str] = set()
        self.gone = False

    # -- identity -------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def displayname(self) -> str:
        return self.user.name

    @property
    def device(self) -> str:
        return self.line.device

    @property
    def busy(self) -> bool:
        """The phone is in use: a call rings on it or is on it."""
        return bool(self.live_legs)

    # -- figures --------------------------------------------------------------------------

    def accrue(self, now: float) -> None:
        """Count the time since the last accrual into the current state's figures."""
        if now > self.accrued_until:
            accrue(self.stats, self.status, self.reason, self.busy, self.suspended, now - self.accrued_until)
            self.accrued_until = now

    def stats_now(self) -> AgentStats:
        """The figures as they are this instant (time in the current state included)."""
        stats = self.stats.copy()
        now = self._service.now()
        if now > self.accrued_until:
            accrue(stats, self.status, self.reason, self.busy, self.suspended, now - self.accrued_until)
        return stats

    # -- reading --------------------------------------------------------------------------

    @property
    def queues(self) -> dict[int, dict[str, Any]]:
        """Seed 002's Queue objects: the agent in each of the user's queues (with today's figures)."""
        return self._service.queue_view(self)

    def wrapup_view(self) -> dict[str, Any] | None:
        """The wrap-up as the bar shows it (:meth:`ucs.agents.wrapup.WrapUp.view`); ``None`` outside ACW."""
        return self._service.wrapup.view(self)

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's User object: the user's configuration, status and figures."""
        d = self._service.user_dict(self.user)
        stats = self.stats_now()
        d.update(stats.to_dict())
        d.update(
            status=self.status.name, reason=self.reason, since=self.since, logged_in=self.logged_in,
            line=self.line.to_dict(), device=self.line.device, suspended=sorted(self.suspended),
            queues=self._service.queue_view(self, stats),
            wrapup=self.wrapup_view(),
        )
        return d

    def __getitem__(self, key: str) -> Any:
        if key in _ATTRIBUTES:
            return getattr(self, key)
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in _ATTRIBUTES or key in self.to_dict()

    def keys(self) -> list[str]:
        return sorted(set(self.to_dict()) | _ATTRIBUTES)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return f"<Agent {self.user.id} {self.user.username} on {self.line.device}: {self.status.name}{reason}>"
