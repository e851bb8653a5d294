"""The day's figures of every user: kept per user, saved, reset at midnight.

The figures themselves (what each one counts) are :mod:`ucs.agents.stats`;
this is where they live while UCS runs.  The day ends at midnight in the
configured time zone: every logged-in agent's time is accrued up to the
boundary, every user's figures start again and are saved.  Between
midnights the running figures are saved every ``save_interval`` seconds (and
after each change the agents service makes).  If no midnight timer ran (the
service was not started), figures of an older day are reset on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs.agents.persist import STATS, Saver
from ucs.agents.stats import AgentStats, Days

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class Figures:
    log = Logger()

    def __init__(self, agents: Agents, clock: IReactorTime, saver: Saver, *,
                 timezone: str, save_interval: float) -> None:
        self._agents = agents
        self._clock = clock
        self._saver = saver
        self.days = Days(timezone)
        self.save_interval = save_interval
        self._stats: dict[int, AgentStats] = {}
        self._midnight_call: Any = None
        self._save_call: Any = None
        self.running = False

    def of(self, user_id: int) -> AgentStats:
        """Today's figures of a user (the object the agent accrues into)."""
        today = self.days.day(self._clock.seconds())
        stats = self._stats.get(user_id)
        if stats is None:
            stats = self._stats[user_id] = AgentStats(day=today)
        elif stats.day != today and self._midnight_call is None:
            stats.reset(today)  # no midnight timer ran (not started): reset on first use
        return stats

    def save(self, user_id: int) -> None:
        stats = self._stats.get(user_id)
        if stats is None:
            return
        doc = stats.to_doc()
        # as_of (issue 20): the figures as they were at this time of the service's clock; the
        # owner's agent envelopes carry them too, and a new owner keeps the newer (ucs.cluster.handover)
        doc["as_of"] = self._agents.now()
        agent = self._agents.local(user_id)  # never a cluster owner's agent seen from here
        if agent is not None:
            doc["accrued_until"] = agent.accrued_until
        self._saver.put(STATS, str(user_id), doc)

    def load(self, docs: dict[str, Any], now: float) -> dict[int, float]:
        """Today's stored figures; returns up to when each user's time was accrued."""
        today = self.days.day(now)
        accrued: dict[int, float] = {}
        for key, doc in docs.items():
            if not key.isdigit() or not isinstance(doc, dict):
                continue
            stats = AgentStats.from_doc(doc)
            if stats.day == today:
                self._stats[int(key)] = stats
                until = doc.get("accrued_until")
                if isinstance(until, (int, float)):
                    accrued[int(key)] = float(until)
        return accrued

    def start(self) -> None:
        self.running = True
        self._schedule_midnight()
        if self.save_interval > 0:
            self._save_call = self._clock.callLater(self.save_interval, self._periodic_save)

    def stop(self) -> None:
        """Stop the timers (the figures are saved by :meth:`save_all`)."""
        self.running = False
        for call in (self._midnight_call, self._save_call):
            if call is not None and call.active():
                call.cancel()
        self._midnight_call = self._save_call = None

    def save_all(self) -> None:
        for user_id in self._stats:
            self.save(user_id)

    def _periodic_save(self) -> None:
        self._save_call = None
        now = self._clock.seconds()
        for agent in self._agents.all():
            agent.accrue(now)
            self.save(agent.user.id)
        if self.running and self.save_interval > 0:
            self._save_call = self._clock.callLater(self.save_interval, self._periodic_save)

    def _schedule_midnight(self) -> None:
        now = self._clock.seconds()
        at = self.days.next_midnight(now)
        self._midnight_call = self._clock.callLater(max(0.0, at - now), self._midnight, at)

    def _midnight(self, boundary: float) -> None:
        """Midnight in the configured zone: the day's figures end, new ones begin."""
        self._midnight_call = None
        for agent in self._agents.all():
            agent.accrue(boundary)
        day = self.days.day(boundary + 1.0)
        for user_id, stats in self._stats.items():
            stats.reset(day)
            self.save(user_id)
        self.log.info("agents: statistics reset for {day}", day=day)
        if self.running:
            self._schedule_midnight()
