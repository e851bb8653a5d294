"""Wrap-up (ACW): the pause ahead of it, its start when the call ends, its timer.

When the agent's leg of a queue call they served ends, the agent goes ACW
(paused, reason "ACW") for ``acw_seconds``, then back to the status they had
before (READY, or AUX with its reason).  *Served*
(:func:`ucs.agents.counting.serves`): they talked with the call's customer —
answered it from the queue, got it by a transfer, joined a conference with
the customer, placed it for an outgoing queue.  A colleague consulted while
the customer waits on hold (an attended transfer's consultation) took an
internal call: no wrap-up for them, whether the caller hangs up meanwhile or
the consultation ends without a transfer; once the transfer completes the
call is theirs.  Any requested change during ACW ends
it early; a requested ACW lasts ``acw_seconds`` the same way.  The rows are
``talking``, ``hung up`` and ``acw over`` of :data:`ucs.agents.transitions.MACHINE`.

The pause comes *before* the call ends.  app_queue offers the next waiting
caller to a member as soon as its device is free, unless the member is
paused; a pause sent when UCS hears of the hangup can arrive after that
offer, and the agent would sit in ACW with a new call ringing.  So as soon
as the agent serves a queue call (with ``acw_seconds`` > 0) the leg is
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

The agent controls the wrap-up from the bar (the ``extend acw`` and ``end acw``
rows): ``agent.extendWrapUp`` adds ``acw_extend_step`` seconds, never past
``acw_max_seconds`` after the wrap-up began; ``agent.endWrapUp`` ends it at once.
A queue with ``require_reason`` holds the end of the wrap-up of its calls until
a call reason is saved for the call (:func:`reason_missing`): the agent's own
request to leave ACW is refused saying so, and when the timer runs out the
agent stays in ACW (``held``; ``agent.wrapup`` tells the bar, which shows the
reason picker) until the reason is saved, then the wrap-up ends at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs.agents.agent import Agent
from typing import Any

from ucs import events as ev
from ucs.agents.transitions import (
    ACW, ACW_OVER, AUX, BACK, END_ACW, EXTEND_ACW, HUNG_UP, PAUSE, READY, TALKING, step,
)
from ucs.constants import AgentStatus
from ucs.error import InvalidState, PBXError

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class WrapUp:
    log = Logger()

    def __init__(self, agents: Agents, clock: IReactorTime, directory: Any = None, *,
                 step: float = 30.0, max_seconds: float = 300.0) -> None:
        self._agents = agents
        self._clock = clock
        self._directory = directory
        #: Seconds one ``agent.extendWrapUp`` adds, and the longest a wrap-up may last.
        self.step = step
        self.max_seconds = max_seconds
        self._pending: dict[int, Any] = {}  # user id → the call whose wrap-up is being started

    def back_to(self, agent: Agent) -> tuple[AgentStatus, str]:
        """The status an ACW starting now returns to."""
        if agent.status == ACW:
            return agent.acw_return or (READY, "")
        if agent.status in (READY, AUX):
            return agent.status, agent.reason
        return READY, ""

    # -- talking → hung up ------------------------------------------------------------

    def hold(self, agent: Agent, uid: str) -> None:
        """The agent serves a queue call: pause their queues now, so that
        they are paused before the call ends (see the module docstring)."""
        agents = self._agents
        agent.held.add(uid)
        agents.save_state(agent)

        async def pause() -> None:
            if agent.gone or uid not in agent.held or step(agent.status, TALKING).does != PAUSE:
                return  # ended already, or paused anyway (AUX, ACW) or no member (OFFLINE)
            try:
                await agents.apply(agent, agent.status, agent.reason)
            except PBXError as e:
                self.log.warn("agent {user}: queues not paused ahead of wrap-up ({why}); the next caller may "
                              "ring before it starts", user=agent.user.username, why=str(e))

        agents.spawn(agents.serial(agent.user.id, pause), f"pause ahead of wrap-up of {agent.user.username}")

    async def wrap_up(self, agent: Agent, uid: str, call: Any = None) -> None:
        """The agent's held leg of a queue call ended (the lock held): ACW begins; a
        held leg lets go of its pause only once ACW holds it (or no ACW comes).
        ``call`` (the Call) is the wrap-up's call: its queue may require a reason."""
        agents = self._agents
        try:
            if not agent.gone and agents.acw_seconds > 0 and step(agent.status, HUNG_UP).next == ACW:
                if call is not None:
                    self._pending[agent.user.id] = call  # taken by start_timer, before ACW is told
                try:
                    await agents.carry(agent, ACW, "")
                except PBXError as e:
                    self.log.warn("agent {user}: wrap-up could not start: {why}", user=agent.user.username, why=str(e))
        finally:
            self._pending.pop(agent.user.id, None)
            if uid in agent.held:
                agent.held.discard(uid)
                if not agent.gone:
                    agents.save_state(agent)
                    if agent.status == READY and not agent.held:
                        await self._lift(agent)

    async def _lift(self, agent: Agent) -> None:
        """No wrap-up after all (it could not start, or ACW is off): the pause made ahead of it goes."""
        try:
            await self._agents.apply(agent, agent.status, agent.reason)
        except PBXError as e:
            self.log.warn("agent {user}: still paused ACW in some queues: {why}", user=agent.user.username, why=str(e))

    # -- the timer --------------------------------------------------------------------

    def start_timer(self, agent: Agent, now: float, until: float | None = None) -> None:
        if agent.acw_timer is not None and agent.acw_timer.active():
            agent.acw_timer.cancel()
        agent.acw_timer = None
        if until is None:
            # A new wrap-up period.  Its call is the one that just ended, if any; ACW asked
            # for again keeps the call it had (its required reason cannot be dodged so).
            agent.acw_started = now
            agent.acw_held = False
            call = self._pending.pop(agent.user.id, None)
            if call is not None:
                self._follow_call(agent, call)
            if self._agents.acw_seconds <= 0:
                agent.acw_until = None
                return
            until = now + self._agents.acw_seconds
        agent.acw_until = until
        agent.acw_timer = self._clock.callLater(max(0.0, until - now), self._timer_over, agent)

    def cancel(self, agent: Agent) -> None:
        self.stop_timer(agent)
        agent.acw_until = None
        agent.acw_return = None
        agent.acw_call, agent.acw_queue, agent.acw_reason = None, None, ""
        agent.acw_started, agent.acw_held = None, False

    def stop_timer(self, agent: Agent) -> None:
        if agent.acw_timer is not None and agent.acw_timer.active():
            agent.acw_timer.cancel()
        agent.acw_timer = None

    def _timer_over(self, agent: Agent) -> None:
        agent.acw_timer = None

        async def end() -> None:
            if agent.gone or agent.acw_timer is not None:
                return  # logged out, or started again
            await self.over(agent)

        self._agents.spawn(self._agents.serial(agent.user.id, end), f"end of wrap-up of {agent.user.username}")

    async def over(self, agent: Agent) -> bool:
        """The wrap-up period is over (the lock held): back to the status before
        it, if the agent is still in ACW (else it ended early).  ``False`` when
        there was nothing to end."""
        if step(agent.status, ACW_OVER).next != BACK:
            return False
        missing = self.reason_missing(agent)
        if missing is not None:
            if not agent.acw_held:
                agent.acw_held = True
                self._agents.save_state(agent)
                self.log.info("agent {user}: wrap-up held: {why}", user=agent.user.username, why=missing)
                self._tell(agent)
            return True
        back_status, back_reason = agent.acw_return or (READY, "")
        try:
            await self._agents.carry(agent, back_status, back_reason)
        except PBXError as e:
            self.log.warn("agent {user}: wrap-up could not end ({why}); still ACW", user=agent.user.username, why=str(e))
        return True

    # -- the agent's control, the call reason --------------------------------------------

    def _follow_call(self, agent: Agent, call: Any) -> None:
        """ACW began after ``call``: remember it, its queue and any reason it has already."""
        agent.acw_call = call.uniqueid
        queue = self._directory.queue_by_asterisk_name(call.queue) if self._directory and call.queue else None
        agent.acw_queue = queue.id if queue is not None else None
        agent.acw_reason = call.account_code or ""

    def reason_missing(self, agent: Agent) -> str | None:
        """Why the agent may not leave ACW yet (its call's queue requires a call
        reason and none is saved), or ``None``."""
        if agent.status != ACW or agent.acw_reason or agent.acw_queue is None or self._directory is None:
            return None
        queue = self._directory.queues.get(agent.acw_queue)
        if queue is None or not getattr(queue, "require_reason", False):
            return None
        codes = [r.code for r in self._directory.callreasons.values() if r.parent_id is None]
        accepted = f"one of: {', '.join(codes)}" if codes else "a call reason"
        return (f"queue {queue.name} requires a call reason before wrap-up ends: save {accepted} for call "
                f"{agent.acw_call} (call.setAccountCode), then leave ACW")

    def check_leave(self, agent: Agent, wanted: AgentStatus) -> None:
        """The agent's own request to leave ACW: :class:`InvalidState` while a required reason is missing."""
        if agent.status == ACW and wanted != ACW:
            missing = self.reason_missing(agent)
            if missing is not None:
                raise InvalidState(missing)

    def view(self, agent: Agent) -> dict[str, Any] | None:
        """The wrap-up as the bar shows it (``None`` outside ACW)."""
        if agent.status != ACW:
            return None
        started = agent.acw_started
        missing = self.reason_missing(agent)
        limit = started + self.max_seconds if started is not None and agent.acw_until is not None else None
        return {
            "until": agent.acw_until, "started": started, "maxUntil": limit, "step": self.step,
            "canExtend": limit is not None and agent.acw_until is not None and agent.acw_until < limit - 1e-6,
            "call": agent.acw_call, "queue_id": agent.acw_queue,
            "reasonRequired": agent.acw_queue is not None and self._requires(agent.acw_queue),
            "reason": agent.acw_reason, "held": agent.acw_held and missing is not None, "message": missing,
        }

    def _requires(self, queue_id: int) -> bool:
        queue = self._directory.queues.get(queue_id) if self._directory is not None else None
        return bool(getattr(queue, "require_reason", False))

    def _tell(self, agent: Agent) -> None:
        self._agents.bus.publish(ev.EVENT_AGENT_WRAPUP, agent, wrapup=self.view(agent))

    async def extend(self, user_id: int) -> Agent:
        """``agent.extendWrapUp``: ``step`` more seconds, up to ``max_seconds`` from the start."""
        agents = self._agents

        async def run() -> Agent:
            agent = agents.agent(user_id)
            step(agent.status, EXTEND_ACW)
            now = agents.now()
            if agent.acw_until is None or agent.acw_started is None:
                raise InvalidState("this wrap-up has no end to move (acw_seconds is 0): end it with "
                                   "agent.endWrapUp or change the status when done")
            limit = agent.acw_started + self.max_seconds
            if agent.acw_until >= limit - 1e-6:
                raise InvalidState(f"wrap-up is already at its longest ({self.max_seconds:g} s from its start); "
                                   "end it with agent.endWrapUp or let it run out")
            until = min(max(agent.acw_until, now) + self.step, limit)
            agent.acw_held = False
            self.start_timer(agent, now, until=until)
            agents.save_state(agent)
            self._tell(agent)
            return agent

        return await agents.serial(user_id, run)

    async def end(self, user_id: int) -> Agent:
        """``agent.endWrapUp``: back to the status before ACW now (held for a required reason)."""
        agents = self._agents

        async def run() -> Agent:
            agent = agents.agent(user_id)
            step(agent.status, END_ACW)
            missing = self.reason_missing(agent)
            if missing is not None:
                raise InvalidState(missing)
            back_status, back_reason = agent.acw_return or (READY, "")
            await agents.carry(agent, back_status, back_reason)
            return agent

        return await agents.serial(user_id, run)

    def account_code_set(self, uniqueid: Any, args: dict[str, Any]) -> None:
        """A call reason was saved (bus ``accountcode.set``): the wrap-up of that call
        may end; one whose timer ran out ends now."""
        code = args.get("account_code")
        if not isinstance(uniqueid, str) or not isinstance(code, str) or not code:
            return
        agents = self._agents
        for agent in agents.all():
            if agent.acw_call != uniqueid or agent.status != ACW:
                continue
            agent.acw_reason = code
            agents.save_state(agent)
            self._tell(agent)
            if agent.acw_held:
                async def end(agent: Agent = agent) -> None:
                    if not agent.gone and agent.acw_held:
                        await self.over(agent)

                agents.spawn(agents.serial(agent.user.id, end), f"end of held wrap-up of {agent.user.username}")
