"""Logins: who works on which phone, and what ends it.

An agent's sessions: a login (the agent exists OFFLINE, then the initial
status), a login on another phone (the memberships move, the status is kept),
a logout (out of every queue; when Asterisk cannot be told, the memberships
left behind become orphans for the next reconciliation), and a bar that went
away and did not come back (``[agents] session_expiry``: a logout, or AUX).

Why a module of its own (issue 15): these are the only changes that put an
agent in :class:`~ucs.agents.service.Agents`' roster or take it out; the
service keeps the roster, the agent's lock and carrying a change out
(``_request``, ``apply``, ``commit``), which every change shares, and answers
``login``, ``logout`` and ``session_expired`` by calling this.  On a cluster's
standby (issue 20) each goes to the owner (``Agents.remote``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ucs import events as ev
from ucs.agents.agent import Agent
from ucs.agents.membership import Change
from ucs.agents.persist import STATE, Saver
from ucs.agents.reconcile import Reconciler
from ucs.agents.transitions import LOGOUT, OFFLINE, READY, Target, step
from ucs.constants import AgentStatus
from ucs.directory.model import Line, User
from ucs.error import InvalidDataInput, PBXError, UCSError

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class Logins:
    """``login``, ``logout`` and ``session_expired`` of :class:`~ucs.agents.service.Agents`,
    on its roster (``roster``: by user id, ``by_device``: by phone), under its locks."""

    def __init__(self, agents: Agents, roster: dict[int, Agent], by_device: dict[str, Agent],
                 reconciler: Reconciler, saver: Saver) -> None:
        self._agents = agents
        self._roster = roster
        self._by_device = by_device
        self._reconcile = reconciler
        self._saver = saver
        self.log = agents.log  # the service's: its log lines keep their namespace

    async def login(self, user: User, line: Line, *, session: Any = None) -> Agent:
        """Make ``user`` an agent on ``line`` and take them to the initial status.

        Logging in again on the same line returns the agent as it is; on
        another line the memberships move to the new phone, status kept.
        The agent exists (OFFLINE, ``EVENT_AGENT_LOGIN``) before the initial
        status is carried out; if the hook blocks it or Asterisk refuses, the
        agent stays logged in and OFFLINE (logged; the bar can retry).
        """
        agents = self._agents
        if not isinstance(user, User) or not isinstance(line, Line):
            raise InvalidDataInput("login needs a directory user and line")
        if agents.remote is not None:  # issue 20: a standby; the owner's agents log in
            return await agents.remote.login(user, line, session=session)  # type: ignore[no-any-return]

        async def run() -> Agent:
            other = self._by_device.get(line.device)
            if other is not None and other.user.id != user.id:
                raise InvalidDataInput({"line": f"line {line.id} ({line.device}) is paired with agent "
                                                f"{other.user.username}; choose another phone"})
            agent = self._roster.get(user.id)
            if agent is not None:
                if agent.line.device != line.device:
                    await self.move(agent, line)
                return agent
            now = agents.now()
            agent = Agent(agents, user, line, agents.figures.of(user.id), now)
            self._roster[user.id] = agent
            self._by_device[line.device] = agent
            self._reconcile.paired(line.device)
            agents.save_state(agent)
            self.log.info("agent {user} logged in on {device}", user=user.username, device=line.device)
            agents.bus.publish(ev.EVENT_AGENT_LOGIN, agent, session=session)
            agents.bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=line)
            if agents.initial_status != OFFLINE:
                try:
                    await agents._request(agent, agents.initial_status, agents.initial_reason, configured=True)
                except UCSError as e:
                    self.log.warn("agent {user} stays OFFLINE after login: {why}", user=user.username, why=str(e))
            return agent

        return await agents.serial(user.id, run)

    async def logout(self, user_id: int, reason: str = "") -> None:
        """Remove the agent's phone from every queue, OFFLINE, and the agent is gone.

        If Asterisk cannot be reached the agent is logged out anyway and the
        memberships left behind are removed when it is back.
        """
        agents = self._agents
        if agents.remote is not None:  # issue 20: a standby; the owner's agents log out
            await agents.remote.logout(user_id, reason)
            return

        async def run() -> None:
            agent = agents.agent(user_id)
            step(agent.status, LOGOUT)  # → OFFLINE from any status: QueueRemove everywhere
            agents.wrapup.cancel(agent)
            try:
                await agents.apply(agent, OFFLINE, "")
            except PBXError as e:
                left = {c.queue for c in agents._changes(agent, READY, "")} | agent.applied
                self._reconcile.add_orphans((q, agent.device) for q in left
                                            if agents.members.member(q, agent.device) is not None)
                self.log.warn("agent {user} logged out, but Asterisk could not be told ({why}); "
                              "their memberships are removed when it is back", user=agent.user.username, why=str(e))
            agents.commit(agent, OFFLINE, "")
            agent.accrue(agents.now())
            agent.gone = True
            del self._roster[user_id]
            if self._by_device.get(agent.device) is agent:
                del self._by_device[agent.device]
            agents.figures.save(agent.user.id)
            self._saver.delete(STATE, str(user_id))
            self.log.info("agent {user} logged out{why}", user=agent.user.username, why=f" ({reason})" if reason else "")
            # The phone let go first, then the logout: whoever keeps agents from these events (a
            # cluster's standbys, issue 20) ends with the agent gone, not re-added without a phone.
            agents.bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=None)
            agents.bus.publish(ev.EVENT_AGENT_LOGOUT, agent, reason=reason)

        await agents.serial(user_id, run)

    async def session_expired(self, user_id: int) -> None:
        """The agent's last agent bar went away and did not come back: nobody can see
        a call ring, so the agent stops taking queue calls, as ``session_expiry``
        says — logged out of every queue, or AUX with ``session_expiry_reason``
        (its queues paused; the agent finds that status when they log in again).
        Nothing for a user who is not logged in as an agent."""
        agents = self._agents
        if agents.remote is not None:  # issue 20: a standby; the owner's agent stops taking calls
            await agents.remote.session_expired(user_id)
            return
        agent = agents.get(user_id)
        if agent is None:
            return
        if agents.session_expiry == "logout":
            self.log.info("agent {user}: the agent bar did not come back; logged out", user=agent.user.username)
            await agents.logout(user_id, "the agent bar did not come back")
            return

        async def run() -> None:
            current = agents.get(user_id)
            if current is None or (current.status, current.reason) == (AgentStatus.AUX, agents.session_expiry_reason):
                return
            self.log.info("agent {user}: the agent bar did not come back; AUX ({reason})",
                          user=current.user.username, reason=agents.session_expiry_reason)
            await agents._request(current, AgentStatus.AUX, agents.session_expiry_reason, configured=True)

        await agents.serial(user_id, run)

    async def move(self, agent: Agent, line: Line) -> None:
        """Re-pair: memberships leave the old phone and come to the new one."""
        agents = self._agents
        old = agent.device
        await agents.members.apply(old, agent.user.name,
                                   [Change(c.queue, Target(False)) for c in agents._changes(agent, OFFLINE, "")])
        agent.applied.clear()
        if self._by_device.get(old) is agent:
            del self._by_device[old]
        agent.line = line
        agent.live_legs.clear()
        agent.held.clear()  # the old phone's calls are no longer followed: no wrap-up after them
        self._by_device[line.device] = agent
        agents.save_state(agent)
        agents.bus.publish(ev.EVENT_AGENT_DEVICE, agent, line=line)
        try:
            await agents.apply(agent, agent.status, agent.reason)
        except PBXError as e:
            self.log.warn("agent {user}: memberships not added on the new phone {device}: {why}",
                          user=agent.user.username, device=line.device, why=str(e))
            raise
