"""The maps of the PBX model and the bookkeeping every group of handlers shares.

Why a module of its own: the AMI handlers of :class:`ucs.pbx.pbx.PBX` are
split by what they are about (channels, bridges and dial in ``pbx.py``; queues
in ``queues.py``; devices in ``devices.py``; restarts and resync in
``resync.py``), and every group reads and changes the same maps the same way:
find the channel an event names (or create the one we missed), remove a
channel with everything that pointed at it, tell the observers.  That is
:class:`PBXState`, which ``PBX`` is built on and the other groups are handed;
it imports none of them, so there is no cycle.

Also here: the readers of AMI fields every group uses (:func:`int_field`,
:func:`cid_field`, :func:`flag_field`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ucs.ami.message import Message
from ucs.pbx.model import Bridge, Channel, Device, Queue, device_of
from ucs.pbx.observer import PBXObserver

#: How many hung-up Uniqueids are remembered, so that an event Asterisk sends
#: after a channel's ``Hangup`` (a ``NewConnectedLine`` of a declined ringall
#: member) cannot bring the channel back as one that never ends.
GONE_MEMORY = 4096

#: What handles one AMI event.
Handler = Callable[[Message], None]


class SecondsClock(Protocol):
    def seconds(self) -> float: ...


def int_field(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def cid_field(value: str | None) -> str:
    if not value or value in ("<unknown>", "unknown", "<Unknown>"):
        return ""
    return value


def flag_field(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


class PBXState:
    """Channels, bridges, devices and queues as Asterisk reported them, and the
    observers told of every change.  No AMI event is handled here."""

    def __init__(self, clock: SecondsClock, observers: Iterable[PBXObserver] = ()) -> None:
        self._clock = clock
        self.observers: list[PBXObserver] = list(observers)
        self.channels: dict[str, Channel] = {}  # by Uniqueid
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, Device] = {}
        self.queues: dict[str, Queue] = {}
        self._by_name: dict[str, str] = {}  # channel name → Uniqueid
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._phantoms: dict[str, set[str]] = {}  # linkedid → phantom Uniqueids
        #: linkedid → how many channels of ``channels`` with it are not phantoms,
        #: so that a hangup need not scan every channel (see ``PBX._end_phantoms``).
        self._heard_in: dict[str, int] = {}

    # -- lookups --------------------------------------------------------------

    def channel_by_name(self, name: str) -> Channel | None:
        uid = self._by_name.get(name)
        return self.channels.get(uid) if uid else None

    def channels_of_device(self, device: str) -> list[Channel]:
        return [ch for ch in self.channels.values() if ch.device == device]

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
        """A phantom channel of ``channels`` spoke for itself: it is an ordinary one now."""
        self._not_phantom(ch)
        heard = self._heard_in
        heard[ch.linkedid] = heard.get(ch.linkedid, 0) + 1

    def _not_phantom(self, ch: Channel) -> None:
        ch.phantom = False
        uids = self._phantoms.get(ch.linkedid)
        if uids is not None:
            uids.discard(ch.uniqueid)
            if not uids:
                del self._phantoms[ch.linkedid]

    def _unheard(self, linkedid: str) -> None:
        heard = self._heard_in
        n = heard.get(linkedid, 0) - 1
        if n > 0:
            heard[linkedid] = n
        else:
            heard.pop(linkedid, None)

    def _relink(self, ch: Channel, linkedid: str) -> str:
        """Move ``ch`` to another call (Asterisk 11); returns its old linkedid."""
        old = ch.linkedid
        ch.linkedid = linkedid
        if not ch.phantom and self.channels.get(ch.uniqueid) is ch:
            self._unheard(old)
            self._heard_in[linkedid] = self._heard_in.get(linkedid, 0) + 1
        return old

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
            state=int_field(g(prefix + "ChannelState")),
            caller_num=cid_field(g(prefix + "CallerIDNum")),
            caller_name=cid_field(g(prefix + "CallerIDName")),
            connected_num=cid_field(g(prefix + "ConnectedLineNum")),
            connected_name=cid_field(g(prefix + "ConnectedLineName")),
            context=g(prefix + "Context") or "",
            exten=g(prefix + "Exten") or "",
            phantom=phantom,
        )
        if phantom:
            self._phantoms.setdefault(ch.linkedid, set()).add(uid)
        else:
            heard = self._heard_in
            heard[ch.linkedid] = heard.get(ch.linkedid, 0) + 1
        self.channels[uid] = ch
        self._by_name[name] = uid
        for obs in self.observers:
            obs.channel_created(ch)
        return ch

    def _remove_channel(self, ch: Channel) -> None:
        removed = self.channels.pop(ch.uniqueid, None)
        if removed is not None and not removed.phantom:
            self._unheard(removed.linkedid)
        self._gone[ch.uniqueid] = None
        if len(self._gone) > GONE_MEMORY:
            self._gone.popitem(last=False)
        if ch.phantom:
            self._not_phantom(ch)
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
