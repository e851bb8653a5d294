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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from ucs.ami.message import Message
from ucs.pbx.model import Bridge, Channel, Device, Member, Queue, QueueCaller, device_of
from ucs.pbx.observer import PBXObserver


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


#: How many hung-up Uniqueids are remembered, so that an event Asterisk sends
#: after a channel's ``Hangup`` (a ``NewConnectedLine`` of a declined ringall
#: member) cannot bring the channel back as one that never ends.
GONE_MEMORY = 4096


#: Member's fields in the order its __init__ takes them.
_MEMBER_FIELDS = tuple(a.name for a in attrs.fields(Member))


class SecondsClock(Protocol):
    def seconds(self) -> float: ...


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _cid(value: str | None) -> str:
    if not value or value in ("<unknown>", "unknown", "<Unknown>"):
        return ""
    return value


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


@attrs.define
class Snapshot:
    """What the list actions answered after a (re)connect; see :meth:`PBX.resync`.

    Each list holds the events of one event-list action.  ``None`` means the
    action was not available (``PJSIPShowEndpoints`` without PJSIP), so that
    part of the model is left as it is.
    """

    channels: list[Message] | None = None
    queues: list[Message] | None = None
    device_states: list[Message] | None = None
    sip_peers: list[Message] | None = None
    pjsip_endpoints: list[Message] | None = None


class PBX:
    def __init__(self, clock: SecondsClock, observers: Iterable[PBXObserver] = ()) -> None:
        self._clock = clock
        self.observers: list[PBXObserver] = list(observers)
        self.channels: dict[str, Channel] = {}  # by Uniqueid
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, Device] = {}
        self.queues: dict[str, Queue] = {}
        #: Counts of events by name that had a handler, for metrics.
        self.handled = 0
        self._by_name: dict[str, str] = {}  # channel name → Uniqueid
        self._handlers: dict[str, Callable[[Message], None]] = {
            "Newchannel": self._newchannel,
            "Newstate": self._newstate,
            "NewCallerid": self._newstate,
            "NewConnectedLine": self._newstate,
            "Rename": self._rename,
            "Masquerade": self._masquerade,
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
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            "QueueCallerJoin": self._caller_join,
            "Join": self._caller_join,
            "QueueCallerLeave": self._caller_leave,
            "Leave": self._caller_leave,
            "QueueCallerAbandon": self._caller_abandon,
            "AgentCalled": self._agent_called,
            "AgentRingNoAnswer": self._agent_ring_no_answer,
            "AgentConnect": self._agent_connect,
            "AgentComplete": self._agent_complete,
            "QueueMemberAdded": self._member_added,
            "QueueMemberStatus": self._member_update,
            "QueueMemberPause": self._member_update,
            "QueueMemberPaused": self._member_update,
            "QueueMemberPenalty": self._member_update,
            "QueueMemberRinginuse": self._member_update,
            "QueueMemberRemoved": self._member_removed,
            "DeviceStateChange": self._device_state,
            "PeerStatus": self._peer_status,
            "ContactStatus": self._contact_status,
            "Newexten": self._newexten,
            "Shutdown": self._shutdown,
            "OriginateResponse": self._originate_response,
        }
        self._abandoned: set[str] = set()
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._phantoms: dict[str, set[str]] = {}  # linkedid → phantom Uniqueids

    # -- entry points -------------------------------------------------------

    def feed(self, msg: Message) -> None:
        handler = self._handlers.get(msg.get("Event", ""))
        if handler is not None:
            self.handled += 1
            handler(msg)

    def wanted_events(self) -> frozenset[str]:
        """The event names this model reads; everything else is noise to it."""
        return frozenset(self._handlers)

    def channel_by_name(self, name: str) -> Channel | None:
        uid = self._by_name.get(name)
        return self.channels.get(uid) if uid else None

    def channels_of_device(self, device: str) -> list[Channel]:
        return [ch for ch in self.channels.values() if ch.device == device]

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

    # -- plumbing -------------------------------------------------------------

    def _emit(self, method: str, *args: Any) -> None:
        for obs in self.observers:
            getattr(obs, method)(*args)

    def _chan(self, msg: Message, uid_key: str = "Uniqueid", name_key: str = "Channel") -> Channel | None:
        uid = msg.get(uid_key)
        if uid:
            ch = self.channels.get(uid)
            if ch is not None:
                if ch.phantom and uid_key == "Uniqueid":
                    self._heard(ch)
                return ch
        name = msg.get(name_key)
        if name:
            uid = self._by_name.get(name)
            if uid:
                return self.channels.get(uid)
        return None

    def _ensure(self, msg: Message, prefix: str = "") -> Channel | None:
        """The channel an event is about, created if we missed its Newchannel
        (events of a call already running when we connected)."""
        ch = self._chan(msg, prefix + "Uniqueid", prefix + "Channel")
        uid = msg.get(prefix + "Uniqueid")
        if ch is None and uid and msg.get(prefix + "Channel") and uid not in self._gone:
            ch = self._create(msg, prefix, phantom=bool(prefix))
        return ch

    def _heard(self, ch: Channel) -> None:
        ch.phantom = False
        uids = self._phantoms.get(ch.linkedid)
        if uids is not None:
            uids.discard(ch.uniqueid)
            if not uids:
                del self._phantoms[ch.linkedid]

    def _create(self, msg: Message, prefix: str = "", phantom: bool = False) -> Channel:
        g = msg.get
        uid = g(prefix + "Uniqueid") or g(prefix + "UniqueID") or ""
        name = g(prefix + "Channel") or uid
        ch = Channel(
            name=name,
            uniqueid=uid,
            linkedid=g(prefix + "Linkedid") or uid,
            device=device_of(name),
            created=self._clock.seconds(),
            state=_int(g(prefix + "ChannelState")),
            caller_num=_cid(g(prefix + "CallerIDNum")),
            caller_name=_cid(g(prefix + "CallerIDName")),
            connected_num=_cid(g(prefix + "ConnectedLineNum")),
            connected_name=_cid(g(prefix + "ConnectedLineName")),
            context=g(prefix + "Context") or "",
            exten=g(prefix + "Exten") or "",
            phantom=phantom,
        )
        if phantom:
            self._phantoms.setdefault(ch.linkedid, set()).add(uid)
        self.channels[uid] = ch
        self._by_name[name] = uid
        for obs in self.observers:
            obs.channel_created(ch)
        return ch

    def _remove_channel(self, ch: Channel) -> None:
        self.channels.pop(ch.uniqueid, None)
        self._gone[ch.uniqueid] = None
        if len(self._gone) > GONE_MEMORY:
            self._gone.popitem(last=False)
        if ch.phantom:
            self._heard(ch)
        if self._by_name.get(ch.name) == ch.uniqueid:
            del self._by_name[ch.name]
        if ch.bridge is not None:
            bridge = self.bridges.get(ch.bridge)
            if bridge is not None and ch.uniqueid in bridge.channels:
                bridge.channels.remove(ch.uniqueid)
                self._emit("bridge_left", bridge, ch)
            ch.bridge = None
        for queue in self.queues.values():
            if queue.callers.pop(ch.uniqueid, None) is not None:
                self._emit("queue_caller_left", queue, ch, True)

    def _queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = Queue(name)
        return q

    def _device(self, name: str) -> Device:
        d = self.devices.get(name)
        if d is None:
            d = self.devices[name] = Device(name)
        return d

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
            new_state = _int(state, ch.state)
            if new_state == 6 and ch.answered is None:
                ch.answered = self._clock.seconds()
            ch.state = new_state
        if "CallerIDNum" in msg:
            ch.caller_num = _cid(g("CallerIDNum"))
            ch.caller_name = _cid(g("CallerIDName"))
        if "ConnectedLineNum" in msg:
            ch.connected_num = _cid(g("ConnectedLineNum"))
            ch.connected_name = _cid(g("ConnectedLineName"))
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

    def _local_bridge_v11(self, msg: Message) -> None:
        """Asterisk 11 names the two halves of a Local channel (no Linkedid on its
        events): the ``;2`` half belongs to the ``;1`` half's call."""
        one = self.channels.get(msg.get("Uniqueid1", ""))
        two = self.channels.get(msg.get("Uniqueid2", ""))
        if one is None or two is None or two.linkedid != two.uniqueid or two.linkedid == one.linkedid:
            return
        old = two.linkedid
        two.linkedid = one.linkedid
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
        cause, text = _int(msg.get("Cause")), msg.get("Cause-txt", "")
        for obs in self.observers:
            obs.channel_hungup(ch, cause, text)
        if ch.linkedid in self._phantoms:
            self._end_phantoms(ch.linkedid)

    def _end_phantoms(self, linkedid: str) -> None:
        """The last channel we heard from in this call hung up: the ones we only
        ever saw named by others (a filtered log) cannot outlive it."""
        if any(c.linkedid == linkedid and not c.phantom for c in self.channels.values()):
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

    def _enter(self, bid: str, ch: Channel, btype: str = "basic") -> None:
        bridge = self.bridges.get(bid)
        if bridge is None:
            bridge = self.bridges[bid] = Bridge(bid, btype)
        if ch.bridge is not None and ch.bridge != bid:
            self._leave(ch.bridge, ch)
        ch.bridge = bid
        if ch.uniqueid not in bridge.channels:
            bridge.channels.append(ch.uniqueid)
        self._emit("bridge_entered", bridge, ch)

    def _leave(self, bid: str, ch: Channel) -> None:
        bridge = self.bridges.get(bid)
        if ch.bridge == bid:
            ch.bridge = None
        if bridge is not None and ch.uniqueid in bridge.channels:
            bridge.channels.remove(ch.uniqueid)
            self._emit("bridge_left", bridge, ch)

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
                old = dst.linkedid
                dst.linkedid = src.linkedid
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

    def _blind_transfer(self, msg: Message) -> None:
        self._emit("transfer", "blind", msg)

    def _attended_transfer(self, msg: Message) -> None:
        self._emit("transfer", "attended", msg)

    # -- queues -----------------------------------------------------------------

    def _caller_join(self, msg: Message) -> None:
        name = msg.get("Queue")
        ch = self._ensure(msg)
        if not name or ch is None:
            return
        q = self._queue(name)
        q.callers[ch.uniqueid] = QueueCaller(
            ch.uniqueid, ch.name, _int(msg.get("Position"), len(q.callers) + 1),
            self._clock.seconds(), ch.caller_num, ch.caller_name,
        )
        self._emit("queue_caller_joined", q, ch)

    def _caller_abandon(self, msg: Message) -> None:
        uid = msg.get("Uniqueid")
        if uid:
            self._abandoned.add(uid)

    def _caller_leave(self, msg: Message) -> None:
        name = msg.get("Queue")
        ch = self._chan(msg)
        q = self.queues.get(name or "")
        if q is None or ch is None:
            return
        if q.callers.pop(ch.uniqueid, None) is None:
            return
        abandoned = ch.uniqueid in self._abandoned
        self._abandoned.discard(ch.uniqueid)
        if abandoned:
            q.abandoned += 1
        for i, caller in enumerate(sorted(q.callers.values(), key=lambda c: c.position)):
            caller.position = i + 1
        self._emit("queue_caller_left", q, ch, abandoned)

    def _agent_event(self, msg: Message) -> tuple[Queue, str, Channel | None, Channel | None] | None:
        name = msg.get("Queue")
        if not name:
            return None
        iface = msg.get("Interface") or msg.get("Member") or msg.get("AgentCalled") or ""
        caller = self._chan(msg)
        agent = self._chan(msg, "DestUniqueid", "DestChannel")
        if agent is None and msg.get("DestUniqueid") and msg.get("DestChannel"):
            agent = self._ensure(msg, "Dest")
        if agent is None and msg.get("BridgedChannel"):
            agent = self.channels.get(msg["BridgedChannel"])
        return self._queue(name), iface, caller, agent

    def _agent_called(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_called", *found)

    def _agent_ring_no_answer(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_ring_no_answer", *found)

    def _agent_connect(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_connected", *found, msg)

    def _agent_complete(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            found[0].completed += 1
            self._emit("agent_completed", *found, msg)

    @staticmethod
    def _apply_member(m: Member, msg: Message) -> None:
        g = msg.get
        if "MemberName" in msg or "Name" in msg:
            m.name = g("MemberName") or g("Name") or m.name
        if "StateInterface" in msg:
            m.state_interface = g("StateInterface") or m.state_interface
        if "Membership" in msg:
            m.membership = g("Membership") or m.membership
        if "Penalty" in msg:
            m.penalty = _int(g("Penalty"), m.penalty)
        if "Status" in msg:
            m.status = _int(g("Status"), m.status)
        if "Paused" in msg:
            m.paused = _flag(g("Paused"))
            m.paused_reason = (g("PausedReason") or g("Reason") or "") if m.paused else ""
        if "InCall" in msg:
            m.in_call = _flag(g("InCall"))
        if "CallsTaken" in msg:
            m.calls_taken = _int(g("CallsTaken"), m.calls_taken)
        if "LastCall" in msg:
            m.last_call = _int(g("LastCall"), m.last_call)
        if "LoginTime" in msg:
            m.login_time = _int(g("LoginTime"), m.login_time)

    def _member_added(self, msg: Message) -> None:
        name = msg.get("Queue")
        iface = msg.get("Interface") or msg.get("Location")
        if not name or not iface:
            return
        q = self._queue(name)
        existing = q.members.get(iface)
        if existing is not None:
            self._member_update(msg)
            return
        m = q.members[iface] = Member(name, iface)
        self._apply_member(m, msg)
        self._emit("member_added", m)

    def _member_update(self, msg: Message) -> None:
        name = msg.get("Queue")
        iface = msg.get("Interface") or msg.get("Location")
        if not name or not iface:
            return
        q = self._queue(name)
        m = q.members.get(iface)
        if m is None:
            self._member_added(msg)
            return
        previous = Member(*map(m.__getattribute__, _MEMBER_FIELDS))  # attrs.evolve(m), without its checks
        self._apply_member(m, msg)
        if previous != m:
            self._emit("member_changed", m, previous)

    def _member_removed(self, msg: Message) -> None:
        q = self.queues.get(msg.get("Queue", ""))
        iface = msg.get("Interface") or msg.get("Location") or ""
        m = q.members.pop(iface, None) if q else None
        if m is not None:
            self._apply_member(m, msg)
            self._emit("member_removed", m)

    # -- devices ----------------------------------------------------------------

    def _device_state(self, msg: Message) -> None:
        name = msg.get("Device")
        if not name or name.startswith("Queue:"):
            return
        d = self._device(name)
        state = msg.get("State", "UNKNOWN")
        if d.state != state:
            d.state = state
            self._emit("device_changed", d)

    def _peer_status(self, msg: Message) -> None:
        peer = msg.get("Peer")
        if not peer:
            return
        if "/" not in peer:
            peer = f"{msg.get('ChannelType', 'SIP')}/{peer}"
        d = self._device(peer)
        d.registration = msg.get("PeerStatus", d.registration)
        address = msg.get("Address")
        if address:
            host, _, port = address.rpartition(":")
            d.address, d.port = (host, _int(port) or None) if host else (address, None)
            d.dynamic = True
        elif d.registration in ("Unregistered", "Unreachable"):
            if d.dynamic:
                d.address, d.port = None, None
        self._emit("device_changed", d)

    def _contact_status(self, msg: Message) -> None:
        """PJSIP ``ContactStatus``: the AOR's contact URI carries the phone's address."""
        endpoint = msg.get("EndpointName") or msg.get("AOR")
        if not endpoint:
            return
        d = self._device(f"PJSIP/{endpoint}")
        status = msg.get("ContactStatus", "")
        # Asterisk 20 says NonQualified (no qualify_frequency) or Reachable for a
        # contact that registered, Created on older versions.
        d.registration = {
            "Created": "Registered", "Updated": "Registered", "NonQualified": "Registered",
            "Reachable": "Registered", "Removed": "Unregistered",
        }.get(status, status)
        d.dynamic = True
        uri = msg.get("URI", "")
        if status == "Removed":
            d.address, d.port = None, None
        elif "@" in uri:
            hostport = uri.split("@", 1)[1].split(";", 1)[0]
            host, _, port = hostport.rpartition(":")
            d.address, d.port = (host, _int(port) or None) if host else (hostport, None)
        self._emit("device_changed", d)

    # -- restarts and resync ------------------------------------------------------

    def _originate_response(self, msg: Message) -> None:
        self._emit("originate_response", msg)

    def _shutdown(self, msg: Message) -> None:
        self.clear(cause=0)
        self._emit("pbx_restarted")

    def clear(self, cause: int = 0) -> None:
        """Forget everything Asterisk no longer has (it restarted): every
        channel is hung up with ``cause``, every dynamic member is gone."""
        for ch in list(self.channels.values()):
            self._remove_channel(ch)
            self._emit("channel_hungup", ch, cause, "Asterisk restarted")
        self.bridges.clear()
        for q in self.queues.values():
            for iface in [i for i, m in q.members.items() if m.membership != "static"]:
                self._emit("member_removed", q.members.pop(iface))
            q.callers.clear()

    def resync(self, snap: Snapshot, *, done: bool = True) -> None:
        """Make the model equal to what Asterisk reports now.

        Channels that ended while we were not listening are hung up (cause 0,
        unknown), channels that started are created, queue members and
        callers replaced.  Observers see ordinary domain events, so the call
        tracker and agents need no special resync path.  ``done=False``: more
        lists of the same resync follow (the AMI link applies each list as it
        arrives), and :meth:`resync_done` tells the observers once at the end.
        """
        now = self._clock.seconds()
        if snap.channels is not None:
            self._resync_channels(snap.channels, now)
        if snap.queues is not None:
            self._resync_queues(snap.queues, now)
        for entry in snap.device_states or ():
            self._device_state(entry)
        for entry in snap.sip_peers or ():
            name = entry.get("ObjectName")
            if not name:
                continue
            d = self._device(f"{entry.get('Channeltype', 'SIP')}/{name}")
            d.dynamic = _flag(entry.get("Dynamic"))
            ip = entry.get("IPaddress", "")
            d.address = ip if ip and ip not in ("-none-", "(null)") else None
            d.port = _int(entry.get("IPport")) or None
            if d.dynamic:
                d.registration = "Registered" if d.address else "Unregistered"
            self._emit("device_changed", d)
        for entry in snap.pjsip_endpoints or ():
            name = entry.get("ObjectName")
            if not name:
                continue
            d = self._device(f"PJSIP/{name}")
            d.dynamic = True
            state = entry.get("DeviceState", "")
            d.registration = "Unregistered" if state in ("Unavailable", "UNAVAILABLE") else "Registered"
            self._emit("device_changed", d)
        if done:
            self.resync_done()

    def resync_done(self) -> None:
        """Every list of a resync is applied: observers reconcile once (the agents'
        memberships, call control) and the bars are told once."""
        self._emit("resynced")

    def _resync_channels(self, entries: list[Message], now: float) -> None:
        def creation_order(e: Message) -> tuple[int, int]:
            epoch, _, seq = e["Uniqueid"].partition(".")
            return (_int(epoch), _int(seq))

        ordered = sorted((e for e in entries if e.get("Uniqueid")), key=creation_order)
        seen: dict[str, Message] = {e["Uniqueid"]: e for e in ordered}
        for uid in [u for u in self.channels if u not in seen]:
            gone = self.channels[uid]
            self._remove_channel(gone)
            self._emit("channel_hungup", gone, 0, "gone while the AMI link was down")
        for uid, entry in seen.items():
            ch: Channel | None = self.channels.get(uid)
            if ch is None:
                ch = self._create(entry)
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
            bid = entry.get("BridgeId") or entry.get("BridgeID") or None
            if bid and ch.bridge != bid:
                self._enter(bid, ch)
            elif not bid and ch.bridge is not None:
                self._leave(ch.bridge, ch)
        for bid in [b for b, br in self.bridges.items() if not br.channels]:
            del self.bridges[bid]

    def _resync_queues(self, entries: list[Message], now: float) -> None:
        members: dict[tuple[str, str], Message] = {}
        callers: dict[str, list[Message]] = {}
        for e in entries:
            ev = e.get("Event")
            if ev == "QueueParams" and e.get("Queue"):
                q = self._queue(e["Queue"])
                q.strategy = e.get("Strategy", q.strategy)
                callers.setdefault(q.name, [])
            elif ev == "QueueMember" and e.get("Queue"):
                iface = e.get("Location") or e.get("Interface") or ""
                if iface:
                    members[(e["Queue"], iface)] = e
            elif ev == "QueueEntry" and e.get("Queue"):
                callers.setdefault(e["Queue"], []).append(e)
        for q in self.queues.values():
            for iface in [i for i in q.members if (q.name, i) not in members]:
                self._emit("member_removed", q.members.pop(iface))
        for (qname, iface), e in members.items():
            e = dict(e, Queue=qname, Interface=iface)
            self._member_update(e)
        for qname, entries_q in callers.items():
            q = self._queue(qname)
            fresh: dict[str, QueueCaller] = {}
            for e in entries_q:
                uid = e.get("Uniqueid") or ""
                ch = self.channels.get(uid)
                if ch is None:
                    continue
                existing = q.callers.get(uid)
                wait = _int(e.get("Wait"))
                fresh[uid] = existing or QueueCaller(
                    uid, ch.name, _int(e.get("Position"), 1), now - wait, ch.caller_num, ch.caller_name
                )
                fresh[uid].position = _int(e.get("Position"), fresh[uid].position)
            gone = [uid for uid in q.callers if uid not in fresh]
            added = [uid for uid in fresh if uid not in q.callers]
            q.callers = fresh
            for uid in gone:
                ch = self.channels.get(uid)
                if ch is not None:
                    self._emit("queue_caller_left", q, ch, False)
            for uid in added:
                self._emit("queue_caller_joined", q, self.channels[uid])
