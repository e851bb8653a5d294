"""Wrap-up (ACW): the pause ahead of it, its start when the call ends, its timer.

When the agent's leg of a queue call they talked on ends, the agent goes ACW
(paused, reason "ACW") for ``acw_seconds``, then back to the status they had
before (READY, or AUX with its reason).  Any requested change during ACW ends
it early; a requested ACW lasts ``acw_seconds`` the same way.  The rows are
``talking``, ``hung up`` and ``acw over`` of :data:`ucs.agents.transitions.MACHINE`.

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs.agents.agent import Agent
from ucs.agents.transitions import ACW, ACW_OVER, AUX, BACK, HUNG_UP, PAUSE, READY, TALKING, step
from ucs.constants import AgentStatus
from ucs.error import PBXError

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class WrapUp:
    log = Logger()

    def __init__(self, agents: Agents, clock: IReactorTime) -> None:
        self._agents = agents
        self._clock = clock

    def back_to(self, agent: Agent) -> tuple[AgentStatus, str]:
        """The status an ACW starting now returns to."""
        if agent.status == ACW:
            return agent.acw_return or (READY, "")
        if agent.status in (READY, AUX):
            return agent.status, agent.reason
        return READY, ""

    # -- talking → hung up ------------------------------------------------------------

    def hold(self, agent: Agent, uid: str) -> None:
        """The agent talks on a queue call: pause their queues now, so that
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

    async def wrap_up(self, agent: Agent, uid: str) -> None:
        """The agent's leg of a queue call ended (the lock held): ACW begins; a
        held leg lets go of its pause only once ACW holds it (or no ACW comes)."""
        agents = self._agents
        try:
            if not agent.gone and agents.acw_seconds > 0 and step(agent.status, HUNG_UP).next == ACW:
                try:
                    await agents.carry(agent, ACW, "")
                except PBXError as e:
                    self.log.warn("agent {user}: wrap-up could not start: {why}", user=agent.user.username, why=str(e))
        finally:
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
        back_status, back_reason = agent.acw_return or (READY, "")
        try:
            await self._agents.carry(agent, back_status, back_reason)
        except PBXError as e:
            self.log.warn("agent {user}: wrap-up could not end ({why}); still ACW", user=agent.user.username, why=str(e))
        return True
