"""What survives a restart of UCS: the store's key-value table.

- ``agents.state`` / ``<user id>``: a logged-in agent — paired line, status,
  reason, since, suspended queues, the queues UCS made the phone a member of,
  wrap-up (what to go back to, and when; the calls it will follow), and ``as_of``: the
  time of the service's clock the document describes (issue 20: a cluster's owner sends
  the same document with each agent event, and a new owner keeps whichever of the two is
  newer, :mod:`ucs.cluster.handover`); ``agents.state`` / ``orphans``: queue
  memberships still to remove (a logout while Asterisk was unreachable).
- ``agents.stats`` / ``<user id>``: the user's figures of the day (exact
  floats), up to when time in states was counted (``accrued_until``) and ``as_of``
  (issue 20: a new owner keeps these or the owner's told figures, whichever is newer).

Writes go through one :class:`Saver`: the latest document per key, written
in order by a single writer (up to :data:`BATCH` documents a transaction), so
an older document never overwrites a newer one even on a store with several
connections; :meth:`Saver.flush` waits
until everything handed to it is written.

On a cluster's AMI owner (issue 20) the writes carry the term its ownership began with
(:attr:`Saver.fence`, :class:`ucs.store.base.Fence`): once another node has taken the link
over, the store refuses them, and the Saver -- of a node that is no longer the owner --
says so once, drops what it holds and writes nothing more until it is given a new term (the
node owns the link again and restored its agents).  A single node has no fence.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.agents.agent import Agent
from ucs.agents.transitions import parse_status
from ucs.constants import AgentStatus
from ucs.error import InvalidDataInput
from ucs.interfaces import KVStore
from ucs.store.base import KV_DELETE, Fence
from ucs.store.errors import Fenced

STATE = "agents.state"
STATS = "agents.stats"
ORPHANS = "orphans"

#: Documents written in one transaction at most: a batch is encoded in a store
#: thread, and a smaller one lets a newer document wait less behind it.
BATCH = 200


class Saver:
    log = Logger()

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self._dirty: dict[tuple[str, str], Any] = {}
        self._writing = False
        self._waiters: list[Deferred[None]] = []
        self.written = 0
        self._fence: Fence | None = None
        #: The store refused this Saver's term (:class:`~ucs.store.errors.Fenced`): it writes
        #: nothing more until it is given a term again.
        self.fenced: Fenced | None = None

    @property
    def fence(self) -> Fence | None:
        """The ownership the writes are made under (``None``: not fenced, a single node)."""
        return self._fence

    @fence.setter
    def fence(self, fence: Fence | None) -> None:
        """A new term (or none): written again, under it.  Documents still waiting keep their
        order and go under the new term -- set it before handing over a new owner's documents."""
        self._fence = fence
        self.fenced = None

    def put(self, namespace: str, key: str, value: Any) -> None:
        if self.fenced is not None:
            return  # demoted: the new owner's documents are the truth
        self._dirty.pop((namespace, key), None)  # re-insert: written after the older ones
        self._dirty[(namespace, key)] = value
        self._kick()

    def delete(self, namespace: str, key: str) -> None:
        if self.fenced is not None:
            return
        self._dirty.pop((namespace, key), None)
        self._dirty[(namespace, key)] = KV_DELETE
        self._kick()

    def flush(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if not self._writing and not self._dirty:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def _kick(self) -> None:
        if not self._writing:
            self._writing = True
            Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        try:
            while self._dirty:
                batch = []
                for key in list(itertools.islice(self._dirty, BATCH)):
                    batch.append((key[0], key[1], self._dirty.pop(key)))
                fence = self._fence
                try:
                    if fence is None:
                        await self._store.kv_write(batch)
                    else:
                        await self._store.kv_write(batch, fence=fence)
                    self.written += len(batch)
                except Fenced as e:
                    if fence is not self._fence:
                        continue  # given a new term meanwhile: the next batches go under it
                    self.fenced = e
                    dropped = len(batch) + len(self._dirty)
                    self._dirty.clear()
                    self.log.warn("agents: this node no longer owns the AMI link ({why}): its {n} agent "
                                  "documents waiting ({namespace}/{key} …) are dropped, and it writes no more "
                                  "until it owns the link again -- the new owner's are kept",
                                  why=e, n=dropped, namespace=batch[0][0], key=batch[0][1])
                except Exception:  # noqa: BLE001 - logged; the next save writes the latest again
                    self.log.failure("agents: could not write {n} documents ({namespace}/{key} …) to the store",
                                     n=len(batch), namespace=batch[0][0], key=batch[0][1])
        finally:
            self._writing = False
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)


def state_doc(agent: Agent) -> dict[str, Any]:
    """What :func:`restore_state` puts back, as of now on the agent's service's clock."""
    return {
        "as_of": agent._service.now(),
        "user_id": agent.user.id, "line_id": agent.line.id, "device": agent.line.device,
        "status": agent.status.name, "reason": agent.reason, "since": agent.since,
        "logged_in": agent.logged_in, "suspended": sorted(agent.suspended), "applied": sorted(agent.applied),
        "acw_return": [agent.acw_return[0].name, agent.acw_return[1]] if agent.acw_return else None,
        "acw_until": agent.acw_until, "held": sorted(agent.held),
        "acw_call": agent.acw_call, "acw_queue": agent.acw_queue, "acw_reason": agent.acw_reason,
        "acw_started": agent.acw_started, "acw_held": agent.acw_held,
    }


def restore_state(agent: Agent, doc: dict[str, Any]) -> None:
    """Put a stored state back on a freshly made agent (its user and line already found)."""
    try:
        agent.status = parse_status(doc.get("status", "OFFLINE"))
    except InvalidDataInput:
        agent.status = AgentStatus.OFFLINE
    agent.reason = str(doc.get("reason") or "")
    for name in ("since", "logged_in"):
        value = doc.get(name)
        if isinstance(value, (int, float)):
            setattr(agent, name, float(value))
    agent.suspended = {q for q in doc.get("suspended") or () if isinstance(q, int) and q in agent.user.queues}
    agent.applied = {q for q in doc.get("applied") or () if isinstance(q, str)}
    back = doc.get("acw_return")
    if isinstance(back, list) and len(back) == 2:
        try:
            agent.acw_return = (parse_status(back[0]), str(back[1] or ""))
        except InvalidDataInput:
            agent.acw_return = None
    until = doc.get("acw_until")
    agent.acw_until = float(until) if isinstance(until, (int, float)) else None
    agent.held = {uid for uid in doc.get("held") or () if isinstance(uid, str)}
    call, queue, started = doc.get("acw_call"), doc.get("acw_queue"), doc.get("acw_started")
    agent.acw_call = call if isinstance(call, str) else None
    agent.acw_queue = queue if isinstance(queue, int) and not isinstance(queue, bool) else None
    agent.acw_reason = str(doc.get("acw_reason") or "")
    agent.acw_started = float(started) if isinstance(started, (int, float)) else None
    agent.acw_held = doc.get("acw_held") is True
