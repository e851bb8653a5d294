"""Rebuilding the PBX model from what Asterisk reports, and forgetting it all.

Why a module of its own: after a (re)connect (``ucs.pbx.link``) the model is
made equal to the answers of the list actions (a :class:`Snapshot`), and when
Asterisk shuts down everything it had is gone.  Both touch every part of the
model at once -- channels and bridges, queue members and callers, devices --
yet run once per connection, not per event.  :class:`Resync` does both,
through the same steps as the events would (the Newstate handler, the
queue and device handlers it is given), so observers see ordinary domain
events and need no resync path of their own.
"""

from __future__ import annotations

import attrs

from ucs.ami.message import Message
from ucs.pbx.devices import DeviceEvents
from ucs.pbx.model import Channel, QueueCaller
from ucs.pbx.queues import QueueEvents
from ucs.pbx.state import Handler, PBXState, int_field


@attrs.define
class Snapshot:
    """What the list actions answered after a (re)connect; see :meth:`ucs.pbx.pbx.PBX.resync`.

    Each list holds the events of one event-list action.  ``None`` means the
    action was not available (``PJSIPShowEndpoints`` without PJSIP), so that
    part of the model is left as it is.
    """

    channels: list[Message] | None = None
    queues: list[Message] | None = None
    device_states: list[Message] | None = None
    sip_peers: list[Message] | None = None
    pjsip_endpoints: list[Message] | None = None


class Resync:
    """``newstate`` applies a ``Newstate``-like message to a known channel
    (the model's own handler); ``queues`` and ``devices`` are the model's
    other handler groups."""

    def __init__(self, pbx: PBXState, newstate: Handler, queues: QueueEvents, devices: DeviceEvents) -> None:
        self._pbx = pbx
        self._newstate = newstate
        self._queues = queues
        self._devices = devices

    # -- restarts -------------------------------------------------------------------

    def shutdown(self, msg: Message) -> None:
        """``Shutdown``: Asterisk is going away with every call it had."""
        self.clear(cause=0)
        self._pbx._emit("pbx_restarted")

    def clear(self, cause: int = 0) -> None:
        """See :meth:`ucs.pbx.pbx.PBX.clear`."""
        pbx = self._pbx
        for ch in list(pbx.channels.values()):
            pbx._remove_channel(ch)
            pbx._emit("channel_hungup", ch, cause, "Asterisk restarted")
        pbx.bridges.clear()
        for q in pbx.queues.values():
            for iface in [i for i, m in q.members.items() if m.membership != "static"]:
                pbx._emit("member_removed", q.members.pop(iface))
            q.callers.clear()

    # -- resync ---------------------------------------------------------------------

    def resync(self, snap: Snapshot, *, done: bool = True) -> None:
        """See :meth:`ucs.pbx.pbx.PBX.resync`."""
        now = self._pbx._clock.seconds()
        if snap.channels is not None:
            self._resync_channels(snap.channels, now)
        if snap.queues is not None:
            self._resync_queues(snap.queues, now)
        devices = self._devices
        for entry in snap.device_states or ():
            devices.device_state(entry)
        for entry in snap.sip_peers or ():
            devices.sip_peer(entry)
        for entry in snap.pjsip_endpoints or ():
            devices.pjsip_endpoint(entry)
        if done:
            self.resync_done()

    def resync_done(self) -> None:
        """See :meth:`ucs.pbx.pbx.PBX.resync_done`."""
        self._pbx._emit("resynced")

    def _resync_channels(self, entries: list[Message], now: float) -> None:
        pbx = self._pbx

        def creation_order(e: Message) -> tuple[int, int]:
            epoch, _, seq = e["Uniqueid"].partition(".")
            return (int_field(epoch), int_field(seq))

        ordered = sorted((e for e in entries if e.get("Uniqueid")), key=creation_order)
        seen: dict[str, Message] = {e["Uniqueid"]: e for e in ordered}
        for uid in [u for u in pbx.channels if u not in seen]:
            gone = pbx.channels[uid]
            pbx._remove_channel(gone)
            pbx._emit("channel_hungup", gone, 0, "gone while the AMI link was down")
        for uid, entry in seen.items():
            ch: Channel | None = pbx.channels.get(uid)
            if ch is None:
                ch = pbx._create(entry)
                duration = entry.get("Duration", "")
                parts = duration.split(":")
                if len(parts) == 3 and all(p.isdigit() for p in parts):
                    h, m, s = (int(p) for p in parts)
                    ch.created = now - (h * 3600 + m * 60 + s)
                elif entry.get("Seconds", "").isdigit():
                    ch.created = now - int(entry["Seconds"])
                if ch.state == 6:
                    ch.answered = ch.created
            else:
                self._newstate(entry)
            if entry.get("Application") == "ChanSpy" and ch.application != "ChanSpy":
                # A supervisor's monitoring that began while the link was down: the one
                # application the tracker must know of at once (ucs.calls.spying).
                ch.application = "ChanSpy"
                pbx._emit("application", ch, "ChanSpy", entry.get("ApplicationData", ""))
            bid = entry.get("BridgeId") or entry.get("BridgeID") or None
            if bid and ch.bridge != bid:
                pbx._enter(bid, ch)
            elif not bid and ch.bridge is not None:
                pbx._leave(ch.bridge, ch)
        for bid in [b for b, br in pbx.bridges.items() if not br.channels]:
            del pbx.bridges[bid]

    def _resync_queues(self, entries: list[Message], now: float) -> None:
        pbx = self._pbx
        members: dict[tuple[str, str], Message] = {}
        callers: dict[str, list[Message]] = {}
        for e in entries:
            ev = e.get("Event")
            if ev == "QueueParams" and e.get("Queue"):
                q = pbx._queue(e["Queue"])
                q.strategy = e.get("Strategy", q.strategy)
                callers.setdefault(q.name, [])
            elif ev == "QueueMember" and e.get("Queue"):
                iface = e.get("Location") or e.get("Interface") or ""
                if iface:
                    members[(e["Queue"], iface)] = e
            elif ev == "QueueEntry" and e.get("Queue"):
                callers.setdefault(e["Queue"], []).append(e)
        for q in pbx.queues.values():
            for iface in [i for i in q.members if (q.name, i) not in members]:
                pbx._emit("member_removed", q.members.pop(iface))
        for (qname, iface), e in members.items():
            e = dict(e, Queue=qname, Interface=iface)
            self._queues.member_update(e)
        for qname, entries_q in callers.items():
            q = pbx._queue(qname)
            fresh: dict[str, QueueCaller] = {}
            for e in entries_q:
                uid = e.get("Uniqueid") or ""
                ch = pbx.channels.get(uid)
                if ch is None:
                    continue
                existing = q.callers.get(uid)
                wait = int_field(e.get("Wait"))
                fresh[uid] = existing or QueueCaller(
                    uid, ch.name, int_field(e.get("Position"), 1), now - wait, ch.caller_num, ch.caller_name
                )
                fresh[uid].position = int_field(e.get("Position"), fresh[uid].position)
            gone = [uid for uid in q.callers if uid not in fresh]
            added = [uid for uid in fresh if uid not in q.callers]
            q.callers = fresh
            for uid in gone:
                ch = pbx.channels.get(uid)
                if ch is not None:
                    pbx._emit("queue_caller_left", q, ch, False)
            for uid in added:
                pbx._emit("queue_caller_joined", q, pbx.channels[uid])
