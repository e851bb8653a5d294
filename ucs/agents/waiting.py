"""Per-queue figures an agent sees live: callers waiting in each of its queues
now, and since when the one who has waited longest is waiting.

Read from the PBX model's queue callers (what Asterisk says, :class:`ucs.pbx.model.Queue`),
never counted separately, so they are right after a resync too.  ``oldest`` is the
join time of the longest-waiting caller (seconds since the epoch, the server's clock:
the reply's ``now`` lets a bar with another clock count the wait up by itself).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from ucs.directory.directory import Directory
from ucs.error import InvalidState
from ucs.pbx.pbx import PBX


class QueueFigures:
    def __init__(self, directory: Directory, pbx: PBX, clock: IReactorTime) -> None:
        self._directory = directory
        self._pbx = pbx
        self._clock = clock

    def of(self, user_id: int) -> dict[str, Any]:
        """``{"now", "queues": [{queue_id, name, waiting, oldest, longestWait}]}`` for the user's queues."""
        user = self._directory.users.get(user_id)
        if user is None:
            raise InvalidState(f"user {user_id} does not exist")
        now = self._clock.seconds()
        out = []
        for queue, _ in self._directory.queues_of(user):
            pq = self._pbx.queues.get(queue.asterisk_name)
            callers = list(pq.callers.values()) if pq is not None else []
            oldest = min((c.joined for c in callers), default=None)
            out.append({
                "queue_id": queue.id, "name": queue.name, "waiting": len(callers),
                "oldest": oldest, "longestWait": max(0.0, now - oldest) if oldest is not None else 0.0,
            })
        return {"now": now, "queues": out}
