"""The PBX model: Asterisk's view of the world, fed by AMI events.

:class:`PBX` is the one source of truth for what Asterisk said.  It takes
parsed AMI messages (``feed``), applies each to its maps of channels, bridges,
devices and queues, and tells its observers what changed
(:class:`ucs.pbx.observer.PBXObserver`).  It knows nothing of sockets or of
agents and calls; those are built on top of it.

Events it has no handler for (the dialplan noise that is most of a busy
PBX's traffic) cost one dictionary lookup.  Events from older Asterisk
versions (11–13: no ``Linkedid`` on many events, ``Dial``/``Bridge``/``Join``
events, ``QueueMemberPaused``) are mapped onto the same facts where they can
be, and ignored where they cannot; a malformed event never raises.

The model is in parts, each in a module named after what it holds:

- :mod:`ucs.pbx.state` -- the maps and the bookkeeping every handler shares
  (:class:`~ucs.pbx.state.PBXState`, which :class:`PBX` is built on);
- this module -- the dispatch table, and the handlers of the busiest events:
  channels, bridges, dial, hold and music on hold, transfers;
- :mod:`ucs.pbx.queues` -- queue callers, agents rung, queue members;
- :mod:`ucs.pbx.devices` -- device state, registrations and addresses;
- :mod:`ucs.pbx.resync` -- the rebuild from a :class:`Snapshot`, and
  ``Shutdown``.

The table maps each event name to a bound method of one of them, built once:
an event costs the same lookup and call whichever part handles it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ucs.ami.message import Message
from ucs.pbx.devices import DeviceEvents
from ucs.pbx.model import Bridge, Channel, device_of
from ucs.pbx.observer import PBXObserver
from ucs.pbx.queues import QueueEvents
from ucs.pbx.resync import Resync, Snapshot
from ucs.pbx.state import GONE_MEMORY, Handler, PBXState, SecondsClock, cid_field, int_field

__all__ = ["GONE_MEMORY", "NOISE_EVENTS", "PBX", "SecondsClock", "Snapshot"]


#: Events nothing in UCS reads: the AMI parser drops them before decoding.
#: Dialplan variables alone are about half of a busy PBX's AMI traffic;
#: ``SoftHangupRequest`` (one per hang-up; who hung up is read from the bridge,
#: see ucs.calls.tracker) and ``DialState`` (``DialEnd`` has the outcome) are
#: read by nothing either.  Security events (``SuccessfulAuth``) stay: their
#: ``EventTV`` is the only clock of a capture without timestamps (ucs-replay).
NOISE_EVENTS = frozenset({
    "VarSet", "RTCPSent", "RTCPReceived", "DTMFBegin", "DTMFEnd", "NewAccountCode",
    "AGIExecStart", "AGIExecEnd", "Cdr", "CEL", "SoftHangupRequest", "DialState",
})


class PBX(PBXState):
    def __init__(self, clock: SecondsClock, observers: Iterable[PBXObserver] = ()) -> None:
        super().__init__(clock, observers)
        #: Counts of events by name that had a handler, for metrics.
        self.handled = 0
        self._queue_events = QueueEvents(self)
        self._device_events = DeviceEvents(self)
        self._resync = Resync(self, self._newstate, self._queue_events, self._device_events)
        self._handlers: dict[str, Handler] = {
            "Newchannel": self._newchannel,
            "Newstate": self._newstate,
            "NewCallerid": self._newstate,
            "NewConnectedLine": self._newstate,
            "Rename": self._rename,
            "Masquerade": self._masquerade,
            "Pickup": self._pickup,
            "LocalBridge": self._local_bridge_v11,
            "Hangup": self._hangup,
            "HangupRequest": self._hangup_request,
            "BridgeCreate": self._bridge_create,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "BridgeDestroy": self._bridge_destroy,
            "BridgeMerge": self._bridge_merge,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "Dial": self._dial_v11,
            "Bridge": self._bridge_v11,
            "Hold": self._hold,
            "Unhold": self._unhold,
            "MusicOnHoldStart": self._moh_start,
            "MusicOnHoldStop": self._moh_stop,
            "MixMonitorStart": self._mixmonitor,
            "MixMonitorStop": self._mixmonitor,
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            **self._queue_events.handlers(),
            **self._device_events.handlers(),
            "Newexten": self._newexten,
            "Shutdown": self._resync.shutdown,
            "OriginateResponse": self._originate_response,
            "ChanSpyStart": self._chanspy,
            "ChanSpyStop": self._chanspy,
        }

    def _chanspy(self, msg: Message) -> None:
        """``ChanSpyStart`` / ``ChanSpyStop`` (app_chanspy.c): who is spying on which channel."""
        spyee = self._chan(msg, "SpyeeUniqueid", "SpyeeChannel")
        spyer = self._chan(msg, "SpyerUniqueid", "SpyerChannel")
        uid = spyer.uniqueid if spyer is not None else msg.get("SpyerUniqueid", "")
        if spyee is None or not uid:
            return
        started = msg.get("Event") == "ChanSpyStart"
        if started:
            spyee.spied_by.add(uid)
        else:
            spyee.spied_by.discard(uid)
        self._emit("spy_changed", spyee, spyer, started)

    # -- entry points -------------------------------------------------------

    def feed(self, msg: Message) -> None:
        handler = self._handlers.get(msg.get("Event", ""))
        if handler is not None:
            self.handled += 1
            handler(msg)

    def wanted_events(self) -> frozenset[str]:
        """The event names this model reads; everything else is noise to it."""
        return frozenset(self._handlers)

    def hold_ended(self, uniqueid: str) -> None:
        """The party ``uniqueid``'s channel held has gone: it holds no one any more.
        Asterisk sends an attended transfer's transferer a ``Hold`` and, when the
        caller hangs up during the consultation, never the ``Unhold``
        (``bridge_basic.c``, consulting state): the call tracker says so here."""
        ch = self.channels.get(uniqueid)
        if ch is not None and ch.on_hold:
            ch.on_hold = False

    def set_muted(self, channel_name: str, direction: str, on: bool) -> Channel | None:
        """Record a ``MuteAudio`` that Asterisk confirmed; Asterisk sends no event for it."""
        ch = self.channel_by_name(channel_name)
        if ch is None:
            return None
        if direction in ("in", "all"):
            ch.muted_in = on
        if direction in ("out", "all"):
            ch.muted_out = on
        self._emit("channel_updated", ch, {"Event": "MuteAudio"})
        return ch

    def clear(self, cause: int = 0) -> None:
        """Forget everything Asterisk no longer has (it restarted): every
        channel is hung up with ``cause``, every dynamic member is gone."""
        self._resync.clear(cause)

    def resync(self, snap: Snapshot, *, done: bool = True) -> None:
        """Make the model equal to what Asterisk reports now.

        Channels that ended while we were not listening are hung up (cause 0,
        unknown), channels that started are created, queue members and
        callers replaced.  Observers see ordinary domain events, so the call
        tracker and agents need no special resync path.  ``done=False``: more
        lists of the same resync follow (the AMI link applies each list as it
        arrives), and :meth:`resync_done` tells the observers once at the end.
        """
        self._resync.resync(snap, done=done)

    def resync_done(self) -> None:
        """Every list of a resync is applied: observers reconcile once (the agents'
        memberships, call control) and the bars are told once."""
        self._resync.resync_done()

    # -- channels -------------------------------------------------------------

    def _newchannel(self, msg: Message) -> None:
        uid = msg.get("Uniqueid")
        if not uid:
            return
        old = self.channels.get(uid)
        if old is not None:
            return
        self._create(msg)

    def _newstate(self, msg: Message) -> None:
        g = msg.get
        uid = g("Uniqueid")
        ch = self.channels.get(uid) if uid else None
        if ch is None or ch.phantom:  # the common case (a channel we know and heard) inline
            ch = self._ensure(msg)
            if ch is None:
                return
        state = g("ChannelState")
        if state is not None:
            new_state = int_field(state, ch.state)
            if new_state == 6 and ch.answered is None:
                ch.answered = self._clock.seconds()
            ch.state = new_state
        if "CallerIDNum" in msg:
            ch.caller_num = cid_field(g("CallerIDNum"))
            ch.caller_name = cid_field(g("CallerIDName"))
        if "ConnectedLineNum" in msg:
            ch.connected_num = cid_field(g("ConnectedLineNum"))
            ch.connected_name = cid_field(g("ConnectedLineName"))
        for obs in self.observers:
            obs.channel_updated(ch, msg)

    def _rename(self, msg: Message) -> None:
        ch = self._chan(msg, "Uniqueid", "Channel")
        new = msg.get("Newname")
        if ch is None or not new:
            return
        old = ch.name
        self._by_name.pop(old, None)
        ch.name = new
        ch.device = device_of(new)
        self._by_name[new] = ch.uniqueid
        self._emit("channel_renamed", ch, old)

    def _masquerade(self, msg: Message) -> None:
        original = self.channel_by_name(msg.get("Original", ""))
        clone = self.channel_by_name(msg.get("Clone", ""))
        if original is not None and clone is not None and original is not clone:
            self._emit("channel_masqueraded", original, clone)

    def _pickup(self, msg: Message) -> None:
        """A phone picked up another's ringing call (``Pickup``/``PickupChan``, the ``*8``
        feature: ``ast_do_pickup``).  Asterisk moves the picker's channel into the ringing
        one's place (its Linkedid follows only at the bridge): it is the call's now."""
        picker = self._chan(msg)
        target = self._chan(msg, "TargetUniqueid", "TargetChannel")
        if picker is None or target is None or picker.linkedid == target.linkedid:
            return
        old = self._relink(picker, target.linkedid)
        self._emit("channel_relinked", picker, old)

    def _local_bridge_v11(self, msg: Message) -> None:
        """Asterisk 11 names the two halves of a Local channel (no Linkedid on its
        events): the ``;2`` half belongs to the ``;1`` half's call."""
        one = self.channels.get(msg.get("Uniqueid1", ""))
        two = self.channels.get(msg.get("Uniqueid2", ""))
        if one is None or two is None or two.linkedid != two.uniqueid or two.linkedid == one.linkedid:
            return
        old = self._relink(two, one.linkedid)
        self._emit("channel_relinked", two, old)

    def _hangup_request(self, msg: Message) -> None:
        ch = self._chan(msg)
        if ch is not None:
            ch.hangup_requested = True
            for obs in self.observers:
                obs.hangup_requested(ch)

    def _hangup(self, msg: Message) -> None:
        ch = self._chan(msg)
        if ch is None:
            return
        self._remove_channel(ch)
        cause, text = int_field(msg.get("Cause")), msg.get("Cause-txt", "")
        for obs in self.observers:
            obs.channel_hungup(ch, cause, text)
        if ch.linkedid in self._phantoms:
            self._end_phantoms(ch.linkedid)

    def _end_phantoms(self, linkedid: str) -> None:
        """The last channel we heard from in this call hung up: the ones we only
        ever saw named by others (a filtered log) cannot outlive it."""
        if self._heard_in.get(linkedid):  # a channel of the call we heard is still up
            return
        for uid in list(self._phantoms.pop(linkedid, ())):
            ch = self.channels.get(uid)
            if ch is not None:
                self._remove_channel(ch)
                self._emit("channel_hungup", ch, 0, "never heard from")

    def _newexten(self, msg: Message) -> None:
        app = msg.get("Application")
        if not app:
            return
        ch = self._chan(msg)
        if ch is not None:
            ch.application = app
            data = msg.get("AppData", "")
            for obs in self.observers:
                obs.application(ch, app, data)

    # -- bridges ----------------------------------------------------------------

    def _bridge_create(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        if bid and bid not in self.bridges:
            self.bridges[bid] = Bridge(bid, msg.get("BridgeType", "basic"))

    def _bridge_enter(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        ch = self._ensure(msg)
        if not bid or ch is None:
            return
        self._enter(bid, ch, msg.get("BridgeType", "basic"))

    def _bridge_leave(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        ch = self._chan(msg)
        if bid and ch is not None:
            self._leave(bid, ch)

    def _bridge_destroy(self, msg: Message) -> None:
        bid = msg.get("BridgeUniqueid")
        bridge = self.bridges.pop(bid, None) if bid else None
        if bridge is None:
            return
        for uid in list(bridge.channels):
            ch = self.channels.get(uid)
            if ch is not None and ch.bridge == bid:
                ch.bridge = None

    def _bridge_merge(self, msg: Message) -> None:
        # The channels of From are moved to To; Asterisk follows with
        # BridgeLeave/BridgeEnter for each, which do the moving here.
        pass

    def _bridge_v11(self, msg: Message) -> None:
        """Asterisk 11 ``Bridge`` (Bridgestate Link/Unlink of two channels).

        An Unlink says nothing about who left first, so it is not applied:
        the channels leave at their Hangup (in the order Asterisk hung them
        up, the best evidence 11 gives) or when they are linked elsewhere.
        """
        if msg.get("Bridgestate", "Link") != "Link":
            return
        a = self.channels.get(msg.get("Uniqueid1", ""))
        b = self.channels.get(msg.get("Uniqueid2", ""))
        if a is None or b is None:
            return
        bid = "v11-" + a.uniqueid
        for ch in (a, b):
            if ch.bridge != bid:
                self._enter(bid, ch)

    # -- dialing, hold, transfer ---------------------------------------------

    def _dial_begin(self, msg: Message) -> None:
        dst = self._ensure(msg, "Dest")
        if dst is None:
            return
        src = self._chan(msg)
        self._emit("dial_begin", src, dst, msg.get("DialString", ""), msg.get("DestExten", ""))

    def _dial_end(self, msg: Message) -> None:
        dst = self._chan(msg, "DestUniqueid", "DestChannel")
        if dst is None:
            return
        self._emit("dial_end", self._chan(msg), dst, msg.get("DialStatus", ""))

    def _dial_v11(self, msg: Message) -> None:
        """Asterisk 11 ``Dial`` (SubEvent Begin/End)."""
        src = self.channels.get(msg.get("UniqueID") or msg.get("Uniqueid") or "")
        if msg.get("SubEvent") == "Begin":
            dst = self.channels.get(msg.get("DestUniqueID", ""))
            if dst is None:
                return
            if src is not None and dst.linkedid == dst.uniqueid and src.linkedid != dst.linkedid:
                old = self._relink(dst, src.linkedid)
                self._emit("channel_relinked", dst, old)
            self._emit("dial_begin", src, dst, msg.get("Dialstring", ""), "")
        elif msg.get("SubEvent") == "End" and src is not None:
            for ch in list(self.channels.values()):
                if ch.linkedid == src.linkedid and ch is not src and ch.answered is None:
                    self._emit("dial_end", src, ch, msg.get("DialStatus", ""))

    def _hold(self, msg: Message) -> None:
        ch = self._chan(msg)
        if ch is not None:
            ch.on_hold = msg.get("Status", "On") != "Off"
            self._emit("hold_changed", ch)

    def _unhold(self, msg: Message) -> None:
        ch = self._chan(msg)
        if ch is not None and ch.on_hold:
            ch.on_hold = False
            self._emit("hold_changed", ch)

    def _waiting_in_queue(self, ch: Channel) -> bool:
        return any(ch.uniqueid in q.callers for q in self.queues.values())

    def _moh_start(self, msg: Message) -> None:
        # Music while waiting in a queue is not hold; music anywhere else is
        # what the customer hears while an agent holds or consults.
        ch = self._chan(msg)
        if ch is not None and not ch.on_hold and not self._waiting_in_queue(ch):
            ch.on_hold = True
            self._emit("hold_changed", ch)

    def _moh_stop(self, msg: Message) -> None:
        ch = self._chan(msg)
        if ch is not None and ch.on_hold:
            ch.on_hold = False
            self._emit("hold_changed", ch)

    def _mixmonitor(self, msg: Message) -> None:
        # app_mixmonitor.c: Start when MixMonitor runs, Stop only on StopMixMonitor
        # (a hangup ends the recording silently).  Several recordings of one
        # channel are not told apart: the flag says "being recorded".
        ch = self._chan(msg)
        on = msg.get("Event") == "MixMonitorStart"
        if ch is not None and ch.recording != on:
            ch.recording = on
            self._emit("channel_updated", ch, msg)

    def _blind_transfer(self, msg: Message) -> None:
        self._emit("transfer", "blind", msg)

    def _attended_transfer(self, msg: Message) -> None:
        self._emit("transfer", "attended", msg)

    # -- originate ------------------------------------------------------------

    def _originate_response(self, msg: Message) -> None:
        self._emit("originate_response", msg)
