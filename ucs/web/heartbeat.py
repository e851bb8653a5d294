"""The agent bars' keep-alive: one timer for every connection.

A bar whose network vanished without a FIN (a laptop lid shut, a VPN dropped)
holds its session until something notices.  Every ``interval`` seconds each
connection gets a WebSocket ping, and one that has sent nothing at all — no
pong, no request — within ``timeout`` seconds of its ping is dropped.

autobahn's own auto-ping gives each connection two timers per beat (the next
ping, the pong's deadline) and, through txaio's batched timer that rounds them
to whole seconds, fired all the pings of one second in one reactor turn: at
10,000 bars 500 pings, a 50 ms stall every second, and 20 s-lived timer objects
for the garbage collector to walk.  Here the connections are dealt round-robin
into ``interval / tick`` slots and one looping call visits the next slot each
tick: a ping to each of its connections, and a look at the slot pinged
``timeout`` ago.  Nothing is allocated per connection per beat.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class Beating(Protocol):
    """What the heartbeat needs of a connection."""

    #: When the peer was last heard from (any frame), and when it was last pinged.
    heard: float
    pinged: float | None

    def ping(self) -> None: ...
    def timed_out(self, silent_for: float) -> None: ...


class Heartbeat:
    log = Logger()

    #: Seconds between two visits of the looping call.
    TICK = 0.1

    def __init__(self, clock: IReactorTime, interval: float, timeout: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"heartbeat interval and timeout must be positive, not {interval!r} and {timeout!r}")
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        n = max(1, round(interval / self.TICK))
        self.tick = interval / n
        self._slots: list[dict[Beating, None]] = [{} for _ in range(n)]
        self._slot_of: dict[Beating, int] = {}
        self._deal = 0  # the slot the next new connection goes to
        self._at = 0    # the slot the next tick pings
        #: How many slots behind the pinged one a tick looks for silence: the slot
        #: pinged ``timeout`` ago (modulo the interval: a slot pinged a whole
        #: number of intervals ago was pinged ``timeout`` ago, once).
        self._lag = math.ceil(timeout / self.tick) % n
        self._loop = LoopingCall(self._beat)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.tick, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def __len__(self) -> int:
        return len(self._slot_of)

    def add(self, conn: Beating) -> None:
        if conn in self._slot_of:
            return
        conn.heard = self.clock.seconds()
        conn.pinged = None
        slot = self._deal
        self._deal = (slot + 1) % len(self._slots)
        self._slots[slot][conn] = None
        self._slot_of[conn] = slot

    def remove(self, conn: Beating) -> None:
        slot = self._slot_of.pop(conn, None)
        if slot is not None:
            self._slots[slot].pop(conn, None)

    def _beat(self) -> None:
        now = self.clock.seconds()
        n = len(self._slots)
        at = self._at
        self._at = (at + 1) % n
        if self._lag:
            self._look(self._slots[(at - self._lag) % n], now)
        slot = self._slots[at]
        self._look(slot, now)  # a timeout of whole intervals ends on a ping's visit
        for conn in list(slot):
            if conn.pinged is None or conn.heard >= conn.pinged:  # the last ping was answered
                conn.pinged = now
                try:
                    conn.ping()
                except Exception:
                    self.log.failure("heartbeat ping failed")

    def _look(self, slot: dict[Beating, None], now: float) -> None:
        """Drop the connections of ``slot`` silent since a ping ``timeout`` ago."""
        deadline = now - self.timeout + self.tick / 2  # a slot is visited within half a tick of its time
        silent = [c for c in slot if c.pinged is not None and c.heard < c.pinged <= deadline]
        for conn in silent:
            self.remove(conn)
            try:
                conn.timed_out(now - conn.heard)
            except Exception:
                self.log.failure("dropping a silent connection failed")

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self), "slots": len(self._slots), "tick": self.tick}
