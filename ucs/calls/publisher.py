"""The PBX model's and the call tracker's facts, put on the events bus.

One :class:`DomainPublisher` per server: the container puts it in the model's
and the tracker's observer lists (``ucs.server``), where its place says which
observers hear a call's change before the bus (plugins, the agent bar) does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ucs import events as ev
from ucs.bus import EventBus
from ucs.calls.call import Call
from ucs.calls.tracker import CallObserver
from ucs.calls.view import state_event
from ucs.pbx.model import Device, Member, Queue
from ucs.pbx.observer import PBXObserver


class DomainPublisher(PBXObserver, CallObserver):
    """Puts the PBX model's and the tracker's facts on the bus, as the events of
    ``ucs.events``: a call's changes become new / ringing / connect / hold /
    resume / mute / unmute / transfer / hangup.

    ``unpublished`` is told each change of a call that puts no event on the bus (a
    phone that starts ringing inside a call that goes on changes no call-level
    fact): the agent bar's hub, whose phones' views may still change.  So the hub
    hears each of the tracker's changes once, from here, in the publisher's place
    among the tracker's observers.
    """

    def __init__(self, bus: EventBus, unpublished: Callable[[Call], Any] | None = None) -> None:
        self._bus = bus
        self.unpublished = unpublished
        self._seen: dict[str, tuple[int, bool, bool, str, int, bool, int, str]] = {}
        self._held: set[str] = set()  # calls on hold until they are connected again

    # calls

    def call_created(self, call: Call) -> None:
        self._seen[call.uniqueid] = self._look(call)
        self._bus.publish(ev.EVENT_CALL_NEW, call)
        self._publish_changes(call)

    def call_changed(self, call: Call) -> None:
        if not self._publish_changes(call) and self.unpublished is not None:
            self.unpublished(call)

    def _publish_changes(self, call: Call) -> bool:
        """Publish what changed since the call was last seen; whether anything did."""
        before = self._seen.get(call.uniqueid)
        now = self._look(call)
        self._seen[call.uniqueid] = now
        if before is None:
            before = (-1, False, False, "", 0, False, 0, "")
        state, caller_muted, connected_muted, connected_channel, transfers, _, _, _ = now
        publish = self._bus.publish
        # Hold by redirect passes through "suspended" (no bridge) on its way back:
        # held until connected again.
        name = state_event(state, before[0], held=call.uniqueid in self._held)
        if name == ev.EVENT_CALL_RESUME:
            self._held.discard(call.uniqueid)
        elif name == ev.EVENT_CALL_HOLD:
            self._held.add(call.uniqueid)
        if name is not None:
            publish(name, call)
        if caller_muted != before[1]:
            publish(ev.EVENT_CALL_MUTE if caller_muted else ev.EVENT_CALL_UNMUTE, call, party="caller")
        if connected_muted != before[2]:
            publish(ev.EVENT_CALL_MUTE if connected_muted else ev.EVENT_CALL_UNMUTE, call, party="connected")
        if transfers > before[4]:
            last = call.transfers[-1]
            publish(ev.EVENT_CALL_TRANSFER, call, kind=last.get("kind", ""), to=last.get("to", ""))
        if now != before:
            publish(ev.EVENT_CALL_CHANGE, call)
        return now != before

    def call_ended(self, call: Call) -> None:
        self._seen.pop(call.uniqueid, None)
        self._held.discard(call.uniqueid)
        self._bus.publish(ev.EVENT_CALL_HANGUP, call)

    @staticmethod
    def _look(call: Call) -> tuple[int, bool, bool, str, int, bool, int, str]:
        m = call.monitoring  # a monitoring session: whose call it spies on, told once known
        return (int(call.state), call.caller_muted, call.connected_muted, call.connected_channel,
                len(call.transfers), call.recording, len(call.recordings),
                "" if m is None else f"{m.get('mode')} {m.get('call')} {m.get('device')}")

    # the PBX

    def member_added(self, member: Member) -> None:
        self._bus.publish(ev.EVENT_MEMBER_ADDED, member)

    def member_changed(self, member: Member, previous: Member) -> None:
        self._bus.publish(ev.EVENT_MEMBER_CHANGED, member, previous=previous)

    def member_removed(self, member: Member) -> None:
        self._bus.publish(ev.EVENT_MEMBER_REMOVED, member)

    def device_changed(self, device: Device) -> None:
        self._bus.publish(ev.EVENT_DEVICE_CHANGED, device)

    def queue_caller_joined(self, queue: Queue, ch: Any) -> None:
        self._bus.publish(ev.EVENT_QUEUE_WAITING, queue, waiting=len(queue.callers))

    def queue_caller_left(self, queue: Queue, ch: Any, abandoned: bool) -> None:
        self._bus.publish(ev.EVENT_QUEUE_WAITING, queue, waiting=len(queue.callers))

    def pbx_restarted(self) -> None:
        self._bus.publish(ev.EVENT_PBX_RESTARTED)

    def resynced(self) -> None:
        self._bus.publish(ev.EVENT_PBX_RESYNCED)
