"""Deferreds that wait for a state machine to reach a state.

The election (:mod:`ucs.cluster.election`) and the owner's duty
(:mod:`ucs.cluster.duty`) are transition tables whose callers -- the node, the
tests -- wait for a state ("owner", "standby") rather than poll for it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed


class StateWaiters:
    def __init__(self) -> None:
        self._waiting: list[tuple[str, Deferred[None]]] = []

    def when(self, current: str, state: str) -> Deferred[None]:
        """Fires when the machine, now in ``current``, is in ``state`` (at once if it is)."""
        if current == state:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append((state, d))
        return d

    def entered(self, state: str) -> None:
        """The machine has just entered ``state``: its waiters fire."""
        for waiter in [w for w in self._waiting if w[0] == state]:
            self._waiting.remove(waiter)
            waiter[1].callback(None)
