"""Following the phone: member events on the PBX that no action of UCS expected.

A pause or unpause on the phone or by another AMI client is *followed*, not
fought (the ``seen …`` rows of :data:`ucs.agents.transitions.MACHINE`):
paused with reason R makes the agent AUX(R) ("ACW" makes it ACW,
"suspended" suspends that queue), unpaused makes it READY (and lifts a
suspension of that queue); the agent's other queues are then brought in line
with the new status.  These changes do not go through the status hook (they
already happened).  A membership removed by someone else is left alone until
the next reconciliation.  A member that already looks as the agent's status
has it (the pause ahead of wrap-up, read again at a resync) is no change.
A penalty changed by someone else is not followed either: the directory's
priority is put back at the next reconciliation (a user change, a resync) or
the agent's next status change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from ucs.agents.agent import Agent
from ucs.agents.transitions import ACW, FOLLOW, seen, step, target
from ucs.constants import AgentStatus
from ucs.directory.directory import Directory
from ucs.error import PBXError
from ucs.pbx.model import Member

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class PhoneFollower:
    """The member events of the PBX observer."""

    log = Logger()

    def __init__(self, agents: Agents, directory: Directory) -> None:
        self._agents = agents
        self._directory = directory

    def member_event(self, member: Member, present: bool) -> None:
        agents = self._agents
        try:
            if agents.members.observe(member.queue, member.interface, member if present else None):
                return  # the outcome of one of our actions
            agent = agents.by_device(member.interface)
            if agent is None or not present:
                return
            queue = self._directory.queue_by_asterisk_name(member.queue)
            if queue is None or queue.id not in agent.user.queues:
                return
            qid = queue.id
            agents.spawn(agents.serial(agent.user.id, lambda: self._follow(agent, member.queue, qid)),
                         f"follow {member.interface} in {member.queue}")
        except Exception:  # noqa: BLE001 - an observer must never break the PBX model's dispatch
            self.log.failure("agents: member event of {iface} in {queue} could not be handled",
                             iface=member.interface, queue=member.queue)

    def penalty_event(self, member: Member) -> None:
        """Only the member's penalty changed: the confirmation of a ``QueuePenalty`` of ours, if it is one."""
        try:
            self._agents.members.observe(member.queue, member.interface, member)
        except Exception:  # noqa: BLE001 - an observer must never break the PBX model's dispatch
            self.log.failure("agents: penalty event of {iface} in {queue} could not be handled",
                             iface=member.interface, queue=member.queue)

    async def _follow(self, agent: Agent, queue: str, queue_id: int) -> None:
        """A pause or unpause nobody asked UCS for: the agent's status follows it."""
        agents = self._agents
        if agent.gone:
            return
        member = agents.members.member(queue, agent.device)
        if member is None:
            return
        suspended = queue_id in agent.suspended
        row = step(agent.status, seen(member.paused, member.paused_reason))
        if row.does != FOLLOW:  # paused "suspended": that queue is suspended, the status stays
            if not suspended:
                agents.set_suspended(agent, queue_id, True)
            return
        if not suspended and target(agent.status, agent.reason, False, held=bool(agent.held)).met_by(member):
            return  # as the agent's status has it (our pause ahead of wrap-up, read again at a resync)
        if not member.paused and suspended:
            agents.set_suspended(agent, queue_id, False)
        nxt = row.to(agent.status)
        assert isinstance(nxt, AgentStatus)  # the seen rows name a status
        new = (nxt, member.paused_reason if member.paused and nxt != ACW else "")
        if new == (agent.status, agent.reason):
            if not suspended:
                return
        else:
            self.log.info("agent {user}: {device} {what} in {queue} outside UCS; status follows: {status}",
                          user=agent.user.username, device=agent.device, queue=queue, status=new[0].name,
                          what=f"paused ({member.paused_reason})" if member.paused else "unpaused")
            agents.commit(agent, new[0], new[1], acw_return=agents.wrapup.back_to(agent) if new[0] == ACW else None)
        try:
            await agents.apply(agent, agent.status, agent.reason)  # the other queues in line
        except PBXError as e:
            self.log.warn("agent {user}: other queues not brought in line: {why}", user=agent.user.username, why=str(e))
