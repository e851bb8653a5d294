"""The events bus: how the domain tells everyone else what happened.

The PBX model and the call tracker publish named events (``call.created``,
``call.changed``, ``call.ended``, ``member.changed``, ``device.changed`` …);
the agent bar, the Interaction Processor, metrics and customer plugins
(``ucs.addCallback``) subscribe.  A subscriber that raises is logged and the
others still run: nothing a plugin does in a callback may stop the tracker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ucs.calls.call import Call
from ucs.calls.tracker import CallObserver
from ucs.pbx.model import Device, Member, Queue
from ucs.pbx.observer import PBXObserver

Subscriber = Callable[[str, Any], None]

#: Subscribe to this name to receive every event.
ALL = "*"


class EventBus:
    log = Logger()

    def __init__(self) -> None:
        self._subs: dict[str, list[Subscriber]] = defaultdict(list)
        self.published = 0

    def subscribe(self, name: str, fn: Subscriber) -> None:
        self._subs[name].append(fn)

    def unsubscribe(self, name: str, fn: Subscriber) -> None:
        subs = self._subs.get(name)
        if subs and fn in subs:
            subs.remove(fn)

    def publish(self, name: str, payload: Any) -> None:
        self.published += 1
        for fn in (*self._subs.get(name, ()), *self._subs.get(ALL, ())):
            try:
                fn(name, payload)
            except Exception:
                self.log.failure("subscriber {fn!r} of {name} failed", fn=fn, name=name)


class DomainPublisher(PBXObserver, CallObserver):
    """Puts the PBX model's and the tracker's facts on the bus."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def call_created(self, call: Call) -> None:
        self._bus.publish("call.created", call)

    def call_changed(self, call: Call) -> None:
        self._bus.publish("call.changed", call)

    def call_ended(self, call: Call) -> None:
        self._bus.publish("call.ended", call)

    def member_added(self, member: Member) -> None:
        self._bus.publish("member.added", member)

    def member_changed(self, member: Member, previous: Member) -> None:
        self._bus.publish("member.changed", (member, previous))

    def member_removed(self, member: Member) -> None:
        self._bus.publish("member.removed", member)

    def device_changed(self, device: Device) -> None:
        self._bus.publish("device.changed", device)

    def queue_caller_joined(self, queue: Queue, ch: Any) -> None:
        self._bus.publish("queue.waiting", queue)

    def queue_caller_left(self, queue: Queue, ch: Any, abandoned: bool) -> None:
        self._bus.publish("queue.waiting", queue)

    def pbx_restarted(self) -> None:
        self._bus.publish("pbx.restarted", None)

    def resynced(self) -> None:
        self._bus.publish("pbx.resynced", None)
