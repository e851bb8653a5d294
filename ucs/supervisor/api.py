"""The supervisor's API methods (issue 17).

==========================  ==========  ==================  ==========================================
method                      role        session states      does
==========================  ==========  ==================  ==========================================
``supervisor.start``        supervisor  IDENTIFY, DEVICE    work as a supervisor: READY without taking
                                                            calls (no queue), with the paired phone if any
``supervisor.team``         supervisor  logged in           the team view; then ``team.agent`` pushes
``agents.logout``           supervisor  logged in           log an agent you supervise out
``supervisor.monitor``      supervisor  logged in           listen / whisper / barge into an agent's call
``wallboard.subscribe``     anyone      any                 the queue wallboard (supervisor or token);
                                                            then ``wallboard`` pushes
``stats.export``            supervisor  logged in           figures by day or interval, with CSV
==========================  ==========  ==================  ==========================================

``agents.changeStatus`` (:mod:`ucs.agents.api`) changes an agent's status.  The
methods that name an agent are scoped (:mod:`ucs.api.scope`): a supervisor acts
on the agents of their queues and teams only, and is told so otherwise.
"""

from __future__ import annotations

from typing import Any

from ucs.api import logouts
from ucs.api.registry import Param, Registry
from ucs.api.scope import ActsOn, Subject
from ucs.constants import Role, SessionState
from ucs.error import InvalidState
from ucs.supervisor.service import Supervision
from ucs.supervisor.team import monitor

S = SessionState
LOGGED = (S.IDENTIFY, S.DEVICE, S.READY)
USER_ID = Param("user_id", int, doc="the agent's user id")


def register(registry: Registry, supervision: Supervision, agents: Any, tracker: Any, ami: Any,
             sessions: Any, state: Any) -> None:

    def start(session: Any) -> Any:
        """Work as a supervisor without taking calls: the session is READY, in no queue,
        with the phone paired by ``identifier`` (for monitoring) or none."""
        session.state = S.READY
        return state(session) if state is not None else {"device": None}

    def team(session: Any) -> list[dict[str, Any]]:
        """The agents you supervise, with their status and call; ``team.agent`` pushes follow."""
        return supervision.open_team(session)

    async def logout_agent(session: Any, user_id: int) -> dict[str, Any]:
        """Log out an agent you supervise: out of every queue; their bars go back to choosing a phone."""
        if agents.get(user_id) is None:
            raise InvalidState(f"user {user_id} is not logged in as an agent")
        who = session.user.username if session.user is not None else "a supervisor"
        await agents.logout(user_id, f"logged out by {who}")
        logouts.end(sessions, user_id, logouts.UNPAIRED)  # on every node (issue 20)
        return {"id": user_id, "status": "OFFLINE", "logged_in": False}

    async def monitor_agent(session: Any, user_id: int, mode: str) -> dict[str, Any]:
        """Ring your phone into the call of an agent you supervise: listen, whisper or barge."""
        agent = agents.get(user_id)
        if agent is None:
            raise InvalidState(f"user {user_id} is not logged in as an agent")
        mine = session.line.device if session.line is not None else None
        by = session.user.username if session.user is not None else ""
        result = await monitor(ami, mine, agent, tracker, mode, by=by)
        supervision.monitoring(result["phone"], by, mode)
        return result

    def wallboard(session: Any, token: str | None) -> dict[str, Any]:
        """The queue wallboard (a supervisor's queues, or every one with the token); pushes follow."""
        return supervision.open_board(session, token)

    async def export(session: Any, kind: str, first: str, last: str, interval: str) -> dict[str, Any]:
        """Agent or queue figures from one day to another, by 15, 30, 60 minutes or day, with CSV."""
        return await supervision.export(session, kind, first, last, interval)

    registry.add("supervisor.start", start, (), role=Role.SUPERVISOR, states=(S.IDENTIFY, S.DEVICE))
    registry.add("supervisor.team", team, (), role=Role.SUPERVISOR, states=LOGGED)
    registry.add("agents.logout", logout_agent, (USER_ID,), role=Role.SUPERVISOR, states=LOGGED,
                 acts_on=ActsOn(Subject.AGENT, "user_id"))
    registry.add("supervisor.monitor", monitor_agent,
                 (USER_ID, Param("mode", str, required=False, default="listen", doc="listen, whisper or barge")),
                 role=Role.SUPERVISOR, states=LOGGED, acts_on=ActsOn(Subject.AGENT, "user_id"))
    registry.add("wallboard.subscribe", wallboard,
                 (Param("token", str, required=False, nullable=True, doc="[supervisor] wallboard_token"),),
                 role=Role.ANONYMOUS)
    registry.add("stats.export", export, (
        Param("kind", str, doc="agent or queue"), Param("from", str, doc="first day, YYYY-MM-DD"),
        Param("to", str, doc="last day, YYYY-MM-DD"),
        Param("interval", str, required=False, default="day", doc="15, 30, 60 or day")),
        role=Role.SUPERVISOR, states=LOGGED)
