"""What the owner tells the standbys beyond its bus: agents' figures that changed quietly.

Why (issue 20, bars on standbys): a standby knows an agent from the owner's agent
envelopes, and an agent's envelope goes out when its bus tells an agent event.  But
the agent's *figures* also change on call events that tell no agent event: a leg
on its phone begins (the phone is busy: READY time stops being idle time) or ends
and is counted (calls answered, talk time).  Without this, ``state().user`` on a
standby said the figures as of the agent's last status change.

So the owner hears its call events and, once the whole dispatch of each is over
(the agents count a leg *after* the bus was told the call: ``UCSServer._wire``),
tells the agents whose figures moved -- their phone busy or not, a leg counted,
an external transfer settled -- as :data:`~ucs.cluster.codec.AGENT_QUIET`
envelopes (the whole agent, like every agent envelope; the stream carries its raw
figures, so a standby adds the time since then itself:
:meth:`ucs.cluster.mirror.MirrorAgent.to_dict`).  An agent event tells the figures
too, so one that came meanwhile leaves nothing to tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ucs.calls.call import Call
from ucs.cluster.codec import AGENT_QUIET

#: The figures a counted leg or a settled transfer moves (each counted leg adds one of the four).
_COUNTS = ("in_calls_answered", "in_calls_unanswered", "out_calls_answered", "out_calls_unanswered",
           "transferred", "transferred_external")


def _mark(agent: Any) -> tuple[Any, ...]:
    """What, when it changed, makes the agent's figures worth telling again."""
    return (agent.busy, *(getattr(agent.stats, name) for name in _COUNTS))


class QuietAgents:
    """The owner's agents whose figures changed without an agent event, told to the standbys.

    ``agents`` is the node's own :class:`~ucs.agents.service.Agents` (``by_device``,
    ``local``); ``tell(name, agent)`` gives an envelope to the owner's feed (nothing
    while the node is a standby)."""

    def __init__(self, agents: Any, clock: Any, tell: Callable[[str, Any], Any]) -> None:
        self._agents = agents
        self._clock = clock
        self._tell = tell
        #: Each agent's mark as last told (by an agent event or by this).
        self._told: dict[int, tuple[Any, ...]] = {}
        self._pending: set[int] = set()
        self._due: Any = None

    def heard(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        """Every event of the node's own bus (``subscribe_all``)."""
        if name.startswith("agent."):
            uid = getattr(getattr(subject, "user", None), "id", None)
            if uid is None:
                return
            if name == "agent.logout":
                self._told.pop(uid, None)
            elif hasattr(subject, "stats"):
                self._told[uid] = _mark(subject)  # its envelope carries the figures as they are
        elif name.startswith("call.") and isinstance(subject, Call):
            for leg in subject.legs.values():
                agent = self._agents.by_device(leg.device) if leg.device else None
                if agent is not None:
                    self._pending.add(agent.user.id)
            if self._pending and self._due is None:
                self._due = self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._due = None
        pending, self._pending = self._pending, set()
        for uid in sorted(pending):
            agent = self._agents.local(uid)
            if agent is None:
                continue
            mark = _mark(agent)
            if self._told.get(uid) != mark:
                self._told[uid] = mark
                self._tell(AGENT_QUIET, agent)
