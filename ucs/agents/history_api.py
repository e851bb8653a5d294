"""The recent calls' API methods (seed 002 v4.34's call history; :mod:`ucs.agents.history`).

=================  =====  ======  ==================================================
method             role   states  does
=================  =====  ======  ==================================================
``history.list``   agent  READY   ``{calls, missed, seen}``: the filtered recent calls
``history.seen``   agent  READY   the missed calls so far are seen (the badge goes)
=================  =====  ======  ==================================================

``history.list(filters)``: ``filters`` is an object, every key optional:
``direction`` (INCOMING, OUTGOING, INTERNAL), ``result`` (answered, missed,
unanswered, other), ``text`` (in the number, name or queue; any case), ``limit``
(1-100, 30).  Redial is ``call.dial`` with an entry's ``number``.
"""

from __future__ import annotations

from typing import Any

from ucs.agents.history import CallHistory
from ucs.api.registry import Param, Registry
from ucs.constants import Role, SessionState
from ucs.error import InvalidState

READY_ONLY = (SessionState.READY,)


def _user(session: Any) -> Any:
    user = getattr(session, "user", None)
    if user is None:
        raise InvalidState("log in first")
    return user


def register(registry: Registry, history: CallHistory) -> None:
    async def recent(session: Any, filters: dict[str, Any] | None) -> dict[str, Any]:
        """Your recent calls, newest first, filtered; and how many missed calls you have not seen."""
        return await history.recent(_user(session), filters)

    async def seen(session: Any) -> dict[str, Any]:
        """You have seen your missed calls: the count starts again from now."""
        return await history.mark_seen(_user(session))

    registry.add("history.list", recent,
                 (Param("filters", dict, required=False, default=None, nullable=True,
                        doc="{direction, result, text, limit}, each optional"),),
                 role=Role.AGENT, states=READY_ONLY)
    registry.add("history.seen", seen, (), role=Role.AGENT, states=READY_ONLY)
