"""The agents' API methods (seed 002 "Component control").

=========================  ==========  =================  =======================================
method                     role        session states     does
=========================  ==========  =================  =======================================
``agent.changeStatus``     agent       READY              status (OFFLINE/READY/AUX/ACW), reason
``agent.suspend``          agent       READY              stop taking calls from one queue
``agent.resume``           agent       READY              take them again
``agent.state``            agent       READY              the caller's own agent (User object)
``agent.extendWrapUp``     agent       READY              more ACW time (a step, up to the maximum)
``agent.endWrapUp``        agent       READY              end ACW now (back to the status before)
``agent.queueFigures``     agent       READY              callers waiting and the longest wait, per queue
``agents.list``            supervisor  any                the logged-in agents they supervise
``agents.changeStatus``    supervisor  any                the status of an agent they supervise
=========================  ==========  =================  =======================================

A supervisor supervises the agents who share a queue or a team with them
(:mod:`ucs.api.scope`); a superuser every agent.

Each returns the agent's User object (seed 002) as it is after the change;
``agents.list`` a list of them.
"""

from __future__ import annotations

from typing import Any

from ucs.agents.service import Agents
from ucs.agents.transitions import parse_status
from ucs.api.registry import Param, Registry
from ucs.api.scope import ActsOn, Subject
from ucs.constants import AgentStatus, Role, SessionState
from ucs.error import InvalidDataInput, InvalidState

READY_ONLY = (SessionState.READY,)


def _status(value: Any) -> AgentStatus:
    try:
        return parse_status(value)
    except InvalidDataInput:
        raise ValueError(f"{value!r} is not accepted; give OFFLINE, READY, AUX or ACW") from None


STATUS = Param("status", (str, int), check=_status, doc="OFFLINE, READY, AUX or ACW")
REASON = Param("reason", str, required=False, default="", nullable=True,
               doc="the AUX reason (required with AUX; one of the AUX reasons when any are configured)")
QUEUE = Param("queue", int, doc="the queue's id")


def _user_id(session: Any) -> int:
    user = getattr(session, "user", None)
    if user is None:
        raise InvalidState("log in first")
    return int(user.id)


def register(registry: Registry, agents: Agents) -> None:
    """Add the agents' methods to the API registry; the registry's scope learns who
    is paired with which phone from ``agents``."""
    registry.scope.agents = agents

    async def change_status(session: Any, status: AgentStatus, reason: str | None) -> dict[str, Any]:
        """Change your availability: OFFLINE (out of the queues), READY, AUX (with a reason) or ACW."""
        agent = await agents.change_status(_user_id(session), status, reason or "", own=True)
        return agent.to_dict()

    async def extend_wrapup(session: Any) -> dict[str, Any]:
        """Wrap-up (ACW) lasts one step longer, never past its maximum."""
        agent = await agents.wrapup.extend(_user_id(session))
        return agent.to_dict()

    async def end_wrapup(session: Any) -> dict[str, Any]:
        """End wrap-up (ACW) now: back to the status before it (not while a required call reason is missing)."""
        agent = await agents.wrapup.end(_user_id(session))
        return agent.to_dict()

    def queue_figures(session: Any) -> dict[str, Any]:
        """For each of your queues: callers waiting now and since when the longest has waited."""
        return agents.waiting.of(_user_id(session))

    async def suspend(session: Any, queue: int) -> dict[str, Any]:
        """Stop taking calls from one of your queues."""
        agent = await agents.suspend(_user_id(session), queue)
        return agent.to_dict()

    async def resume(session: Any, queue: int) -> dict[str, Any]:
        """Take calls from a suspended queue again."""
        agent = await agents.resume(_user_id(session), queue)
        return agent.to_dict()

    def state(session: Any) -> dict[str, Any]:
        """Your agent: status, reason, queues and today's statistics."""
        return agents.agent(_user_id(session)).to_dict()

    def list_agents(session: Any) -> list[dict[str, Any]]:
        """The logged-in agents you supervise (every one for a superuser)."""
        return [a.to_dict() for a in agents.all()]

    async def change_other(session: Any, user_id: int, status: AgentStatus, reason: str | None) -> dict[str, Any]:
        """Change the availability of an agent you supervise."""
        agent = await agents.change_status(user_id, status, reason or "")
        return agent.to_dict()

    registry.add("agent.changeStatus", change_status, (STATUS, REASON), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.suspend", suspend, (QUEUE,), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.resume", resume, (QUEUE,), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.state", state, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.extendWrapUp", extend_wrapup, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.endWrapUp", end_wrapup, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("agent.queueFigures", queue_figures, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("agents.list", list_agents, (), role=Role.SUPERVISOR, shows=True)
    registry.add("agents.changeStatus", change_other,
                 (Param("user_id", int, doc="the agent's user id"), STATUS, REASON), role=Role.SUPERVISOR,
                 acts_on=ActsOn(Subject.AGENT, "user_id"))
