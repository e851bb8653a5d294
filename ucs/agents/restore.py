"""The agents' start and stop: who was working comes back from the store.

At start, today's figures and the logged-in agents come back from the store
(``agents.stats``, ``agents.state``): each on its phone, in the status it
kept on Asterisk, the time UCS was away counted in it, a wrap-up's timer
running again; an agent whose user or line is gone is logged out and its
memberships become orphans.  At stop, every agent and figure is saved and the
store waited for.

Why a module of its own (issue 15, issue 20): on a cluster this is also the
hand-over of the AMI link -- a node that takes the link over restores the
agents and their figures with what the old owner told after its last save
(``newer``, ``newer_figures``), writes
under the term its ownership began with (``fence``), and a node that lets the
link go drops its agents (``forget``); while a restore runs, a resumed session
waits (``restored``).  None of this takes an agent's lock or carries a change
out, which is :class:`~ucs.agents.service.Agents`' part; the service answers
``start``, ``restored``, ``stop`` and ``forget`` by calling this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from ucs import events as ev
from ucs.agents.agent import Agent
from ucs.agents.persist import ORPHANS, STATE, STATS, Saver, restore_state
from ucs.agents.reconcile import Reconciler
from ucs.agents.transitions import ACW
from ucs.directory.directory import Directory
from ucs.interfaces import ActionSender, KVStore
from ucs.store.base import Fence

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class Restorer:
    """``start``, ``restored``, ``stop`` and ``forget`` of :class:`~ucs.agents.service.Agents`,
    on its roster (``roster``: by user id, ``by_device``: by phone)."""

    def __init__(self, agents: Agents, roster: dict[int, Agent], by_device: dict[str, Agent],
                 directory: Directory, ami: ActionSender, store: KVStore, reconciler: Reconciler,
                 saver: Saver) -> None:
        self._agents = agents
        self._roster = roster
        self._by_device = by_device
        self._directory = directory
        self._ami = ami
        self._store = store
        self._reconcile = reconciler
        self._saver = saver
        self.log = agents.log  # the service's: its log lines keep their namespace
        #: Waiting for a restore from the store to end (:meth:`restored`): issue 20.
        self._settling: list[Deferred[None]] | None = None

    async def start(self, *, newer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    newer_figures: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    fence: Fence | None = None) -> None:
        """Load today's figures and the logged-in agents from the store, start
        the midnight reset and the periodic save, and put the agents'
        memberships back if the AMI link is up.

        ``newer`` (issue 20, a cluster node taking over the AMI link): given the
        stored agents' documents (``agents.state``, by key), it returns those to
        restore -- with what the old owner told after its last save; what it
        changed is saved, what it left out is deleted (:mod:`ucs.cluster.handover`).
        ``newer_figures`` (the same node): the same for the users' figures of the day
        (``agents.stats``); a restored agent's time is counted from the ``accrued_until`` of
        the figures kept, in the status it is restored in.

        ``fence`` (issue 20, the same node): the term its ownership of the AMI link began with;
        every document is written under it, and refused once another node took the link over
        (:mod:`ucs.agents.persist`).  ``None``: written as always (a single node)."""
        self._saver.fence = fence
        self._settling = waiting = self._settling or []
        try:
            await self._start(newer, newer_figures)
        finally:
            self._settling = None
            for d in waiting:
                d.callback(None)

    def restored(self) -> Deferred[None]:
        """Fires once no restore from the store is under way: until then who works on which
        phone is not known here (a cluster node taking over the AMI link restores its agents),
        and a session resumed meanwhile must not conclude its agent stopped working."""
        d: Deferred[None] = Deferred()
        if self._settling is None:
            d.callback(None)
        else:
            self._settling.append(d)
        return d

    async def _start(self, newer: Callable[[dict[str, Any]], dict[str, Any]] | None,
                     newer_figures: Callable[[dict[str, Any]], dict[str, Any]] | None) -> None:
        agents = self._agents
        now = agents.now()
        self.forget()  # issue 20: a node that becomes the AMI owner again starts from the store
        counted = await self._store.kv_items(STATS)
        figures = counted if newer_figures is None else newer_figures(dict(counted))
        accrued = agents.figures.load(figures, now)
        stored = await self._store.kv_items(STATE)
        docs = stored if newer is None else newer(dict(stored))
        for key in stored.keys() - docs.keys() - {ORPHANS}:
            self._saver.delete(STATE, key)  # logged out after it was saved
        for key, doc in docs.items():
            if key == ORPHANS:
                self._reconcile.load_orphans(doc)
                continue
            if not key.isdigit() or not isinstance(doc, dict):
                continue
            agent = self._restore(int(key), doc, accrued, now)
            if agent is not None and doc is not stored.get(key):
                agents.save_state(agent)  # newer than the store's: the store has it too now
        today = agents.figures.days.day(now)
        for key, doc in figures.items():
            if key.isdigit() and doc is not counted.get(key) and isinstance(doc, dict) and doc.get("day") == today:
                agents.figures.save(int(key))  # the same (with the restored agent's accrued_until)
        agents.running = True
        agents.figures.start()
        agents.bus.subscribe(ev.EVENT_USER_CHANGE, self._reconcile.user_changed)
        agents.bus.subscribe(ev.EVENT_CONFIG_CHANGE, self._reconcile.config_changed)
        agents.bus.subscribe(ev.EVENT_ACCOUNT_CODE, agents.wrapup.account_code_set)
        self.log.info("agents: {n} logged-in agents restored", n=len(self._roster))
        if getattr(self._ami, "state", "up") == "up":
            agents.spawn(agents.reconcile(), "reconcile after start")

    def _restore(self, user_id: int, doc: dict[str, Any], accrued: dict[int, float], now: float) -> Agent | None:
        agents = self._agents
        user = self._directory.users.get(user_id)
        line_id = doc.get("line_id")
        line = self._directory.lines.get(line_id) if isinstance(line_id, int) else None
        if user is None or line is None or line.device in self._by_device:
            self.log.warn("agents: stored agent {user} cannot come back (user or line gone); logged out", user=user_id)
            device = doc.get("device")
            if isinstance(device, str):
                self._reconcile.add_orphans((q, device) for q in doc.get("applied") or () if isinstance(q, str))
            self._saver.delete(STATE, str(user_id))
            return None
        agent = Agent(agents, user, line, agents.figures.of(user_id), now)
        restore_state(agent, doc)
        # Time while UCS was down counts in the status the agent kept on Asterisk.
        agent.accrued_until = max(accrued.get(user_id, now), agents.figures.days.start_of_day(now))
        self._roster[user_id] = agent
        self._by_device[line.device] = agent
        if agent.status == ACW:
            agents.wrapup.start_timer(agent, now, until=agent.acw_until)
        return agent

    async def stop(self) -> None:
        """Stop the timers, save every agent and figure, wait for the store."""
        agents = self._agents
        agents.running = False
        agents.figures.stop()
        agents.bus.unsubscribe(ev.EVENT_USER_CHANGE, self._reconcile.user_changed)
        agents.bus.unsubscribe(ev.EVENT_CONFIG_CHANGE, self._reconcile.config_changed)
        agents.bus.unsubscribe(ev.EVENT_ACCOUNT_CODE, agents.wrapup.account_code_set)
        now = agents.now()
        for agent in self._roster.values():
            agents.wrapup.stop_timer(agent)
            agent.accrue(now)
            agents.save_state(agent)
        agents.figures.save_all()
        await self._saver.flush()

    def forget(self) -> None:
        """Drop every agent from memory (issue 20: a node no longer the AMI owner; the store
        and the new owner have them).  Call after :meth:`stop`."""
        self._roster.clear()
        self._by_device.clear()
