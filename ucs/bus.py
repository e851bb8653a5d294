"""The events bus: how the domain tells everyone else what happened.

The PBX model, the call tracker, the agents and the directory publish named
events (``ucs.events``); the agent bar, the Interaction Processor, metrics and
customer plugins (``ucs.addCallback``) subscribe.  A subscriber is called
``fn(subject, args)``, as seed 000's plugins expect.  A subscriber that raises
is logged and the others still run: nothing a plugin does in a callback may
stop the tracker.

The bus knows no domain: it is below the PBX model, the calls and the agents,
which publish on it (the tracker's and the model's facts through
:class:`ucs.calls.publisher.DomainPublisher`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

Subscriber = Callable[[Any, dict[str, Any]], Any]
Watcher = Callable[[str, Any, dict[str, Any]], Any]


class EventBus:
    log = Logger()

    def __init__(self) -> None:
        self._subs: dict[str, list[Subscriber]] = {}
        self._all: list[Watcher] = []
        self.published = 0

    def subscribe(self, name: str, fn: Subscriber) -> None:
        self._subs.setdefault(name, []).append(fn)

    def unsubscribe(self, name: str, fn: Subscriber) -> bool:
        subs = self._subs.get(name)
        if subs and fn in subs:
            subs.remove(fn)
            return True
        return False

    def subscribe_all(self, fn: Watcher) -> None:
        """``fn(name, subject, args)`` for every event (the WebSocket fan-out, metrics)."""
        self._all.append(fn)

    def unsubscribe_all(self, fn: Watcher) -> None:
        if fn in self._all:
            self._all.remove(fn)

    def publish(self, name: str, subject: Any = None, **args: Any) -> None:
        self.published += 1
        for fn in tuple(self._subs.get(name, ())):
            try:
                fn(subject, args)
            except Exception:
                self.log.failure("subscriber {fn!r} of {name} failed", fn=fn, name=name)
        for watcher in tuple(self._all):
            try:
                watcher(name, subject, args)
            except Exception:
                self.log.failure("watcher {fn!r} failed on {name}", fn=watcher, name=name)
