"""Waiting-caller counts: which groups of agents get one now, and handing them out.

Every READY agent whose user has the same set of queues has the same count, so a
count is worked out once per group (:class:`~ucs.web.index.ConnectionIndex`'s
``by_queues``).  :class:`WaitingPacer` holds a group back after it was sent one:
N agents get a new count at most every ``N / waiting_rate`` seconds (500 agents:
every 2 s), so that the messages a second stay bounded however many agents a
queue has.  :class:`SendQueue` hands the counts to their connections a few
hundred a reactor turn, so that a flush to thousands of bars does not hold up
the call events that come meanwhile.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ucs.web.connection import Connection
from ucs.web.index import ConnectionIndex
from ucs.web.messages import Outgoing
from ucs.web.options import WebOptions

#: Waiting-caller messages handed to connections in one reactor turn at most: 250
#: writes are about 10 ms, short enough for a call event that arrives meanwhile
#: (500 were 25–40 ms at 10,000 bars, bench/README.md).
SENDS_PER_TURN = 250


class WaitingPacer:
    """When each set of queues may next be sent a waiting-caller count."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next: dict[frozenset[int], float] = {}

    def holding(self, now: float) -> bool:
        """Whether a group is held back: it gets its count only when its time comes."""
        return any(t > now for t in self.next.values())

    def due(self, index: ConnectionIndex, count: Callable[[int], int], now: float,
            options: WebOptions) -> tuple[dict[int, list[Connection]], bool]:
        """The connections to tell each count (those not told it yet, of the groups
        whose turn it is), and whether a group was held back for later."""
        # One count per set of queues (all its agents have the same), then one message
        # per distinct count, to the connections not told it yet.
        due: dict[int, list[Connection]] = {}
        paced = self.next
        later = False
        for queues, conns in index.by_queues.items():
            if paced.get(queues, 0.0) > now:
                later = True
                continue
            first = next(iter(conns))
            uid = first.session.user_id if first.session is not None else None
            if uid is None:
                continue
            n = count(uid)
            if index.told.get(queues) == n:
                continue
            index.told[queues] = n
            sent = 0
            for conn in conns:
                if conn.last_waiting != n:
                    conn.last_waiting = n
                    due.setdefault(n, []).append(conn)
                    sent += 1
            if sent:
                paced[queues] = now + max(options.coalesce_delay, len(conns) / options.waiting_rate)
        if len(paced) > 2 * len(index.by_queues) + 16:
            for queues in [q for q, t in paced.items() if t <= now]:
                del paced[queues]
        return due, later


class SendQueue:
    """Counts still to hand to their connections, :data:`SENDS_PER_TURN` a turn."""

    __slots__ = ("_clock", "_sending", "_sends", "_sent_of_first")

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        # Counts waiting to be handed out: (message, its connections), and how far
        # into the first group it got — a group, not one tuple per connection, so
        # that a flush to 10,000 bars leaves no 10,000 objects for the GC to walk.
        self._sends: deque[tuple[Outgoing, list[Connection]]] = deque()
        self._sent_of_first = 0
        self._sending: Any = None

    def __bool__(self) -> bool:
        """Whether anything is still to be handed out."""
        return bool(self._sends)

    def add(self, out: Outgoing, group: list[Connection]) -> None:
        self._sends.append((out, group))

    def send_some(self) -> None:
        """Hand queued counts to their connections, :data:`SENDS_PER_TURN` at a
        time: thousands of writes in one reactor turn would hold up the call
        events that came meanwhile."""
        sends = self._sends
        budget = SENDS_PER_TURN
        while sends and budget:
            out, group = sends[0]
            start = self._sent_of_first
            end = min(len(group), start + budget)
            for i in range(start, end):
                group[i].send(out, "waitingCallers")
            budget -= end - start
            if end == len(group):
                sends.popleft()
                self._sent_of_first = 0
            else:
                self._sent_of_first = end
        if sends and (self._sending is None or not self._sending.active()):
            self._sending = self._clock.callLater(0, self.send_some)

    def clear(self) -> None:
        if self._sending is not None and self._sending.active():
            self._sending.cancel()
        self._sending = None
        self._sends.clear()
        self._sent_of_first = 0
