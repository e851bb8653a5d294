"""The agents service: who is working, in which status, carried out on Asterisk.

Every status is *carried out on the PBX* (see :mod:`ucs.agents.transitions`
for what each status is in a queue, :mod:`ucs.agents.membership` for the
actions) and counted only once Asterisk has confirmed it — the member events
reached the PBX model.  Only then does the agent's status change, its
statistics switch bucket, the state get saved and ``EVENT_AGENT_STATUS``
(``status``, ``reason``, ``previous``, ``previous_reason``) go out.  When
Asterisk refuses, the request fails with :class:`~ucs.error.PBXError`
(Asterisk's message), nothing is counted, and the queues already changed are
put back as they were.

Races.  The changes of one agent are serialised by a lock of its own (FIFO):
two requests that race — the bar and a plugin, two tabs — are carried out one
after the other, in the order they arrived, so *the later request wins* and
both callers get an answer.  The same lock orders everything else that
changes the agent: wrap-up after a call, its end, pauses made on the phone,
suspensions, logout, reconciliation after an Asterisk restart.

Each change is a row of the status machine (:data:`ucs.agents.transitions.MACHINE`:
state × input → next state, what is carried out on the PBX, or the refusal);
the service consults it and carries the row out.  The service is split by
responsibility: following the phone (:mod:`ucs.agents.follow`), counting
calls (:mod:`ucs.agents.counting`), wrap-up and its timers
(:mod:`ucs.agents.wrapup`), the day's figures and the midnight rollover
(:mod:`ucs.agents.figures`), what survives a restart
(:mod:`ucs.agents.persist`), the memberships put back after Asterisk restarts
or the AMI link resyncs (:mod:`ucs.agents.reconcile`), the status hook of seed
000/001, consulted for requested changes and the initial status at login
(:mod:`ucs.agents.hook`), logging in and out (:mod:`ucs.agents.logins`), the
start from the store and a cluster's hand-over (:mod:`ucs.agents.restore`).

Why this module (issue 15): it holds the roster of logged-in agents, their
locks, and is the one place that carries a change out (``_request``,
``carry``, ``apply``, ``commit``), for its own requests (a status, a
suspension) and for the parts above; what needs no lock, or only puts agents
in the roster and takes them out, is in those modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs import events as ev
from ucs.agents.agent import Agent
from ucs.agents.counting import CallCounter
from ucs.agents.figures import Figures
from ucs.agents.follow import PhoneFollower
from ucs.agents.hook import Hook, StatusHook
from ucs.agents.membership import Change, Memberships
from ucs.agents.logins import Logins
from ucs.agents.persist import STATE, Saver, state_doc
from ucs.agents.reconcile import Reconciler
from ucs.agents.restore import Restorer
from ucs.agents.stats import AgentStats, QueueStats
from ucs.agents.transitions import ACW, ASK, READY, RESUME, SUSPEND, Target, check_reason, parse_status, step, target
from ucs.agents.waiting import QueueFigures
from ucs.agents.wrapup import WrapUp
from ucs.bus import EventBus
from ucs.calls.call import Call, Leg
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.constants import AgentStatus
from ucs.directory.directory import Directory
from ucs.directory.model import Line, Queue, User
from ucs.error import InvalidDataInput, InvalidState, PBXError, UCSError
from ucs.interfaces import ActionSender, KVStore
from ucs.pbx.model import Member
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX
from ucs.store.base import Fence

T = TypeVar("T")


class Agents(PBXObserver, CallObserver):
    """The service; register it as an observer of the PBX model and of the call tracker.

    :param acw_seconds: wrap-up after a queue call; 0 for none (a requested
        ACW then lasts until the next change).
    :param timezone: where the statistics' day ends (IANA name).
    :param initial_status: what an agent becomes at login (READY, AUX with
        ``initial_reason``, or OFFLINE); the status hook may change it.  The
        reason is the configuration's: it need not be one of the directory's.
    :param session_expiry: what :meth:`session_expired` does: ``"logout"``
        (out of every queue) or ``"aux"`` (paused with ``session_expiry_reason``).
    :param reactor: whose thread pool runs the status hook (the global
        reactor when ``None``).
    :param hook_timeout: seconds the status hook may take.
    :param confirm_timeout: seconds to wait for Asterisk's member event after
        an action's response, if it had not come before it.
    :param save_interval: seconds between saves of the running figures.
    """

    log = Logger()

    def __init__(
        self,
        directory: Directory,
        ami: ActionSender,
        pbx: PBX,
        tracker: CallTracker,
        bus: EventBus,
        store: KVStore,
        clock: IReactorTime,
        *,
        acw_seconds: float = 30.0,
        timezone: str = "Europe/Prague",
        initial_status: AgentStatus | str = AgentStatus.READY,
        initial_reason: str = "",
        session_expiry: str = "logout",
        session_expiry_reason: str = "Disconnected",
        reactor: Any = None,
        hook_timeout: float = 5.0,
        confirm_timeout: float = 5.0,
        save_interval: float = 60.0,
        acw_extend_step: float = 30.0,
        acw_max_seconds: float = 300.0,
    ) -> None:
        self._directory = directory
        self._pbx = pbx
        self._tracker = tracker
        self._bus = self.bus = bus
        self._clock = clock
        self.acw_seconds = acw_seconds
        self.initial_status = parse_status(initial_status)
        if self.initial_status == ACW:
            raise ValueError("initial_status: give READY, AUX or OFFLINE (an agent cannot start in ACW)")
        self.initial_reason = initial_reason
        if session_expiry not in ("logout", "aux"):
            raise ValueError(f"session_expiry: {session_expiry!r}; give 'logout' or 'aux'")
        self.session_expiry = session_expiry
        self.session_expiry_reason = session_expiry_reason
        self.members = Memberships(ami, pbx, clock, confirm_timeout=confirm_timeout)
        self.hook = StatusHook(clock, reactor, budget=hook_timeout)
        self._agents: dict[int, Agent] = {}
        self._by_device: dict[str, Agent] = {}
        self._locks: dict[int, DeferredLock] = {}
        self._saver = Saver(store)
        self.figures = Figures(self, clock, self._saver, timezone=timezone, save_interval=save_interval)
        self.wrapup = WrapUp(self, clock, directory, step=acw_extend_step, max_seconds=acw_max_seconds)
        self._phone = PhoneFollower(self, directory)
        self._calls = CallCounter(self, directory, tracker, pbx)
        self._tasks: set[Deferred[Any]] = set()
        self._idle_waiters: list[Deferred[None]] = []
        self._reconcile = Reconciler(self, pbx, self._saver)
        self.waiting = QueueFigures(directory, pbx, clock)
        self.running = False
        # Logging in and out, and the start from the store (issue 15): on this roster.
        self._logins = Logins(self, self._agents, self._by_device, self._reconcile, self._saver)
        self._restorer = Restorer(self, self._agents, self._by_device, directory, ami, store,
                                  self._reconcile, self._saver)
        #: Issue 20 (cluster hook, :class:`ucs.cluster.forward.Forwarder`): on a standby, the AMI
        #: owner logs agents in and out; ``None`` where this service does the work itself.
        self.remote: Any = None

    # ==================================================================== reading

    def now(self) -> float:
        return self._clock.seconds()

    def get(self, user_id: int) -> Agent | None:
        """The logged-in agent of a user, or ``None``."""
        if self.remote is not None:  # issue 20: a standby; the owner's agent as the replica has it
            return self.remote.get(user_id)  # type: ignore[no-any-return]
        return self._agents.get(user_id)

    def local(self, user_id: int) -> Agent | None:
        """This service's own agent of a user (issue 20: never the owner's, which :meth:`get`
        answers on a cluster's standby): what its figures and saves are about."""
        return self._agents.get(user_id)

    def all(self) -> list[Agent]:
        return sorted(self._agents.values(), key=lambda a: a.user.id)

    def agent(self, user_id: int) -> Agent:
        """The logged-in agent of a user; :class:`InvalidState` if there is none."""
        found = self._agents.get(user_id)
        if found is None:
            raise InvalidState(f"user {user_id} is not logged in as an agent (no phone paired)")
        return found

    def by_device(self, device: str) -> Agent | None:
        return self._by_device.get(device)

    def user_dict(self, user: User) -> dict[str, Any]:
        return self._directory.user_dict(user)

    def stats_of(self, user_id: int) -> AgentStats:
        """Today's figures of any user (logged in or not), as they are now."""
        agent = self._agents.get(user_id)
        if agent is not None:
            return agent.stats_now()
        return self.figures.of(user_id).copy()

    def queue_view(self, agent: Agent, stats: AgentStats | None = None) -> dict[int, dict[str, Any]]:
        """Seed 002's Queue objects for each of the agent's queues."""
        stats = stats if stats is not None else agent.stats_now()
        out: dict[int, dict[str, Any]] = {}
        for q, m in self._directory.queues_of(agent.user):
            member = self.members.member(q.asterisk_name, agent.device)
            figures = (stats.queues.get(q.id) or QueueStats()).to_dict()
            out[q.id] = {
                "queue_id": q.id, "name": q.name, "type": q.type, "priorities": m.priority,
                "team_id": m.team_id, "supervisor": m.supervisor, "suspended": q.id in agent.suspended,
                **figures,
                "member": member is not None, "paused": bool(member and member.paused),
                "paused_reason": member.paused_reason if member is not None else "",
            }
        return out

    # ==================================================================== the hook

    def add_change_status_hook(self, fn: Hook) -> None:
        """Seed 000's ``addChangeStatusHook`` (the plugin facade's name, :mod:`ucs.plugins.facade`):
        one hook only; a second raises ProcessingError."""
        self.hook.add(fn)

    def remove_change_status_hook(self) -> None:
        self.hook.remove()

    # ==================================================================== requests

    async def login(self, user: User, line: Line, *, session: Any = None) -> Agent:
        """Make ``user`` an agent on ``line`` and take them to the initial status
        (:meth:`ucs.agents.logins.Logins.login`)."""
        return await self._logins.login(user, line, session=session)

    async def logout(self, user_id: int, reason: str = "") -> None:
        """Remove the agent's phone from every queue, OFFLINE, and the agent is gone
        (:meth:`ucs.agents.logins.Logins.logout`)."""
        await self._logins.logout(user_id, reason)

    async def session_expired(self, user_id: int) -> None:
        """The agent's last agent bar went away and did not come back: the agent stops
        taking queue calls as ``session_expiry`` says (:meth:`ucs.agents.logins.Logins.session_expired`)."""
        await self._logins.session_expired(user_id)

    async def change_status(self, user_id: int, status: AgentStatus | str | int, reason: str = "", *,
                            own: bool = False) -> Agent:
        """Request a status (the agent bar, a supervisor, a plugin).

        Raises :class:`InvalidDataInput` for a status or reason that is not
        accepted, :class:`InvalidState` for a change the table does not allow,
        :class:`ProcessingError` when the hook blocks it, :class:`PBXError`
        when Asterisk refuses it.  Returns the agent once the change is
        confirmed.
        """
        wanted = parse_status(status)
        check_reason(wanted, reason, self._aux_names())  # fail fast, before queueing behind others

        async def run() -> Agent:
            agent = self.agent(user_id)
            if own:  # the agent's own request: held while a required call reason is missing
                self.wrapup.check_leave(agent, wanted)
            await self._request(agent, wanted, reason)
            return agent

        return await self.serial(user_id, run)

    async def suspend(self, user_id: int, queue_id: int) -> Agent:
        """Stop taking calls from one queue (paused there, reason "suspended"),
        whatever the status; ``EVENT_AGENT_SUSPEND`` with ``queue_id``."""
        return await self._suspension(user_id, queue_id, True)

    async def resume(self, user_id: int, queue_id: int) -> Agent:
        """Take calls from a suspended queue again, as the status says; ``EVENT_AGENT_RESUME``."""
        return await self._suspension(user_id, queue_id, False)

    async def _suspension(self, user_id: int, queue_id: int, on: bool) -> Agent:
        async def run() -> Agent:
            agent = self.agent(user_id)
            queue, priority = self._agent_queue(agent, queue_id)
            if (queue_id in agent.suspended) == on:
                return agent
            step(agent.status, SUSPEND if on else RESUME)  # that one queue, whatever the status
            change = Change(queue.asterisk_name, target(agent.status, agent.reason, on), priority)
            if change.target.present:
                agent.applied.add(queue.asterisk_name)
            await self.members.apply(agent.device, agent.user.name, [change])
            self.set_suspended(agent, queue_id, on)
            return agent

        return await self.serial(user_id, run)

    # ==================================================================== life

    async def start(self, *, newer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    newer_figures: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    fence: Fence | None = None) -> None:
        """Load today's figures and the logged-in agents from the store, start the midnight
        reset and the periodic save, put the memberships back if the AMI link is up; a
        cluster node's ``newer``, ``newer_figures`` and ``fence``:
        :meth:`ucs.agents.restore.Restorer.start`."""
        await self._restorer.start(newer=newer, newer_figures=newer_figures, fence=fence)

    def restored(self) -> Deferred[None]:
        """Fires once no restore from the store is under way (:meth:`ucs.agents.restore.Restorer.restored`)."""
        return self._restorer.restored()

    async def stop(self) -> None:
        """Stop the timers, save every agent and figure, wait for the store."""
        await self._restorer.stop()

    def forget(self) -> None:
        """Drop every agent from memory (issue 20: a node no longer the AMI owner; the store
        and the new owner have them).  Call after :meth:`stop`."""
        self._restorer.forget()

    def settled(self) -> Deferred[None]:
        """Fires when no background work (wrap-up, following the phone,
        reconciliation) is running: for tests and orderly shutdowns."""
        d: Deferred[None] = Deferred()
        if not self._tasks:
            d.callback(None)
        else:
            self._idle_waiters.append(d)
        return d

    def flush(self) -> Deferred[None]:
        """Fires when every change so far is written to the store."""
        return self._saver.flush()

    async def reconcile(self) -> None:
        """Put every agent's memberships back as its status says; remove orphans
        (:mod:`ucs.agents.reconcile`)."""
        await self._reconcile.reconcile()

    # ==================================================================== PBX observer

    def member_added(self, member: Member) -> None:
        self._phone.member_event(member, present=True)

    def member_changed(self, member: Member, previous: Member) -> None:
        if member.paused != previous.paused or member.paused_reason != previous.paused_reason:
            self._phone.member_event(member, present=True)
        elif member.penalty != previous.penalty:
            # confirms our QueuePenalty; one made outside UCS is not followed (the
            # directory's priority comes back at the next reconciliation)
            self._phone.penalty_event(member)

    def member_removed(self, member: Member) -> None:
        self._phone.member_event(member, present=False)

    def resynced(self) -> None:
        self._reconcile.pbx_synced = True
        if self.running:
            self.spawn(self.reconcile(), "reconcile after resync")

    def pbx_restarted(self) -> None:
        if self._agents:
            self.log.info("agents: Asterisk restarted; memberships of {n} agents go back once it is up", n=len(self._agents))

    # ==================================================================== call observer

    def call_created(self, call: Call) -> None:
        self._calls.call_event(call, ended=False)

    def call_changed(self, call: Call) -> None:
        self._calls.call_event(call, ended=False)

    def call_ended(self, call: Call) -> None:
        self._calls.call_event(call, ended=True)

    def consultation(self, call: Call, leg: Leg) -> bool:
        """Whether the agent's ``leg`` of the queue call ``call`` was only a colleague's
        consultation, never the customer's (an internal call: not in the queue's figures)."""
        return self._calls.consultation(call, leg)

    # ==================================================================== the core

    async def _request(self, agent: Agent, status: AgentStatus, reason: str, *, configured: bool = False) -> None:
        """A requested change, the lock held: checked, offered to the hook, carried out.
        ``configured``: UCS's own change with a reason from its configuration (the
        login's, a lost bar's), which need not be one of the directory's AUX reasons."""
        aux = () if configured else self._aux_names()
        reason = check_reason(status, reason, aux)
        step(agent.status, ASK[status])
        if (status, reason) != (agent.status, agent.reason):
            new_status, new_reason = await self.hook.consult(agent, status, reason)
            if agent.gone:
                raise InvalidState(f"agent {agent.user.username} logged out meanwhile")
            if (new_status, new_reason) != (status, reason):
                try:
                    # plugins are trusted: any AUX reason text, not only the directory's
                    new_reason = check_reason(new_status, new_reason, ())
                    step(agent.status, ASK[new_status])
                except UCSError as e:
                    self.log.error("status hook asked for {status} ({reason}) for {user}, which is not possible ({why}); "
                                   "the change goes ahead as requested", status=new_status.name, reason=new_reason,
                                   user=agent.user.username, why=str(e))
                else:
                    status, reason = new_status, new_reason
        await self.carry(agent, status, reason)

    # The core, used by the helpers (wrapup, follow, counting): always with the agent's lock held.

    async def carry(self, agent: Agent, status: AgentStatus, reason: str) -> None:
        """Carry a status out on Asterisk and, once confirmed, make it the agent's.
        On failure the queues go back to the status the agent still has."""
        acw_return = self.wrapup.back_to(agent) if status == ACW else None
        try:
            await self.apply(agent, status, reason)
        except PBXError:
            if not agent.gone:
                try:
                    await self.apply(agent, agent.status, agent.reason)
                except PBXError as e:
                    self.log.warn("agent {user}: queues not put back after a refused change: {why}",
                                  user=agent.user.username, why=str(e))
            raise
        if agent.gone:
            raise InvalidState(f"agent {agent.user.username} logged out meanwhile")
        self.commit(agent, status, reason, acw_return)

    def _changes(self, agent: Agent, status: AgentStatus, reason: str) -> list[Change]:
        changes: list[Change] = []
        names: set[str] = set()
        for q, m in self._directory.queues_of(agent.user):
            names.add(q.asterisk_name)
            changes.append(Change(q.asterisk_name, target(status, reason, q.id in agent.suspended,
                                                          held=bool(agent.held)), m.priority))
        changes.extend(Change(name, Target(False)) for name in sorted(agent.applied - names))
        return changes

    async def apply(self, agent: Agent, status: AgentStatus, reason: str) -> None:
        """Bring every queue of the agent to ``status``'s target (the status itself unchanged)."""
        changes = self._changes(agent, status, reason)
        agent.applied |= {c.queue for c in changes if c.target.present}
        await self.members.apply(agent.device, agent.user.name, changes)
        agent.applied -= {c.queue for c in changes if not c.target.present}

    def commit(self, agent: Agent, status: AgentStatus, reason: str,
                acw_return: tuple[AgentStatus, str] | None = None) -> None:
        """Asterisk confirmed: the agent is now in ``status``."""
        now = self.now()
        agent.accrue(now)
        previous, previous_reason = agent.status, agent.reason
        agent.status, agent.reason = status, reason
        if status == ACW:
            agent.acw_return = acw_return or (READY, "")
            self.wrapup.start_timer(agent, now)
        else:
            self.wrapup.cancel(agent)
        changed = (previous, previous_reason) != (status, reason)
        if changed:
            agent.since = now
        if not agent.gone:
            self.save_state(agent)
        self.figures.save(agent.user.id)
        if changed:
            self.log.info("agent {user}: {previous} → {status}{reason}", user=agent.user.username,
                          previous=previous.name, status=status.name, reason=f" ({reason})" if reason else "")
            self._bus.publish(ev.EVENT_AGENT_STATUS, agent, status=status, reason=reason,
                              previous=previous, previous_reason=previous_reason)

    def set_suspended(self, agent: Agent, queue_id: int, on: bool) -> None:
        agent.accrue(self.now())
        if on:
            agent.suspended.add(queue_id)
        else:
            agent.suspended.discard(queue_id)
        self.save_state(agent)
        self._bus.publish(ev.EVENT_AGENT_SUSPEND if on else ev.EVENT_AGENT_RESUME, agent, queue_id=queue_id)

    # ==================================================================== helpers

    async def serial(self, user_id: int, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` with the agent's lock (FIFO): one change of an agent at a time."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = DeferredLock()
        await lock.acquire()
        try:
            return await fn()
        finally:
            lock.release()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> Deferred[Any]:
        """Background work (logged if it fails), waited for by :meth:`settled`."""
        d = Deferred.fromCoroutine(coro)

        def failed(f: Any) -> None:
            if f.check(UCSError):
                self.log.warn("agents: {what}: {why}", what=what, why=f.getErrorMessage())
            else:
                self.log.failure("agents: {what} failed", f, what=what)

        def done(_: Any) -> None:
            self._tasks.discard(d)
            if not self._tasks:
                waiters, self._idle_waiters = self._idle_waiters, []
                for w in waiters:
                    w.callback(None)

        d.addErrback(failed)
        if not d.called:
            self._tasks.add(d)
            d.addBoth(done)
        return d

    def _aux_names(self) -> list[str]:
        return [r.name for r in self._directory.auxreasons.values()]

    def _agent_queue(self, agent: Agent, queue_id: Any) -> tuple[Queue, int]:
        mine = {q.id: (q, m.priority) for q, m in self._directory.queues_of(agent.user)}
        if isinstance(queue_id, bool) or not isinstance(queue_id, int) or queue_id not in mine:
            yours = ", ".join(str(i) for i in sorted(mine)) or "none"
            raise InvalidDataInput({"queue": f"{queue_id!r} is not one of {agent.user.username}'s queues; theirs: {yours}"})
        return mine[queue_id]

    def save_state(self, agent: Agent) -> None:
        self._saver.put(STATE, str(agent.user.id), state_doc(agent))
