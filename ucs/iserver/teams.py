"""``report.teamstatus``: one agent's view of its teams, and what changed in it.

A :class:`TeamWatch` is a plain object (no reactor, no bus): :meth:`TeamWatch.begin`
returns the ``teamadded`` events of every team the agent is in; after a directory
change :meth:`TeamWatch.refresh` compares the teams with what the agent was told
and returns ``teamadded`` / ``teamchanged`` / ``teamremoved`` / ``memberadded`` /
``memberremoved`` / ``memberstatuschanged``; after an agent's status changed
:meth:`TeamWatch.status_changed` returns the ``memberstatuschanged`` events.

Ids are the ones clients know: a member's ``memberId`` (and the ``agentId``) is
the user name the agent prepares its session with; a ``teamId`` is the
directory's team id as a string.  A member's ``reason`` is a code, as seed 003
has it ("<uccx reason code>"): the id of the directory's AUX reason (``"2"``),
empty when the reason is not one of them; ``reasonName`` (a UCS addition) is
its text (``Lunch``, ``Logged out``).  ``memberType`` is ``Supervisor`` for a
supervisor user, ``TeamLead`` for a user whose membership in the team's queue
makes it the team's supervisor (it supervises that team only), else ``Agent``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ucs.constants import AgentStatus

EVENT_PREFIX = "report.teamstatus."

#: What an agent's status is called in the report (seed 003: ready / not_ready / ACW).
STATUS_NAMES = {AgentStatus.READY: "ready", AgentStatus.AUX: "not_ready", AgentStatus.ACW: "ACW",
                AgentStatus.OFFLINE: "not_ready"}
#: The reason given for a member who is not logged in.
LOGGED_OUT = "Logged out"

Member = dict[str, str]


class DirectoryLike(Protocol):
    users: dict[int, Any]
    teams: dict[int, Any]
    auxreasons: dict[int, Any]

    def members_of_team(self, team_id: int) -> list[Any]: ...


class AgentsLike(Protocol):
    def get(self, user_id: int) -> Any: ...


def member_status(agents: AgentsLike, user_id: int) -> tuple[str, str]:
    """(status, reason text) of a team member as the report names them."""
    agent = agents.get(user_id)
    if agent is None:
        return "not_ready", LOGGED_OUT
    status = AgentStatus(int(agent.status))
    if status is AgentStatus.OFFLINE:
        return "not_ready", LOGGED_OUT
    return STATUS_NAMES[status], ("" if status is AgentStatus.READY else str(agent.reason or ""))


def reason_code(directory: DirectoryLike, reason: str) -> str:
    """The code of an AUX reason (its directory id, as a string); "" when it has none."""
    if not reason:
        return ""
    for rid, aux in directory.auxreasons.items():
        if aux.name == reason:
            return str(rid)
    return ""


def member_type(user: Any, team_id: int) -> str:
    if user.supervisor:
        return "Supervisor"
    if any(m.supervisor for m in user.queues.values() if m.team_id == team_id):
        return "TeamLead"
    return "Agent"


def member_of(user: Any, team_id: int, agents: AgentsLike, directory: DirectoryLike) -> Member:
    status, reason = member_status(agents, user.id)
    return {"memberId": user.username, "memberType": member_type(user, team_id),
            "memberName": user.name, "status": status, "reason": reason_code(directory, reason),
            "reasonName": reason}


def teams_of(user: Any, directory: DirectoryLike) -> list[int]:
    """The ids of the teams ``user`` is in (through any queue membership), in id order."""
    return sorted({m.team_id for m in user.queues.values()
                   if m.team_id is not None and m.team_id in directory.teams})


class TeamWatch:
    """What one subscribed agent was told about its teams; see the module docstring."""

    def __init__(self, user_id: int, directory: DirectoryLike, agents: AgentsLike) -> None:
        self.user_id = user_id
        self._directory = directory
        self._agents = agents
        user = directory.users.get(user_id)
        self.agent_id: str = user.username if user is not None else str(user_id)
        #: team id → (team name, {user id → member as last sent})
        self._told: dict[int, tuple[str, dict[int, Member]]] = {}

    # -- what is true now ----------------------------------------------------------

    def _now(self) -> dict[int, tuple[str, dict[int, Member]]]:
        user = self._directory.users.get(self.user_id)
        if user is None:
            return {}
        out: dict[int, tuple[str, dict[int, Member]]] = {}
        for tid in teams_of(user, self._directory):
            team = self._directory.teams[tid]
            members = {u.id: member_of(u, tid, self._agents, self._directory)
                       for u in sorted(self._directory.members_of_team(tid), key=lambda u: u.id)}
            out[tid] = (team.name, members)
        return out

    def _event(self, name: str, tid: int, team_name: str, members: list[Member] | None) -> dict[str, Any]:
        team: dict[str, Any] = {"teamId": str(tid), "teamName": team_name}
        if members is not None:
            team["members"] = members
        return {"name": EVENT_PREFIX + name, "data": {"agentId": self.agent_id, "team": team}}

    # -- the events ----------------------------------------------------------------

    def begin(self) -> list[dict[str, Any]]:
        """``teamadded`` (with its members) for every team of the agent."""
        self._told = self._now()
        return [self._event("teamadded", tid, name, list(members.values()))
                for tid, (name, members) in self._told.items()]

    def refresh(self) -> list[dict[str, Any]]:
        """What changed since the agent was last told (after a directory change)."""
        now = self._now()
        out: list[dict[str, Any]] = []
        for tid, (name, members) in self._told.items():
            if tid not in now:
                out.append(self._event("teamremoved", tid, name, None))
        for tid, (name, members) in now.items():
            if tid not in self._told:
                out.append(self._event("teamadded", tid, name, list(members.values())))
                continue
            old_name, old = self._told[tid]
            if name != old_name:
                out.append(self._event("teamchanged", tid, name, None))
            added = [m for uid, m in members.items() if uid not in old]
            removed = [{"memberId": m["memberId"]} for uid, m in old.items() if uid not in members]
            changed = [m for uid, m in members.items() if uid in old and old[uid] != m]
            if added:
                out.append(self._event("memberadded", tid, name, added))
            if changed:
                out.append(self._event("memberstatuschanged", tid, name, changed))
            if removed:
                out.append(self._event("memberremoved", tid, name, removed))
        self._told = now
        return out

    def status_changed(self, user_id: int) -> list[dict[str, Any]]:
        """``memberstatuschanged`` in every team of the agent that ``user_id`` is in."""
        user = self._directory.users.get(user_id)
        out: list[dict[str, Any]] = []
        for tid, (name, members) in self._told.items():
            old = members.get(user_id)
            if old is None or user is None:
                continue
            member = member_of(user, tid, self._agents, self._directory)
            if member != old:
                members[user_id] = member
                out.append(self._event("memberstatuschanged", tid, name, [member]))
        return out

    def end(self) -> None:
        self._told = {}
