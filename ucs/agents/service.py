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

Things that happen on Asterisk without UCS asking — a pause or unpause on the
phone or by another AMI client (a member event no action of ours expected) —
are *followed*, not fought: paused with reason R makes the agent AUX(R)
("ACW" makes it ACW, "suspended" suspends that queue), unpaused makes it
READY (and lifts a suspension of that queue); the agent's other queues are
then brought in line with the new status.  They do not go through the status
hook (they already happened).  A membership removed by someone else is left
alone until the next reconciliation.

Wrap-up (ACW): when the agent's leg of a queue call they talked on ends, the
agent goes ACW (paused, reason "ACW") for ``acw_seconds``, then back to the
status they had before (READY, or AUX with its reason).  Any requested change
during ACW ends it early; a requested ACW lasts ``acw_seconds`` the same way.

The pause comes *before* the call ends.  app_queue offers the next waiting
caller to a member as soon as its device is free, unless the member is
paused; a pause sent when UCS hears of the hangup can arrive after that
offer, and the agent would sit in ACW with a new call ringing.  So as soon
as the agent talks on a queue call (with ``acw_seconds`` > 0) the leg is
*held* (``agent.held``): a READY agent's queues are paused "ACW" while the
call is up (Asterisk does not take a call away from a member paused during
it), its status stays READY, and when the leg ends ACW begins with the pause
already in place.  A held READY agent's target in every queue is "paused
ACW" (:func:`~ucs.agents.transitions.target`), so requested changes,
reconciliations and the end of an earlier ACW keep the pause, and the pause
read back from Asterisk (a resync, a restart of UCS) is not taken for one
made outside UCS.  AUX and OFFLINE during the call are carried out as usual;
after the call, AUX gets its wrap-up as before, OFFLINE none.  The held legs
are saved: when UCS comes back and the call ended while it was away, the
wrap-up starts then.

After Asterisk restarts or the AMI link resyncs (``resynced``), every agent's
memberships are put back as its status says (READY and AUX alike), and
memberships left by a logout that could not reach Asterisk are removed.

The status hook (seed 000/001) is consulted for requested changes and the
initial status at login; see :mod:`ucs.agents.hook` for how it runs (in a
thread, with a time budget).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs import events as ev
from ucs.agents import persist
from ucs.agents.agent import Agent
from ucs.agents.hook import Hook, StatusHook
from ucs.agents.membership import ActionSender, Change, Memberships
from ucs.agents.persist import Saver
from ucs.agents.stats import (
    AgentStats,
    Days,
    QueueStats,
    count_external_transfer,
    count_leg,
    is_queue_call,
    talking,
)
from ucs.agents.transitions import (
    ACW,
    ACW_REASON,
    AUX,
    OFFLINE,
    READY,
    SUSPEND_REASON,
    Target,
    check_reason,
    check_transition,
    parse_status,
    target,
)
from ucs.bus import EventBus
from ucs.calls.call import Call, Cause, Leg
from ucs.calls.numbers import TRUNK
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.constants import AgentStatus
from ucs.directory.directory import Directory
from ucs.directory.model import Line, Queue, User
from ucs.error import (
    InvalidDataInput,
    InvalidState,
    PBXError,
    UCSError,
)
from ucs.pbx.model import Member, device_of
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX

T = TypeVar("T")


class Agents(PBXObserver, CallObserver):
    """The service; register it as an observer of the PBX model and of the call tracker.

    :param acw_seconds: wrap-up after a queue call; 0 for none (a requested
        ACW then lasts until the next change).
    :param timezone: where the statistics' day ends (IANA name).
    :param initial_status: what an agent becomes at login (READY, AUX with
        ``initial_reason``, or OFFLINE); the status hook may change it.
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
        store: persist.KVStore,
        clock: IReactorTime,
        *,
        acw_seconds: float = 30.0,
        timezone: str = "Europe/Prague",
        initial_status: AgentStatus | str = AgentStatus.READY,
        initial_reason: str = "",
        reactor: Any = None,
        hook_timeout: float = 5.0,
        confirm_timeout: float = 5.0,
        save_interval: float = 60.0,
    ) -> None:
        self._directory = directory
        self._ami = ami
        self._pbx = pbx
        self._tracker = tracker
        self._bus = bus
        self._store = store
        self._clock = clock
        self.acw_seconds = acw_seconds
        self.days = Days(timezone)
        self.initial_status = parse_status(initial_status)
        if self.initial_status == ACW:
            raise ValueError("initial_status: give READY, AUX or OFFLINE (an agent cannot start in ACW)")
        self.initial_reason = initial_reason
        self.save_interval = save_interval
        self.members = Memberships(ami, pbx, clock, confirm_timeout=confirm_timeout)
        self.hook = StatusHook(clock, reactor, budget=hook_timeout)
        self._agents: dict[int, Agent] = {}
        self._by_device: dict[str, Agent] = {}
        self._stats: dict[int, AgentStats] = {}
        self._locks: dict[int, DeferredLock] = {}
        self._saver = Saver(store)
        self._tasks: set[Deferred[Any]] = set()
        self._idle_waiters: list[Deferred[None]] = []
        self._transfers: dict[str, list[tuple[int, int | None, Leg]]] = {}
        self._orphans: set[tuple[str, str]] = set()
        self._midnight_call: Any = None
        self._save_call: Any = None
        #: The PBX model has been filled from Asterisk's lists at least once: a
        #: held leg it does not have ended while UCS was not listening.
        self._pbx_synced = False
        self.running = False

    # ==================================================================== reading

    def now(self) -> float:
        return self._clock.seconds()

    def get(self, user_id: int) -> Agent | None:
        """The logged-in agent of a user, or ``None``."""
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

    def stats_of(self, user_id: int) -> AgentStats:
        """Today's figures of any user (logged in or not), as they are now."""
        agent = self._agents.get(user_id)
        if agent is not None:
            return agent.stats_now()
        return self._stats_for(user_id).copy()

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

    # seed 000's names, for the plugin facade (ucs.agents.getAgents() …)

    def getAgents(self) -> list[Agent]:
        return self.all()

    def getAgent(self, user_id: int) -> Agent | None:
        return self.get(user_id)

    # ==================================================================== the hook

    def add_change_status_hook(self, fn: Hook) -> None:
        """Seed 000's ``addChangeStatusHook``: one hook only; a second raises ProcessingError."""
        self.hook.add(fn)

    def remove_change_status_hook(self) -> None:
        self.hook.remove()

    addChangeStatusHook = add_change_status_hook
    removeChangeStatusHook = remove_change_status_hook

    # ==================================================================== requests

    async def login(self, user: User, line: Line, *, session: Any = None) -> Agent:
        """Make ``user`` an agent on ``line`` and take them to the initial status.

        Logging in again on the same line returns the agent as it is; on
        another line the memberships move to the new phone, status kept.
        The agent exists (OFFLINE, ``EVENT_AGENT_LOGIN``) before the initial
        status is carried out; if the hook blocks it or Asterisk refuses, the
        agent stays logged in and OFFLINE (logged; the bar can retry).
        """
        if not isinstance(user, User) or not isinstance(line, Line):
            raise InvalidDataInput("login needs a directory user and line")

        async def run() -> Agent:
            other = self._by_device.get(line.device)
            if other is not None and other.user.id != user.id:
                raise InvalidDataInput({"line": f"line {line.id} ({line.device}) is paired with agent "
                                                f"{other.user.username}; choose another phone"})
            agent = self._agents.get(user.id)
            if agent is not None:
                if agent.line.device != line.device:
                    await self._move(agent, line)
                return agent
            now = self.now()
            agent = Agent(self, user, line, self._stats_for(user.id), now)
            self._agents[user.id] = agent
            self._by_device[line.device] = agent
            self._orphans = {o for o in self._orphans if o[1] != line.device}
            self._save_state(agent)
            self.log.info("agent {user} logged in on {device}", user=user.username, device=line.device)
            self._bus.publish(ev.EVENT_AGENT_LOGIN, agent, session=session)
            self._bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=line)
            if self.initial_status != OFFLINE:
                try:
                    await self._request(agent, self.initial_status, self.initial_reason)
                except UCSError as e:
                    self.log.warn("agent {user} stays OFFLINE after login: {why}", user=user.username, why=str(e))
            return agent

        return await self._serial(user.id, run)

    async def logout(self, user_id: int, reason: str = "") -> None:
        """Remove the agent's phone from every queue, OFFLINE, and the agent is gone.

        If Asterisk cannot be reached the agent is logged out anyway and the
        memberships left behind are removed when it is back.
        """

        async def run() -> None:
            agent = self.agent(user_id)
            self._cancel_acw(agent)
            try:
                await self._apply(agent, OFFLINE, "")
            except PBXError as e:
                left = {c.queue for c in self._changes(agent, READY, "")} | agent.applied
                for queue in left:
                    if self.members.member(queue, agent.device) is not None:
                        self._orphans.add((queue, agent.device))
                self._save_orphans()
                self.log.warn("agent {user} logged out, but Asterisk could not be told ({why}); "
                              "their memberships are removed when it is back", user=agent.user.username, why=str(e))
            self._commit(agent, OFFLINE, "")
            agent.accrue(self.now())
            agent.gone = True
            del self._agents[user_id]
            if self._by_device.get(agent.device) is agent:
                del self._by_device[agent.device]
            self._save_stats(agent.user.id)
            self._saver.delete(persist.STATE, str(user_id))
            self.log.info("agent {user} logged out{why}", user=agent.user.username, why=f" ({reason})" if reason else "")
            self._bus.publish(ev.EVENT_AGENT_LOGOUT, agent, reason=reason)
            self._bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=None)

        await self._serial(user_id, run)

    async def change_status(self, user_id: int, status: AgentStatus | str | int, reason: str = "") -> Agent:
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
            await self._request(agent, wanted, reason)
            return agent

        return await self._serial(user_id, run)

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
            change = Change(queue.asterisk_name, target(agent.status, agent.reason, on), priority)
            if change.target.present:
                agent.applied.add(queue.asterisk_name)
            await self.members.apply(agent.device, agent.user.name, [change])
            self._set_suspended(agent, queue_id, on)
            return agent

        return await self._serial(user_id, run)

    # ==================================================================== life

    async def start(self) -> None:
        """Load today's figures and the logged-in agents from the store, start
        the midnight reset and the periodic save, and put the agents'
        memberships back if the AMI link is up."""
        now = self.now()
        today = self.days.day(now)
        accrued: dict[int, float] = {}
        for key, doc in (await self._store.kv_items(persist.STATS)).items():
            if not key.isdigit() or not isinstance(doc, dict):
                continue
            stats = AgentStats.from_doc(doc)
            if stats.day == today:
                self._stats[int(key)] = stats
                until = doc.get("accrued_until")
                if isinstance(until, (int, float)):
                    accrued[int(key)] = float(until)
        for key, doc in (await self._store.kv_items(persist.STATE)).items():
            if key == persist.ORPHANS:
                self._orphans = {(q, d) for q, d in doc if isinstance(q, str) and isinstance(d, str)} if isinstance(doc, list) else set()
                continue
            if not key.isdigit() or not isinstance(doc, dict):
                continue
            self._restore(int(key), doc, accrued, now)
        self.running = True
        self._schedule_midnight()
        if self.save_interval > 0:
            self._save_call = self._clock.callLater(self.save_interval, self._periodic_save)
        self._bus.subscribe(ev.EVENT_USER_CHANGE, self._user_changed)
        self._bus.subscribe(ev.EVENT_CONFIG_CHANGE, self._config_changed)
        self.log.info("agents: {n} logged-in agents restored", n=len(self._agents))
        if getattr(self._ami, "state", "up") == "up":
            self._spawn(self.reconcile(), "reconcile after start")

    def _restore(self, user_id: int, doc: dict[str, Any], accrued: dict[int, float], now: float) -> None:
        user = self._directory.users.get(user_id)
        line_id = doc.get("line_id")
        line = self._directory.lines.get(line_id) if isinstance(line_id, int) else None
        if user is None or line is None or line.device in self._by_device:
            self.log.warn("agents: stored agent {user} cannot come back (user or line gone); logged out", user=user_id)
            device = doc.get("device")
            if isinstance(device, str):
                self._orphans |= {(q, device) for q in doc.get("applied") or () if isinstance(q, str)}
                self._save_orphans()
            self._saver.delete(persist.STATE, str(user_id))
            return
        agent = Agent(self, user, line, self._stats_for(user_id), now)
        persist.restore_state(agent, doc)
        # Time while UCS was down counts in the status the agent kept on Asterisk.
        agent.accrued_until = max(accrued.get(user_id, now), self.days.start_of_day(now))
        self._agents[user_id] = agent
        self._by_device[line.device] = agent
        if agent.status == ACW:
            self._start_acw_timer(agent, now, until=agent.acw_until)

    async def stop(self) -> None:
        """Stop the timers, save every agent and figure, wait for the store."""
        self.running = False
        for call in (self._midnight_call, self._save_call):
            if call is not None and call.active():
                call.cancel()
        self._midnight_call = self._save_call = None
        self._bus.unsubscribe(ev.EVENT_USER_CHANGE, self._user_changed)
        self._bus.unsubscribe(ev.EVENT_CONFIG_CHANGE, self._config_changed)
        now = self.now()
        for agent in self._agents.values():
            if agent.acw_timer is not None and agent.acw_timer.active():
                agent.acw_timer.cancel()
            agent.acw_timer = None
            agent.accrue(now)
            self._save_state(agent)
        for user_id in self._stats:
            self._save_stats(user_id)
        await self._saver.flush()

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
        """Put every agent's memberships back as its status says; remove orphans."""
        tasks = [self._spawn(self._serial(a.user.id, self._reconciler(a, settle_held=self._pbx_synced)),
                             f"reconcile {a.user.username}")
                 for a in list(self._agents.values())]
        for device in {d for _, d in self._orphans}:
            if device in self._by_device:
                self._orphans = {o for o in self._orphans if o[1] != device}
                continue
            queues = sorted(q for q, d in self._orphans if d == device)
            try:
                await self.members.apply(device, "", [Change(q, Target(False)) for q in queues])
            except PBXError as e:
                self.log.warn("agents: memberships of {device} left by a logout still cannot be removed: {why}",
                              device=device, why=str(e))
                continue
            self._orphans = {o for o in self._orphans if o[1] != device}
        self._save_orphans()
        for d in tasks:
            await d

    def _reconciler(self, agent: Agent, *, settle_held: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if agent.gone or not self.running:
                return  # logged out, or UCS is stopping: the next start reconciles
            if settle_held:
                for uid in sorted(agent.held - set(self._pbx.channels)):
                    await self._wrap_up(agent, uid)  # the call ended while UCS was away: its wrap-up now
                if agent.gone:
                    return
            try:
                if agent.status == ACW and agent.acw_until is not None and self.now() >= agent.acw_until:
                    back_status, back_reason = agent.acw_return or (READY, "")
                    await self._carry(agent, back_status, back_reason)
                else:
                    await self._apply(agent, agent.status, agent.reason)
            except PBXError as e:
                if self.running:
                    self.log.warn("agents: {user}'s memberships could not be put back: {why}",
                                  user=agent.user.username, why=str(e))

        return run

    # ==================================================================== PBX observer

    def member_added(self, member: Member) -> None:
        self._member_event(member, present=True)

    def member_changed(self, member: Member, previous: Member) -> None:
        if member.paused != previous.paused or member.paused_reason != previous.paused_reason:
            self._member_event(member, present=True)

    def member_removed(self, member: Member) -> None:
        self._member_event(member, present=False)

    def resynced(self) -> None:
        self._pbx_synced = True
        if self.running:
            self._spawn(self.reconcile(), "reconcile after resync")

    def pbx_restarted(self) -> None:
        if self._agents:
            self.log.info("agents: Asterisk restarted; memberships of {n} agents go back once it is up", n=len(self._agents))

    def _member_event(self, member: Member, present: bool) -> None:
        try:
            if self.members.observe(member.queue, member.interface, member if present else None):
                return  # the outcome of one of our actions
            agent = self._by_device.get(member.interface)
            if agent is None or not present:
                return
            queue = self._directory.queue_by_asterisk_name(member.queue)
            if queue is None or queue.id not in agent.user.queues:
                return
            qid = queue.id
            self._spawn(self._serial(agent.user.id, lambda: self._follow(agent, member.queue, qid)),
                        f"follow {member.interface} in {member.queue}")
        except Exception:  # noqa: BLE001 - an observer must never break the PBX model's dispatch
            self.log.failure("agents: member event of {iface} in {queue} could not be handled",
                             iface=member.interface, queue=member.queue)

    async def _follow(self, agent: Agent, queue: str, queue_id: int) -> None:
        """A pause or unpause nobody asked UCS for: the agent's status follows it."""
        if agent.gone:
            return
        member = self.members.member(queue, agent.device)
        if member is None:
            return
        new: tuple[AgentStatus, str] | None
        suspended = queue_id in agent.suspended
        if member.paused and member.paused_reason == SUSPEND_REASON:
            if not suspended:
                self._set_suspended(agent, queue_id, True)
            return
        if not suspended and target(agent.status, agent.reason, False, held=bool(agent.held)).met_by(member):
            return  # as the agent's status has it (our pause ahead of wrap-up, read again at a resync)
        if member.paused:
            new = (ACW, "") if member.paused_reason == ACW_REASON else (AUX, member.paused_reason)
        else:
            if suspended:
                self._set_suspended(agent, queue_id, False)
            new = (READY, "")
        if new == (agent.status, agent.reason):
            if not suspended:
                return
        else:
            self.log.info("agent {user}: {device} {what} in {queue} outside UCS; status follows: {status}",
                          user=agent.user.username, device=agent.device, queue=queue, status=new[0].name,
                          what=f"paused ({member.paused_reason})" if member.paused else "unpaused")
            self._commit(agent, new[0], new[1], acw_return=self._acw_return(agent) if new[0] == ACW else None)
        try:
            await self._apply(agent, agent.status, agent.reason)  # the other queues in line
        except PBXError as e:
            self.log.warn("agent {user}: other queues not brought in line: {why}", user=agent.user.username, why=str(e))

    # ==================================================================== call observer

    def call_created(self, call: Call) -> None:
        self._call_event(call, ended=False)

    def call_changed(self, call: Call) -> None:
        self._call_event(call, ended=False)

    def call_ended(self, call: Call) -> None:
        self._call_event(call, ended=True)

    def _call_event(self, call: Call, ended: bool) -> None:
        try:
            now = self.now()
            for leg in call.legs.values():
                agent = self._by_device.get(leg.device)
                if agent is None:
                    continue
                uid = leg.uniqueid
                if leg.ended is None and not ended:
                    if uid not in agent.live_legs and uid not in agent.counted_legs:
                        agent.accrue(now)
                        agent.live_legs.add(uid)
                    if (uid in agent.live_legs and uid not in agent.held and self.acw_seconds > 0
                            and is_queue_call(call) and talking(call, leg)):
                        self._hold(agent, uid)
                    continue
                if uid in agent.live_legs:
                    agent.accrue(now)
                    agent.live_legs.discard(uid)
                if uid not in agent.counted_legs:
                    agent.counted_legs.add(uid)
                    self._count(agent, call, leg)
            if ended:
                for leg in call.legs.values():
                    agent = self._by_device.get(leg.device)
                    if agent is not None:
                        agent.counted_legs.discard(leg.uniqueid)
                self._settle_transfers(call)
        except Exception:  # noqa: BLE001 - an observer must never break the tracker's dispatch
            self.log.failure("agents: call {uniqueid} could not be counted", uniqueid=call.uniqueid)

    def _count(self, agent: Agent, call: Call, leg: Leg) -> None:
        queue_id = self._call_queue_id(call)
        talked = count_leg(agent.stats, call, leg, queue_id)
        if is_queue_call(call) and (leg.transferred or leg.cause == Cause.TRANSFER):
            self._transfers.setdefault(call.uniqueid, []).append((agent.user.id, queue_id, leg))
        self._save_stats(agent.user.id)
        uid = leg.uniqueid
        if uid in agent.held or (talked and self.acw_seconds > 0 and agent.status != OFFLINE):
            self._spawn(self._serial(agent.user.id, lambda: self._wrap_up(agent, uid)), f"wrap-up of {agent.user.username}")

    def _settle_transfers(self, call: Call) -> None:
        for user_id, queue_id, leg in self._transfers.pop(call.uniqueid, []):
            if self._external(call, leg):
                count_external_transfer(self._stats_for(user_id), queue_id)
                self._save_stats(user_id)

    def _external(self, call: Call, leg: Leg) -> bool:
        """Whether the agent's leg transferred the call outside the PBX: a trunk
        joined the call at or after the transfer, or its target is a trunk or
        an outside number."""
        records = [t for t in call.transfers if t.get("from") == leg.device]
        at = float(records[-1].get("at", 0.0)) if records else (leg.ended or 0.0)
        for other in call.legs.values():
            if other.uniqueid != call.origin and other.kind == TRUNK and other.created >= at - 1e-6:
                return True
        to = str(records[-1].get("to", "")) if records else ""
        if "/" in to:
            device = device_of(to.split(";")[0])
            if device.startswith("Local/"):
                to = device.split("/", 1)[1].split("@", 1)[0]
            else:
                return self._tracker.classify(device) == TRUNK
        return bool(to) and bool(self._tracker.normalize(to))

    def _call_queue_id(self, call: Call) -> int | None:
        outbound = call.data.get("outbound_id")
        if isinstance(outbound, int) and outbound in self._directory.queues:
            return outbound
        if call.queue:
            queue = self._directory.queue_by_asterisk_name(call.queue)
            return queue.id if queue is not None else None
        return None

    # ==================================================================== wrap-up

    def _acw_return(self, agent: Agent) -> tuple[AgentStatus, str]:
        if agent.status == ACW:
            return agent.acw_return or (READY, "")
        if agent.status in (READY, AUX):
            return agent.status, agent.reason
        return READY, ""

    def _hold(self, agent: Agent, uid: str) -> None:
        """The agent talks on a queue call: pause their queues now, so that
        they are paused before the call ends (see the module docstring)."""
        agent.held.add(uid)
        self._save_state(agent)

        async def pause() -> None:
            if agent.gone or uid not in agent.held or agent.status != READY:
                return  # ended already, or paused anyway (AUX, ACW) or no member (OFFLINE)
            try:
                await self._apply(agent, agent.status, agent.reason)
            except PBXError as e:
                self.log.warn("agent {user}: queues not paused ahead of wrap-up ({why}); the next caller may "
                              "ring before it starts", user=agent.user.username, why=str(e))

        self._spawn(self._serial(agent.user.id, pause), f"pause ahead of wrap-up of {agent.user.username}")

    async def _wrap_up(self, agent: Agent, uid: str) -> None:
        """The agent's leg of a queue call ended (the lock held): ACW begins; a
        held leg lets go of its pause only once ACW holds it (or no ACW comes)."""
        try:
            if not agent.gone and agent.status != OFFLINE and self.acw_seconds > 0:
                try:
                    await self._carry(agent, ACW, "")
                except PBXError as e:
                    self.log.warn("agent {user}: wrap-up could not start: {why}", user=agent.user.username, why=str(e))
        finally:
            if uid in agent.held:
                agent.held.discard(uid)
                if not agent.gone:
                    self._save_state(agent)
                    if agent.status == READY and not agent.held:
                        await self._lift(agent)

    async def _lift(self, agent: Agent) -> None:
        """No wrap-up after all (it could not start, or ACW is off): the pause made ahead of it goes."""
        try:
            await self._apply(agent, agent.status, agent.reason)
        except PBXError as e:
            self.log.warn("agent {user}: still paused ACW in some queues: {why}", user=agent.user.username, why=str(e))

    def _start_acw_timer(self, agent: Agent, now: float, until: float | None = None) -> None:
        if agent.acw_timer is not None and agent.acw_timer.active():
            agent.acw_timer.cancel()
        agent.acw_timer = None
        if until is None:
            if self.acw_seconds <= 0:
                agent.acw_until = None
                return
            until = now + self.acw_seconds
        agent.acw_until = until
        agent.acw_timer = self._clock.callLater(max(0.0, until - now), self._acw_over, agent)

    def _cancel_acw(self, agent: Agent) -> None:
        if agent.acw_timer is not None and agent.acw_timer.active():
            agent.acw_timer.cancel()
        agent.acw_timer = None
        agent.acw_until = None
        agent.acw_return = None

    def _acw_over(self, agent: Agent) -> None:
        agent.acw_timer = None

        async def end() -> None:
            if agent.gone or agent.status != ACW or agent.acw_timer is not None:
                return  # ended early, or started again
            back_status, back_reason = agent.acw_return or (READY, "")
            try:
                await self._carry(agent, back_status, back_reason)
            except PBXError as e:
                self.log.warn("agent {user}: wrap-up could not end ({why}); still ACW", user=agent.user.username, why=str(e))

        self._spawn(self._serial(agent.user.id, end), f"end of wrap-up of {agent.user.username}")

    # ==================================================================== the core

    async def _request(self, agent: Agent, status: AgentStatus, reason: str) -> None:
        """A requested change, the lock held: checked, offered to the hook, carried out."""
        aux = self._aux_names()
        reason = check_reason(status, reason, aux)
        check_transition(agent.status, status)
        if (status, reason) != (agent.status, agent.reason):
            new_status, new_reason = await self.hook.consult(agent, status, reason)
            if agent.gone:
                raise InvalidState(f"agent {agent.user.username} logged out meanwhile")
            if (new_status, new_reason) != (status, reason):
                try:
                    # plugins are trusted: any AUX reason text, not only the directory's
                    new_reason = check_reason(new_status, new_reason, ())
                    check_transition(agent.status, new_status)
                except UCSError as e:
                    self.log.error("status hook asked for {status} ({reason}) for {user}, which is not possible ({why}); "
                                   "the change goes ahead as requested", status=new_status.name, reason=new_reason,
                                   user=agent.user.username, why=str(e))
                else:
                    status, reason = new_status, new_reason
        await self._carry(agent, status, reason)

    async def _carry(self, agent: Agent, status: AgentStatus, reason: str) -> None:
        """Carry a status out on Asterisk and, once confirmed, make it the agent's.
        On failure the queues go back to the status the agent still has."""
        acw_return = self._acw_return(agent) if status == ACW else None
        try:
            await self._apply(agent, status, reason)
        except PBXError:
            if not agent.gone:
                try:
                    await self._apply(agent, agent.status, agent.reason)
                except PBXError as e:
                    self.log.warn("agent {user}: queues not put back after a refused change: {why}",
                                  user=agent.user.username, why=str(e))
            raise
        if agent.gone:
            raise InvalidState(f"agent {agent.user.username} logged out meanwhile")
        self._commit(agent, status, reason, acw_return)

    def _changes(self, agent: Agent, status: AgentStatus, reason: str) -> list[Change]:
        changes: list[Change] = []
        names: set[str] = set()
        for q, m in self._directory.queues_of(agent.user):
            names.add(q.asterisk_name)
            changes.append(Change(q.asterisk_name, target(status, reason, q.id in agent.suspended,
                                                          held=bool(agent.held)), m.priority))
        changes.extend(Change(name, Target(False)) for name in sorted(agent.applied - names))
        return changes

    async def _apply(self, agent: Agent, status: AgentStatus, reason: str) -> None:
        changes = self._changes(agent, status, reason)
        agent.applied |= {c.queue for c in changes if c.target.present}
        await self.members.apply(agent.device, agent.user.name, changes)
        agent.applied -= {c.queue for c in changes if not c.target.present}

    def _commit(self, agent: Agent, status: AgentStatus, reason: str,
                acw_return: tuple[AgentStatus, str] | None = None) -> None:
        """Asterisk confirmed: the agent is now in ``status``."""
        now = self.now()
        agent.accrue(now)
        previous, previous_reason = agent.status, agent.reason
        agent.status, agent.reason = status, reason
        if status == ACW:
            agent.acw_return = acw_return or (READY, "")
            self._start_acw_timer(agent, now)
        else:
            self._cancel_acw(agent)
        changed = (previous, previous_reason) != (status, reason)
        if changed:
            agent.since = now
        if not agent.gone:
            self._save_state(agent)
        self._save_stats(agent.user.id)
        if changed:
            self.log.info("agent {user}: {previous} → {status}{reason}", user=agent.user.username,
                          previous=previous.name, status=status.name, reason=f" ({reason})" if reason else "")
            self._bus.publish(ev.EVENT_AGENT_STATUS, agent, status=status, reason=reason,
                              previous=previous, previous_reason=previous_reason)

    def _set_suspended(self, agent: Agent, queue_id: int, on: bool) -> None:
        agent.accrue(self.now())
        if on:
            agent.suspended.add(queue_id)
        else:
            agent.suspended.discard(queue_id)
        self._save_state(agent)
        self._bus.publish(ev.EVENT_AGENT_SUSPEND if on else ev.EVENT_AGENT_RESUME, agent, queue_id=queue_id)

    async def _move(self, agent: Agent, line: Line) -> None:
        """Re-pair: memberships leave the old phone and come to the new one."""
        old = agent.device
        await self.members.apply(old, agent.user.name,
                                 [Change(c.queue, Target(False)) for c in self._changes(agent, OFFLINE, "")])
        agent.applied.clear()
        if self._by_device.get(old) is agent:
            del self._by_device[old]
        agent.line = line
        agent.live_legs.clear()
        agent.held.clear()  # the old phone's calls are no longer followed: no wrap-up after them
        self._by_device[line.device] = agent
        self._save_state(agent)
        self._bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=line)
        try:
            await self._apply(agent, agent.status, agent.reason)
        except PBXError as e:
            self.log.warn("agent {user}: memberships not added on the new phone {device}: {why}",
                          user=agent.user.username, device=line.device, why=str(e))
            raise

    # ==================================================================== helpers

    async def _serial(self, user_id: int, fn: Callable[[], Awaitable[T]]) -> T:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = DeferredLock()
        await lock.acquire()
        try:
            return await fn()
        finally:
            lock.release()

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> Deferred[Any]:
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

    def _stats_for(self, user_id: int) -> AgentStats:
        today = self.days.day(self.now())
        stats = self._stats.get(user_id)
        if stats is None:
            stats = self._stats[user_id] = AgentStats(day=today)
        elif stats.day != today and self._midnight_call is None:
            stats.reset(today)  # no midnight timer ran (not started): reset on first use
        return stats

    def _save_state(self, agent: Agent) -> None:
        self._saver.put(persist.STATE, str(agent.user.id), persist.state_doc(agent))

    def _save_stats(self, user_id: int) -> None:
        stats = self._stats.get(user_id)
        if stats is None:
            return
        doc = stats.to_doc()
        agent = self._agents.get(user_id)
        if agent is not None:
            doc["accrued_until"] = agent.accrued_until
        self._saver.put(persist.STATS, str(user_id), doc)

    def _save_orphans(self) -> None:
        if self._orphans:
            self._saver.put(persist.STATE, persist.ORPHANS, sorted([q, d] for q, d in self._orphans))
        else:
            self._saver.delete(persist.STATE, persist.ORPHANS)

    def _periodic_save(self) -> None:
        self._save_call = None
        now = self.now()
        for agent in self._agents.values():
            agent.accrue(now)
            self._save_stats(agent.user.id)
        if self.running and self.save_interval > 0:
            self._save_call = self._clock.callLater(self.save_interval, self._periodic_save)

    def _schedule_midnight(self) -> None:
        now = self.now()
        at = self.days.next_midnight(now)
        self._midnight_call = self._clock.callLater(max(0.0, at - now), self._midnight, at)

    def _midnight(self, boundary: float) -> None:
        """Midnight in the configured zone: the day's figures end, new ones begin."""
        self._midnight_call = None
        for agent in self._agents.values():
            agent.accrue(boundary)
        day = self.days.day(boundary + 1.0)
        for user_id, stats in self._stats.items():
            stats.reset(day)
            self._save_stats(user_id)
        self.log.info("agents: statistics reset for {day}", day=day)
        if self.running:
            self._schedule_midnight()

    # ==================================================================== directory changes

    def _user_changed(self, user: Any, args: dict[str, Any]) -> None:
        agent = self._agents.get(getattr(user, "id", -1))
        if agent is None:
            return
        if args.get("action") == "delete":
            self._spawn(self.logout(agent.user.id, "user deleted"), f"logout of deleted user {agent.user.username}")
            return
        agent.suspended &= set(agent.user.queues)
        self._spawn(self._serial(agent.user.id, self._reconciler(agent)), f"queues of {agent.user.username}")

    def _config_changed(self, entity: Any, args: dict[str, Any]) -> None:
        if args.get("kind") == "lines" and args.get("action") == "delete":
            agent = self._by_device.get(getattr(entity, "device", ""))
            if agent is not None and agent.line is entity:
                self._spawn(self.logout(agent.user.id, "line deleted"), f"logout from deleted line {entity.device}")
