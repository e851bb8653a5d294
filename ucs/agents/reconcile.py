"""Reconciliation: every agent's memberships put back as its status says.

After Asterisk restarts, the AMI link resyncs (``resynced``), UCS starts, or a
user's queues change, each agent's memberships are brought back to its
status (READY and AUX alike: the ``resync`` row of
:data:`ucs.agents.transitions.MACHINE`); a wrap-up whose time ran out while
UCS was away ends (``acw over``), and a held call that ended meanwhile gets
its wrap-up now (once the PBX model has been filled from Asterisk's lists).

Directory changes: a user whose queues changed is reconciled (suspensions of
queues no longer theirs dropped); a deleted user or paired line logs out.

*Orphans* are memberships nobody owns any more: a logout that could not
reach Asterisk, or a stored agent that could not come back (user or line
gone).  They are saved (``agents.state`` / ``orphans``) and removed at the
next reconciliation; a device paired again meanwhile is no orphan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ucs.agents.agent import Agent
from ucs.agents.membership import Change
from ucs.agents.persist import ORPHANS, STATE, Saver
from ucs.agents.transitions import ACW_OVER, BACK, READY, RESYNC, Target, step
from ucs.error import PBXError
from ucs.pbx.pbx import PBX

if TYPE_CHECKING:
    from ucs.agents.service import Agents


class Reconciler:
    log = Logger()

    def __init__(self, agents: Agents, pbx: PBX, saver: Saver) -> None:
        self._agents = agents
        self._pbx = pbx
        self._saver = saver
        #: (Asterisk queue, device) memberships still to remove.
        self.orphans: set[tuple[str, str]] = set()
        #: The PBX model has been filled from Asterisk's lists at least once: a
        #: held leg it does not have ended while UCS was not listening.
        self.pbx_synced = False

    # -- orphans ----------------------------------------------------------------------

    def load_orphans(self, doc: Any) -> None:
        self.orphans = {(q, d) for q, d in doc if isinstance(q, str) and isinstance(d, str)} if isinstance(doc, list) else set()

    def add_orphans(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.orphans |= set(pairs)
        self.save_orphans()

    def paired(self, device: str) -> None:
        """``device`` belongs to an agent again: its memberships are theirs."""
        self.orphans = {o for o in self.orphans if o[1] != device}

    def save_orphans(self) -> None:
        if self.orphans:
            self._saver.put(STATE, ORPHANS, sorted([q, d] for q, d in self.orphans))
        else:
            self._saver.delete(STATE, ORPHANS)

    # -- reconciliation -----------------------------------------------------------------

    async def reconcile(self) -> None:
        """Put every agent's memberships back as its status says; remove orphans."""
        agents = self._agents
        tasks = [agents.spawn(agents.serial(a.user.id, self.of(a, settle_held=self.pbx_synced)),
                              f"reconcile {a.user.username}")
                 for a in agents.all()]
        for device in {d for _, d in self.orphans}:
            if agents.by_device(device) is not None:
                self.paired(device)
                continue
            queues = sorted(q for q, d in self.orphans if d == device)
            try:
                await agents.members.apply(device, "", [Change(q, Target(False)) for q in queues])
            except PBXError as e:
                self.log.warn("agents: memberships of {device} left by a logout still cannot be removed: {why}",
                              device=device, why=str(e))
                continue
            self.paired(device)
        self.save_orphans()
        for d in tasks:
            await d

    def of(self, agent: Agent, *, settle_held: bool = False) -> Callable[[], Awaitable[None]]:
        """One agent's reconciliation, to run with its lock held."""
        agents = self._agents

        async def run() -> None:
            if agent.gone or not agents.running:
                return  # logged out, or UCS is stopping: the next start reconciles
            if settle_held:
                for uid in sorted(agent.held - set(self._pbx.channels)):
                    await agents.wrapup.wrap_up(agent, uid)  # the call ended while UCS was away: its wrap-up now
                if agent.gone:
                    return
            try:
                if (agent.acw_until is not None and agents.now() >= agent.acw_until
                        and step(agent.status, ACW_OVER).next == BACK  # the wrap-up ended while UCS was away
                        and agents.wrapup.reason_missing(agent) is None):  # (else held for its call reason)
                    back_status, back_reason = agent.acw_return or (READY, "")
                    await agents.carry(agent, back_status, back_reason)
                else:
                    step(agent.status, RESYNC)
                    await agents.apply(agent, agent.status, agent.reason)
            except PBXError as e:
                if agents.running:
                    self.log.warn("agents: {user}'s memberships could not be put back: {why}",
                                  user=agent.user.username, why=str(e))

        return run

    # -- directory changes ----------------------------------------------------------------

    def user_changed(self, user: Any, args: dict[str, Any]) -> None:
        agents = self._agents
        agent = agents.get(getattr(user, "id", -1))
        if agent is None:
            return
        if args.get("action") == "delete":
            agents.spawn(agents.logout(agent.user.id, "user deleted"), f"logout of deleted user {agent.user.username}")
            return
        agent.suspended &= set(agent.user.queues)
        agents.spawn(agents.serial(agent.user.id, self.of(agent)), f"queues of {agent.user.username}")

    def config_changed(self, entity: Any, args: dict[str, Any]) -> None:
        agents = self._agents
        if args.get("kind") == "lines" and args.get("action") == "delete":
            agent = agents.by_device(getattr(entity, "device", ""))
            if agent is not None and agent.line is entity:
                agents.spawn(agents.logout(agent.user.id, "line deleted"), f"logout from deleted line {entity.device}")
