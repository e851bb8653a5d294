"""The simulated PBX's objects: lines, channels, bridges, queues and members,
and what a channel is doing (a :class:`Leg` being called, a :class:`DialJob`,
a :class:`WaitJob`, a :class:`QueueEntry`).

Plain classes with no behaviour of their own beyond small queries; the
:class:`ucs.sim.pbx.Sim` changes them and emits the events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: A behaviour value: a fixed number of seconds, ``(low, high)`` for a random
#: uniform draw per call, a callable returning seconds, or None for "never".
Delay = float | int | tuple[float, float] | Callable[[], float] | None


def draw(value: Delay, rng: random.Random) -> float | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return rng.uniform(value[0], value[1])
    if callable(value):
        return float(value())
    return float(value)


@dataclass(slots=True, kw_only=True)
class Behaviour:
    """What the simulated phone (or the far end of a trunk) does with a call.

    ``answer_after``: seconds of ringing before it answers (None: it never
    answers by itself). ``busy``: it rejects every call with 486 Busy.
    ``hangup_after``: seconds after answering before it hangs up (None: it
    stays until the other side hangs up).  ``remote_answer``: it answers a
    ringing call when told to by a SIP NOTIFY ``Event: talk`` (the AMI
    ``SIPnotify`` action), as Yealink, Snom or Polycom phones do with that
    option on; otherwise it ignores such a NOTIFY.

    :meth:`ucs.sim.phones.Phone.set_behaviour` takes these fields as keywords.
    """

    answer_after: Delay = None
    busy: bool = False
    hangup_after: Delay = None
    remote_answer: bool = False
    #: It answers every INVITE with 603 Decline at once (cause 21).
    decline: bool = False
    #: It never sends 180 Ringing (a carrier that leaves the call
    #: unanswered in silence): the channel stays Down while it is called.
    silent: bool = False
    #: It answers every INVITE with 404 Not Found at once (a carrier asked for a number
    #: that does not exist): cause 1, unallocated number.
    not_found: bool = False


class Line:
    """A chan_sip peer or a PJSIP endpoint: an agent's phone, or the trunk to the carrier."""

    def __init__(
        self,
        peer: str,
        *,
        tech: str = "SIP",
        name: str = "",
        ip: str | None = None,
        port: int = 5060,
        dynamic: bool = False,
        secret: str | None = None,
        context: str = "internal",
        trunk: bool = False,
        call_limit: int | None = None,
    ) -> None:
        self.peer = peer  # "1001"
        self.tech = tech  # "SIP" (chan_sip) or "PJSIP"
        self.device = f"{tech}/{peer}"
        self.display = name
        self.number = peer if not trunk else ""
        self.ip = ip
        self.port = port if ip else 0
        self.static_ip = None if dynamic else ip
        self.dynamic = dynamic
        self.secret = secret
        self.context = context
        self.trunk = trunk
        self.call_limit = call_limit if call_limit is not None else (0 if (dynamic or trunk) else 2147483647)
        self.registered = not dynamic
        self.useragent = ""
        self.reg_contact = ""
        #: PJSIP: the Call-ID of the REGISTER that made the current contact.
        self.reg_callid = ""
        self.reg_expires_at: float | None = None
        self.reg_timer: Any = None
        #: PJSIP: the endpoint's transport ("" for a WebRTC endpoint on the
        #: WebSocket transport) and its AOR's max_contacts.
        self.transport = "transport-udp"
        self.max_contacts = 1 if dynamic else 0
        #: PJSIP: the pending re-evaluation of the device state (see Sim._update_line).
        self.dev_timer: Any = None
        self.behaviour = Behaviour()
        self.channels: list[Channel] = []
        #: A real SIP user agent behind the line (a browser on a WebRTC line,
        #: :mod:`ucs.sim.webrtc`) instead of ``behaviour``: it is sent the INVITE
        #: (``invite(leg)``) and told when the line's channels answer or go
        #: (``channel_up(ch)``, ``channel_gone(ch, cause)``).
        self.driver: Any = None

    @property
    def reachable(self) -> bool:
        return self.registered and self.ip is not None


class Channel:
    """One Asterisk channel and where it is in the dialplan."""

    __slots__ = (
        "app",
        "appdata",
        "bridge",
        "bridge_time",
        "cause",
        "cid_name",
        "cid_num",
        "conn_name",
        "conn_num",
        "context",
        "created",
        "dnid",
        "dtmf",
        "exten",
        "gone",
        "hold_owner",
        "job",
        "leg",
        "line",
        "linkedid",
        "local_peer",
        "mixmonitors",
        "moh",
        "muted",
        "name",
        "on_bridged",
        "originate",
        "pbx",
        "priority",
        "state",
        "tech",
        "timers",
        "uniqueid",
        "vars",
    )

    def __init__(self, name: str, uniqueid: str, linkedid: str, created: float) -> None:
        self.name = name
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.state = 0
        self.cid_num = ""
        self.cid_name = ""
        self.conn_num = ""
        self.conn_name = ""
        self.context = ""
        self.exten = ""
        self.priority = 1
        self.line: Line | None = None
        self.tech = "SIP"
        self.created = created
        self.dnid = ""
        #: Digits PlayDTMF sent out to this channel's phone (ucs.sim.features).
        self.dtmf: list[str] = []
        self.app = ""
        self.appdata = ""
        #: True while a dialplan (PBX) runs on the channel: it goes on after an
        #: application returns; False for the called side of Dial/Queue.
        self.pbx = False
        #: The application currently running (a Queue entry, a Dial, a Wait).
        self.job: Any = None
        #: For a channel being called: the call attempt it belongs to.
        self.leg: Any = None
        self.bridge: Bridge | None = None
        self.local_peer: Channel | None = None
        self.vars: dict[str, str] = {}
        self.moh = False
        #: Recordings running on the channel (:mod:`ucs.sim.mixmonitor`).
        self.mixmonitors: list[Any] = []
        self.muted: set[str] = set()
        self.cause: int | None = None
        self.gone = False
        self.timers: list[Any] = []
        self.hold_owner: Any = None
        self.bridge_time: float | None = None
        #: Called once when the channel first talks to someone in a bridge.
        self.on_bridged: Callable[[Channel], None] | None = None
        self.originate: Any = None

    @property
    def peer_name(self) -> str:
        """``SIP/1001`` for ``SIP/1001-0000000a``; ``Local/1003@internal`` for Local."""
        return self.name.rsplit("-", 1)[0]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Channel {self.name}>"


class Bridge:
    __slots__ = ("channels", "created", "id")

    def __init__(self, bridge_id: str, created: float) -> None:
        self.id = bridge_id
        self.channels: list[Channel] = []
        self.created = created


class Member:
    """A queue member (added dynamically, as UCS does on agent login)."""

    __slots__ = (
        "_paused",
        "_ringing",
        "_status",
        "calls_taken",
        "dynamic",
        "iface",
        "in_call",
        "last_call",
        "last_pause",
        "login_time",
        "name",
        "penalty",
        "queue",
        "reason",
        "state_iface",
    )

    def __init__(self, queue: Queue, iface: str, name: str, state_iface: str, penalty: int, login_time: int) -> None:
        self.queue = queue
        self.iface = iface
        self.name = name or iface
        self.state_iface = state_iface or iface
        self.penalty = penalty
        self._paused = False
        self.reason = ""
        self.calls_taken = 0
        self.last_call = 0
        self.last_pause = 0
        self.login_time = login_time
        self.in_call = False
        self._status = 0
        self._ringing = False
        self.dynamic = True

    def block(self) -> str:
        """The member headers of QueueMemberAdded/Status/Pause/Removed."""
        return (
            f"Queue: {self.queue.name}\r\n"
            f"MemberName: {self.name}\r\n"
            f"Interface: {self.iface}\r\n"
            f"StateInterface: {self.state_iface}\r\n"
            f"Membership: dynamic\r\n"
            f"Penalty: {self.penalty}\r\n"
            f"CallsTaken: {self.calls_taken}\r\n"
            f"LastCall: {self.last_call}\r\n"
            f"LastPause: {self.last_pause}\r\n"
            f"LoginTime: {self.login_time}\r\n"
            f"InCall: {1 if self.in_call else 0}\r\n"
            f"Status: {self.status}\r\n"
            f"Paused: {1 if self.paused else 0}\r\n"
            f"PausedReason: {self.reason}\r\n"
            f"Ringinuse: 0\r\n"
            f"Wrapuptime: 0\r\n"
        )

    # Whether the member can be rung is kept in ``queue.avail`` as it changes,
    # so a busy queue of thousands of members finds a free one without a scan.

    @property
    def available(self) -> bool:
        return not self._paused and not self._ringing and self._status == 1

    def _refresh(self) -> None:
        if self.available and self.iface in self.queue.members:
            self.queue.avail[self] = None
        else:
            self.queue.avail.pop(self, None)

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value
        self._refresh()

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self._refresh()

    @property
    def ringing(self) -> bool:
        return self._ringing

    @ringing.setter
    def ringing(self, value: bool) -> None:
        self._ringing = value
        self._refresh()


class Queue:
    def __init__(self, name: str, strategy: str = "ringall", timeout: float = 15, retry: float = 5) -> None:
        if strategy not in ("ringall", "rrmemory", "linear"):
            raise ValueError(f"queue strategy {strategy!r} is not simulated: use ringall, rrmemory or linear")
        self.name = name
        self.strategy = strategy
        self.timeout = timeout
        self.retry = retry
        self.members: dict[str, Member] = {}
        #: The members that can be rung now, in the order they were added.
        self.avail: dict[Member, None] = {}
        self.entries: list[QueueEntry] = []
        self.rr_last = -1
        self.holdtime = 0
        self.talktime = 0
        self.completed = 0
        self.abandoned = 0


class QueueEntry:
    """A caller waiting in (or connected through) a queue."""

    __slots__ = (
        "agent",
        "chan",
        "connected_at",
        "done",
        "joined",
        "member",
        "position",
        "queue",
        "retry_timer",
        "ring_started",
        "ring_timer",
        "ringing",
        "timeout_timer",
    )

    def __init__(self, queue: Queue, chan: Channel, joined: float, position: int) -> None:
        self.queue = queue
        self.chan = chan
        self.joined = joined
        self.position = position
        self.ringing: dict[Member, Channel] = {}
        self.ring_timer: Any = None
        self.retry_timer: Any = None
        self.timeout_timer: Any = None
        self.member: Member | None = None
        self.agent: Channel | None = None
        self.connected_at: float | None = None
        self.ring_started = 0.0
        #: The queue call is over for the member (completed or transferred).
        self.done = False


#: A SIP URI's host part for the lab's own addresses.
SIP_DOMAIN = "127.0.0.1"
#: The lab's PJSIP UDP transport port (chan_sip has 5060).
PJSIP_PORT = 5070


class SimError(Exception):
    """A command the simulated PBX cannot carry out; the text says why."""


class Leg:
    """A call attempt to a phone or trunk: ringing until answered or failed."""

    __slots__ = ("answered", "caller", "chan", "dialstring", "ended", "kind", "line", "member", "owner", "started")

    def __init__(
        self,
        kind: str,
        caller: Channel | None,
        chan: Channel,
        line: Line | None,
        owner: Any,
        dialstring: str,
        started: float,
        member: Member | None = None,
    ) -> None:
        self.kind = kind  # "queue", "dial", "originate", "local"
        self.caller = caller
        self.chan = chan
        self.line = line
        self.owner = owner
        self.member = member
        self.dialstring = dialstring
        self.answered = False
        self.ended = False
        self.started = started


class DialJob:
    __slots__ = ("answered", "chan", "legs", "started", "statuses", "timer")

    def __init__(self, chan: Channel, started: float) -> None:
        self.chan = chan
        self.legs: list[Leg] = []
        self.timer: Any = None
        self.answered: Leg | None = None
        self.statuses: list[str] = []
        self.started = started


class WaitJob:
    __slots__ = ("chan", "kind", "timer")

    def __init__(self, chan: Channel, kind: str) -> None:
        self.chan = chan
        self.kind = kind  # "wait", "moh"
        self.timer: Any = None
