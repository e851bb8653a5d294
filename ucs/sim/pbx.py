"""The simulated Asterisk 20: channels, bridges, devices, dialplan, phones.

:class:`Sim` is fed by commands (the AMI actions, the control API used by
tests, the demo and benchmarks) and by its clock, and emits the events a real
Asterisk 20 with chan_sip emits for the same situations, in the same order as
the captures in ``shared/ami-captures`` (identifiers and timings differ).

It owns no socket: :mod:`ucs.sim.server` serves it over AMI.  Every timer goes
through the injected clock (``IReactorTime``), so tests drive it with
``twisted.internet.task.Clock``.

Vocabulary used in the code:

- a channel with ``pbx`` set runs a dialplan (the caller's leg, a Local;2
  half): when its application returns it goes on to the next priority, and
  when the dialplan ends it is hung up (``SoftHangupRequest`` + ``Hangup``);
- the called side of ``Dial``/``Queue``/``Originate`` has a :class:`Leg`
  until it answers, and no dialplan: when its bridge breaks it is hung up;
- ``job`` is the application a pbx channel is running (a queue entry, a
  dial, a wait).
"""

from __future__ import annotations

import datetime
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from ucs.sim.dialplan import Dialplan, substitute
from ucs.sim.model import (
    Behaviour,
    Bridge,
    Channel,
    Delay,
    Line,
    Member,
    Queue,
    QueueEntry,
    draw,
)
from ucs.sim.queues import QueueMixin
from ucs.sim.wire import (
    ALL,
    CAUSE_TXT,
    CLASSES,
    Event,
    bridge_block,
    channel_block,
    clean,
    make_event,
)
from ucs.sim.xfer import XferMixin

log = logging.getLogger(__name__)

CALL = "call,all"
AGENT = "agent,all"
DIALPLAN = "dialplan,all"
SYSTEM = "system,all"
SECURITY = "security,all"
_DIALPLAN_BIT = CLASSES["dialplan"]
_SECURITY_BIT = CLASSES["security"]

#: A test clock starts at 0; Uniqueids then count from this epoch instead.
DEFAULT_EPOCH = 1795391200.0
SIP_DOMAIN = "127.0.0.1"
#: The lab's PJSIP UDP transport port (chan_sip has 5060).
PJSIP_PORT = 5070


class SimError(Exception):
    """A command the simulated PBX cannot carry out; the text says why."""


class Subscription:
    """An event listener; ``mask`` selects the event classes it wants."""

    __slots__ = ("_mask", "_sim", "fn")

    def __init__(self, sim: Sim, fn: Callable[[Event], None], mask: int) -> None:
        self._sim = sim
        self.fn = fn
        self._mask = mask

    @property
    def mask(self) -> int:
        return self._mask

    @mask.setter
    def mask(self, value: int) -> None:
        self._mask = value
        self._sim._recompute_mask()

    def cancel(self) -> None:
        self._sim._unsubscribe(self)


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


# Application return values
CONTINUE, JUMP, WAIT, END = 0, 1, 2, 3


class Phone:
    """The control handle of a simulated phone (or of a trunk's far end)."""

    def __init__(self, sim: Sim, line: Line) -> None:
        self._sim = sim
        self.line = line

    @property
    def device(self) -> str:
        return self.line.device

    @property
    def channels(self) -> list[Channel]:
        return list(self.line.channels)

    @property
    def ringing(self) -> Channel | None:
        for c in self.line.channels:
            if c.leg is not None and not c.leg.answered and not c.leg.ended:
                return c
        return None

    def set_behaviour(
        self,
        *,
        answer_after: Delay = None,
        busy: bool = False,
        hangup_after: Delay = None,
        remote_answer: bool = False,
        decline: bool = False,
        silent: bool = False,
    ) -> Phone:
        self.line.behaviour = Behaviour(
            answer_after=answer_after,
            busy=busy,
            hangup_after=hangup_after,
            remote_answer=remote_answer,
            decline=decline,
            silent=silent,
        )
        return self

    def answer(self) -> Channel:
        """Answer the call that is ringing on this phone now."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to answer")
        self._sim._leg_answer(ch.leg)
        return ch

    def reject(self) -> None:
        """Decline the ringing call (486 Busy Here)."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to reject")
        self._sim._leg_end(ch.leg, "BUSY", 17, rna=True)

    def decline(self) -> None:
        """Decline the ringing call (603 Decline) after it rang a while: chan_sip
        reports it to the caller as BUSY, chan_pjsip hangs up with cause 21
        and the caller sees NOANSWER (the matrix's ``ringall_decline_then_answer``)."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to decline")
        assert ch.leg is not None
        self._sim._refused(ch.leg, "NOANSWER" if ch.tech == "PJSIP" else "BUSY", 21)

    def hangup(self, channel: Channel | None = None) -> None:
        """Hang up (send BYE on) the phone's call, or the given channel of it."""
        chans = [channel] if channel is not None else [c for c in self.line.channels if not c.gone]
        if not chans:
            raise SimError(f"{self.device} has no call to hang up")
        for c in chans:
            self._sim.bye(c)

    def dial(self, exten: str) -> Channel | None:
        """The user dials ``exten`` on this phone (runs the line's context);
        None when the PBX refuses it before any channel exists (no such
        extension)."""
        return self._sim.call_from_line(self.line, exten)

    def register(self, ip: str, port: int = 5060, useragent: str = "", expires: float = 3600) -> None:
        self._sim.register(self.device, ip, port, useragent=useragent, expires=expires)

    def unregister(self) -> None:
        self._sim.unregister(self.device)


class Sim(QueueMixin, XferMixin):
    """The simulated PBX.  Build one with :func:`ucs.sim.lab.lab` for the lab."""

    version = "20.10.0"

    def __init__(
        self,
        clock: Any = None,
        *,
        seed: int | None = 0,
        epoch: float | None = None,
        system_name: str = "",
    ) -> None:
        if clock is None:  # pragma: no cover - real runs pass the reactor
            from twisted.internet import reactor as clock
        self.clock = clock
        self.random = random.Random(seed)
        now = clock.seconds()
        self._offset = 0.0 if now > 1e9 else (epoch or DEFAULT_EPOCH) - now
        self.system_name = system_name
        self.lines: dict[str, Line] = {}
        self.queues: dict[str, Queue] = {}
        self.dialplan = Dialplan()
        self.ami_users: dict[str, str] = {}
        self.global_vars: dict[str, str] = {}
        self._subs: list[Subscription] = []
        self._mask = 0
        self._held: list[Event] | None = None
        self._state_listeners: list[Callable[[str], None]] = []
        self._ring_batch: list[Event] | None = None
        self._pending: set[Any] = set()
        self.started_at = self.now()
        self._boot(first=True)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        return self.clock.seconds() + self._offset

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any, chan: Channel | None = None) -> Any:
        box: list[Any] = []

        def run() -> None:
            dc = box[0]
            self._pending.discard(dc)
            if chan is not None:
                try:
                    chan.timers.remove(dc)
                except ValueError:
                    pass
            fn(*args)

        dc = self.clock.callLater(max(0.0, delay), run)
        box.append(dc)
        self._pending.add(dc)
        if chan is not None:
            chan.timers.append(dc)
        return dc

    def _cancel(self, dc: Any) -> None:
        if dc is not None and dc.active():
            dc.cancel()
        self._pending.discard(dc)

    # ---------------------------------------------------------------- events

    def subscribe(self, fn: Callable[[Event], None], mask: int = ALL) -> Subscription:
        """Call ``fn(event)`` for each event of the classes in ``mask``."""
        sub = Subscription(self, fn, mask)
        self._subs.append(sub)
        self._recompute_mask()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        self._recompute_mask()

    def _recompute_mask(self) -> None:
        m = 0
        for s in self._subs:
            m |= s.mask
        self._mask = m

    def on_state(self, fn: Callable[[str], None]) -> None:
        """``fn("shutdown")`` when the PBX goes down, ``fn("booted")`` when back."""
        self._state_listeners.append(fn)

    def _dispatch(self, ev: Event) -> None:
        if self._held is not None:
            self._held.append(ev)
            return
        for s in self._subs:
            if s._mask & ev.mask:
                s.fn(ev)

    def _emit(self, name: str, priv: str, body: str) -> None:
        if not self._subs and self._held is None:
            return
        self._dispatch(make_event(name, priv, body))

    def hold_events(self) -> None:
        """Keep events back (while an action is answered) until :meth:`release_events`."""
        if self._held is None:
            self._held = []

    def release_events(self) -> None:
        held, self._held = self._held, None
        for ev in held or ():
            self._dispatch(ev)

    def _chan_ev(self, name: str, ch: Channel, extra: str = "", priv: str = CALL) -> None:
        if not self._subs and self._held is None:
            return
        self._dispatch(make_event(name, priv, channel_block(ch) + extra))

    def _varset(self, ch: Channel, var: str, value: str) -> None:
        ch.vars[var] = value
        if self._mask & _DIALPLAN_BIT:
            self._chan_ev("VarSet", ch, f"Variable: {var}\r\nValue: {value}\r\n", DIALPLAN)

    def _newexten(self, ch: Channel, app: str, data: str) -> None:
        ch.app, ch.appdata = app, data
        if self._mask & _DIALPLAN_BIT:
            self._chan_ev("Newexten", ch, f"Extension: {ch.exten}\r\nApplication: {app}\r\nAppData: {data}\r\n", DIALPLAN)

    def _set_state(self, ch: Channel, state: int) -> None:
        if ch.state == state:
            return
        ch.state = state
        self._chan_ev("Newstate", ch)
        if ch.line is not None and ch.line.tech == "PJSIP":
            self._update_line(ch.line)
        if state == 6 and ch.tech == "Local" and ch.name.endswith(";2"):
            self._local_answered(ch)

    def _set_connected(self, ch: Channel, num: str, name: str) -> None:
        ch.conn_num, ch.conn_name = num, name
        self._chan_ev("NewConnectedLine", ch)

    def _set_callerid(self, ch: Channel, num: str, name: str) -> None:
        ch.cid_num, ch.cid_name = num, name
        self._chan_ev("NewCallerid", ch, "CID-CallingPres: 0 (Presentation Allowed, Not Screened)\r\n")

    def _moh_start(self, ch: Channel, cls: str = "default") -> None:
        if not ch.moh:
            ch.moh = True
            self._chan_ev("MusicOnHoldStart", ch, f"Class: {cls}\r\n")

    def _moh_stop(self, ch: Channel) -> None:
        if ch.moh:
            ch.moh = False
            self._chan_ev("MusicOnHoldStop", ch)

    def _eventtv(self) -> str:
        t = datetime.datetime.fromtimestamp(self.now(), datetime.UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"

    def security_event(self, name: str, body: str) -> None:
        if self._mask & _SECURITY_BIT:
            self._emit(name, SECURITY, f"EventTV: {self._eventtv()}\r\n" + body)

    # --------------------------------------------------------------- devices

    def _set_dev(self, dev: str, state: str, force: bool = False) -> bool:
        if not force and self.devices.get(dev) == state:
            return False
        self.devices[dev] = state
        self._emit("DeviceStateChange", CALL, f"Device: {dev}\r\nState: {state}\r\n")
        return True

    def _line_state(self, line: Line) -> str:
        if not line.reachable:
            return "UNAVAILABLE"
        if line.trunk:
            return "NOT_INUSE"
        ringing = inuse = False
        for c in line.channels:
            if line.tech == "PJSIP":
                # chan_pjsip derives it from its channels' states: a channel
                # still Down (INVITE sent, no 180 yet) counts for nothing.
                if c.state == 5:
                    ringing = True
                elif c.state != 0:
                    inuse = True
            elif c.leg is not None and not c.leg.answered:
                ringing = True
            else:
                inuse = True
        if ringing:
            return "RINGINUSE" if inuse else "RINGING"
        return "INUSE" if inuse else "NOT_INUSE"

    #: Seconds chan_pjsip's device state lags behind its channels: it is
    #: computed by Asterisk's device-state thread from channel snapshots, so a
    #: call refused at once (486, 603) leaves no trace in it (pj_internal_busy).
    PJSIP_DEVSTATE_LAG = 0.1

    def _update_line(self, line: Line, force: bool = False, at_once: bool = False) -> None:
        if line.tech == "PJSIP" and not at_once:
            if line.dev_timer is None or not line.dev_timer.active():
                line.dev_timer = self._later(self.PJSIP_DEVSTATE_LAG, self._update_line, line, False, True)
            return
        state = self._line_state(line)
        if self._set_dev(line.device, state, force):
            self._device_changed(line.device, state)

    # ----------------------------------------------------------------- lines

    def add_line(
        self,
        device: str,
        name: str = "",
        ip: str | None = None,
        port: int = 5060,
        *,
        dynamic: bool = False,
        secret: str | None = None,
        context: str = "internal",
        call_limit: int | None = None,
    ) -> Phone:
        """A phone: ``add_line("SIP/1001", "Alice Agent", "127.0.0.11")`` (a chan_sip
        peer) or ``add_line("PJSIP/2001", "Erin Agent", "127.0.0.31")`` (a PJSIP
        endpoint whose AOR has a static contact; ``dynamic=True``: it registers)."""
        tech, peer = _peer(device)
        if dynamic and ip is not None:
            raise SimError(f"{device}: a dynamic peer gets its address when it registers; give no ip")
        if not dynamic and ip is None:
            raise SimError(f"{device}: a static peer needs an ip (or dynamic=True)")
        line = Line(
            peer,
            tech=tech,
            name=clean(name),
            ip=ip,
            port=port,
            dynamic=dynamic,
            secret=secret,
            context=context,
            call_limit=call_limit,
        )
        if tech == "PJSIP" and ip is not None:
            line.reg_contact = f"sip:{peer}@{ip}:{port}"
        self.lines[line.device] = line
        self.devices[line.device] = self._line_state(line)
        return Phone(self, line)

    def add_trunk(self, device: str, ip: str, port: int = 5060, *, context: str = "from-carrier") -> Phone:
        """The SIP trunk callers come from (and outbound calls go to)."""
        _tech, peer = _peer(device)
        line = Line(peer, ip=ip, port=port, context=context, trunk=True)
        self.lines[line.device] = line
        self.devices[line.device] = "NOT_INUSE"
        return Phone(self, line)

    def line(self, device: str) -> Line:
        try:
            if "/" in device:
                tech, _, peer = device.partition("/")
                return self.lines[f"{tech.upper()}/{peer}"]
            return self.lines.get(f"SIP/{device}") or self.lines[f"PJSIP/{device}"]
        except KeyError:
            raise SimError(f"no line {device!r}: the lines are {', '.join(self.lines) or 'none'}") from None

    def phone(self, device: str) -> Phone:
        return Phone(self, self.line(device))

    @property
    def pjsip(self) -> bool:
        """Whether res_pjsip is loaded: the PBX has PJSIP endpoints."""
        return any(line.tech == "PJSIP" for line in self.lines.values())

    def trunk(self, device: str = "SIP/carrier") -> Phone:
        return self.phone(device)

    def register(self, device: str, ip: str, port: int = 5060, *, useragent: str = "", expires: float = 3600) -> None:
        """A dynamic peer registers from ``ip:port`` (as the capture's desk phone)."""
        line = self.line(device)
        if not line.dynamic:
            raise SimError(f"{device} is a static peer (host={line.ip}); only dynamic peers register")
        if line.tech == "PJSIP":
            self._pjsip_register(line, ip, port, useragent, expires)
            return
        self.security_event(
            "ChallengeSent",
            f"Severity: Informational\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
            f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
            f"RemoteAddress: IPV4/UDP/{ip}/{port}\r\nChallenge: {self.random.getrandbits(32):08x}\r\n",
        )
        line.ip, line.port, line.registered = ip, port, True
        line.useragent = clean(useragent)
        line.reg_contact = f"sip:{line.peer}@{ip}:{port}"
        self._cancel(line.reg_timer)
        line.reg_expires_at = self.now() + expires
        line.reg_timer = self._later(expires, self._expire, line)
        self._emit(
            "PeerStatus",
            SYSTEM,
            f"ChannelType: SIP\r\nPeer: {line.device}\r\nPeerStatus: Registered\r\nAddress: {ip}:{port}\r\n",
        )
        self._update_line(line)

    def _pjsip_auth_events(self, line: Line) -> None:
        """res_pjsip challenges every REGISTER, then reports the digest accepted."""
        for name, last in (("ChallengeSent", "Challenge: \r\n"), ("SuccessfulAuth", "UsingPassword: 1\r\n")):
            self.security_event(
                name,
                f"Severity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
                f"SessionID: {line.reg_callid}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/{PJSIP_PORT}\r\n"
                f"RemoteAddress: IPV4/UDP/{line.ip}/{line.port}\r\n" + last,
            )

    def _contact_status(self, line: Line, status: str) -> None:
        self._emit(
            "ContactStatus",
            SYSTEM,
            f"URI: {line.reg_contact}\r\nContactStatus: {status}\r\nAOR: {line.peer}\r\n"
            f"EndpointName: {line.peer}\r\nRoundtripUsec: 0\r\n",
        )

    def _pjsip_register(self, line: Line, ip: str, port: int, useragent: str, expires: float) -> None:
        line.ip, line.port, line.registered = ip, port, True
        line.useragent = clean(useragent)
        line.reg_contact = f"sip:{line.peer}@{ip}:{port}"
        line.reg_callid = f"{self.random.randint(1, 9)}-{self.random.randint(1000, 99999)}@{ip}"
        self._cancel(line.reg_timer)
        line.reg_expires_at = self.now() + expires
        line.reg_timer = self._later(expires, self._expire, line)
        self._pjsip_auth_events(line)
        self._emit("PeerStatus", SYSTEM, f"ChannelType: PJSIP\r\nPeer: {line.device}\r\nPeerStatus: Reachable\r\n")
        self._update_line(line, at_once=True)
        self._contact_status(line, "NonQualified")

    def _pjsip_unregister(self, line: Line, by_phone: bool) -> None:
        if by_phone:
            self._pjsip_auth_events(line)
        line.registered = False
        self._update_line(line, at_once=True)
        self._emit("PeerStatus", SYSTEM, f"ChannelType: PJSIP\r\nPeer: {line.device}\r\nPeerStatus: Unreachable\r\n")
        self._contact_status(line, "Removed")
        line.ip, line.port, line.reg_expires_at = None, 0, None

    def _expire(self, line: Line) -> None:
        line.reg_timer = None
        if line.registered:
            self._unregister(line)

    def unregister(self, device: str) -> None:
        line = self.line(device)
        if not line.dynamic or not line.registered:
            raise SimError(f"{device} is not registered")
        if line.tech == "PJSIP":
            self._cancel(line.reg_timer)
            line.reg_timer = None
            self._pjsip_unregister(line, by_phone=True)
            return
        self.security_event(
            "ChallengeSent",
            f"Severity: Informational\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
            f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
            f"RemoteAddress: IPV4/UDP/{line.ip}/{line.port}\r\nChallenge: {self.random.getrandbits(32):08x}\r\n",
        )
        self._cancel(line.reg_timer)
        line.reg_timer = None
        self._unregister(line)

    def _unregister(self, line: Line) -> None:
        if line.tech == "PJSIP":
            self._pjsip_unregister(line, by_phone=False)
            return
        line.registered = False
        line.ip, line.port, line.reg_expires_at = None, 0, None
        self._emit("PeerStatus", SYSTEM, f"ChannelType: SIP\r\nPeer: {line.device}\r\nPeerStatus: Unregistered\r\nCause: Expired\r\n")
        self._update_line(line)

    # -------------------------------------------------------------- channels

    def _uniqueid(self) -> str:
        n = self._uid
        self._uid += 1
        return f"{int(self.now())}.{n}"

    def _new_channel(
        self,
        name: str,
        *,
        state: int,
        cid: tuple[str, str],
        context: str,
        exten: str,
        linkedid: str | None = None,
        line: Line | None = None,
        tech: str = "SIP",
        conn: tuple[str, str] = ("", ""),
    ) -> Channel:
        uid = self._uniqueid()
        ch = Channel(name, uid, linkedid or uid, self.now())
        ch.state = state
        ch.cid_num, ch.cid_name = cid
        ch.conn_num, ch.conn_name = conn
        ch.context, ch.exten = context, exten
        ch.line = line
        ch.tech = line.tech if line is not None else tech
        self.channels[name] = ch
        self.processed_calls += 1
        self._chan_ev("Newchannel", ch)
        return ch

    def _sip_name(self, line: Line) -> str:
        self._sip_seq += 1
        return f"{line.tech}/{line.peer}-{self._sip_seq:08x}"

    def dial_target(self, tech: str, peer: str) -> Line | None:
        """The line a ``Dial``/``Originate`` string's ``TECH/peer`` names, if any."""
        tech = tech.upper()
        return self.lines.get(f"{tech}/{peer}") if tech in ("SIP", "PJSIP") else None

    def _callid(self, line: Line) -> str:
        if line.trunk:
            return f"{self.random.randint(1, 9)}-{self.random.randint(1000, 99999)}@{line.ip}"
        return f"{self.random.getrandbits(128):032x}@{SIP_DOMAIN}:5060"

    def _line_channel(self, line: Line, caller: Channel) -> Channel:
        """The channel Asterisk creates to ring ``line`` for ``caller``'s call."""
        ch = self._new_channel(
            self._sip_name(line),
            state=0,
            cid=(line.number, line.display),
            context=line.context,
            exten="s",
            linkedid=caller.linkedid,
            line=line,
        )
        self._varset(ch, "SIPCALLID", self._callid(line))
        return ch

    def find_channel(self, name: str) -> Channel | None:
        ch = self.channels.get(name)
        if ch is None:
            low = name.lower()
            for c in self.channels.values():
                if c.name.lower() == low:
                    return c
        return ch

    def channels_of(self, device: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.peer_name == device]

    #: Seconds a phone takes to pick up after a SIP NOTIFY ``Event: talk``.
    REMOTE_ANSWER_DELAY = 0.1

    def sip_notify(self, peer: str, variables: dict[str, str]) -> None:
        """The AMI ``SIPnotify`` to ``peer`` (``1001`` or ``SIP/1001``); ``variables``
        are the NOTIFY's headers (``{"Event": "talk"}``).

        A phone whose behaviour has ``remote_answer`` answers its ringing call
        on ``Event: talk``; every other phone (and every other NOTIFY) is
        accepted and ignored, as a real phone answers 200 or 489 and Asterisk
        reports "Notify Sent" either way.  A peer that does not exist or is
        not registered has no address: Asterisk says so.
        """
        name = peer[4:] if peer.lower().startswith("sip/") else peer
        line = self.lines.get(f"SIP/{name}")
        if line is None or not line.reachable:
            raise SimError("Could not create address")
        event = next((v for k, v in variables.items() if k.lower() == "event"), "")
        if event.strip().lower() == "talk":
            self._remote_answer(line)

    def pjsip_notify(self, endpoint: str, option: str) -> None:
        """The AMI ``PJSIPNotify`` to ``endpoint`` (``2001`` or ``PJSIP/2001``) with a
        ``pjsip_notify.conf`` preset ``option``; the lab has one, ``talk``
        (``Event: talk``), which a phone with ``remote_answer`` obeys."""
        name = endpoint[6:] if endpoint.lower().startswith("pjsip/") else endpoint
        line = self.lines.get(f"PJSIP/{name}")
        if line is None:
            raise SimError(f"Unable to retrieve endpoint {name}")
        if option.strip().lower() != "talk":
            raise SimError(f"Unable to find notify type '{option}'")
        if line.reachable:
            self._remote_answer(line)

    def _remote_answer(self, line: Line) -> None:
        if line.trunk or not line.behaviour.remote_answer:
            return
        ch = Phone(self, line).ringing
        if ch is not None and ch.leg is not None:
            self._later(self.REMOTE_ANSWER_DELAY, self._leg_answer, ch.leg, chan=ch)

    def _destroy(self, ch: Channel, cause: int) -> None:
        """The channel is gone: ``Hangup``, devices updated, its Local half told."""
        if ch.gone:
            return
        ch.gone = True
        for dc in ch.timers:
            self._cancel(dc)
        ch.timers = []
        if ch.leg is not None:
            ch.leg.ended = True
        peer = ch.local_peer
        if peer is not None and not peer.gone:
            peer.local_peer = None
            self._chan_ev("HangupRequest", peer, "Cause: 16\r\n")
        if ch.line is not None and ch.tech == "SIP" and not ch.line.trunk:
            self._varset(ch, "RTPAUDIOQOS", _QOS)
        self._chan_ev("Hangup", ch, f"Cause: {cause}\r\nCause-txt: {CAUSE_TXT.get(cause, 'Unknown')}\r\n")
        self.channels.pop(ch.name, None)
        if ch.line is not None:
            try:
                ch.line.channels.remove(ch)
            except ValueError:
                pass
            self._update_line(ch.line)
        if ch.tech == "Local":
            dev = ch.name.rsplit("-", 1)[0]
            if not self.dialplan.exists(ch.context, ch.exten):
                self._set_dev(dev, "INVALID", force=True)
            elif not any(c.tech == "Local" and c.name.startswith(dev + "-") for c in self.channels.values()):
                self._set_dev(dev, "NOT_INUSE")
        if peer is not None and not peer.gone:
            self._hangup(peer, "req", 16)

    # --------------------------------------------------------------- bridges

    def _bridge_create(self) -> Bridge:
        b = Bridge(str(uuid.UUID(int=self.random.getrandbits(128), version=4)), self.now())
        self.bridges[b.id] = b
        self._emit("BridgeCreate", CALL, bridge_block(b))
        return b

    def _bridge_enter(self, b: Bridge, ch: Channel) -> None:
        b.channels.append(ch)
        ch.bridge = b
        self._emit("BridgeEnter", CALL, bridge_block(b) + channel_block(ch))
        if len(b.channels) >= 2:
            for c in b.channels:
                if c.bridge_time is None:
                    c.bridge_time = self.now()
                cb = c.on_bridged
                if cb is not None:
                    c.on_bridged = None
                    cb(c)
            if self._mask & _DIALPLAN_BIT and len(b.channels) == 2:
                a, z = b.channels
                for x, y in ((a, z), (z, a)):
                    self._varset(x, "BRIDGEPEER", y.name)
                    self._varset(x, "BRIDGEPVTCALLID", y.vars.get("SIPCALLID", ""))

    def _bridge_leave(self, ch: Channel) -> Bridge | None:
        b = ch.bridge
        if b is None:
            return None
        if self._mask & _DIALPLAN_BIT and len(b.channels) == 2:
            other = b.channels[0] if b.channels[1] is ch else b.channels[1]
            if ch.tech == "SIP" and other.tech == "SIP":
                # chan_sip reports the RTP quality of both legs as the call ends.
                for x, y in ((ch, other), (other, ch)):
                    for var, value in _QOS_VARS:
                        self._varset(x, var, value)
                        self._varset(y, var + "BRIDGED", value)
            self._varset(ch, "BRIDGEPEER", "")
            self._varset(ch, "BRIDGEPVTCALLID", "")
        b.channels.remove(ch)
        ch.bridge = None
        self._queue_bridge_left(ch)
        self._emit("BridgeLeave", CALL, bridge_block(b) + channel_block(ch))
        return b

    def _bridge_destroy(self, b: Bridge) -> None:
        if self.bridges.pop(b.id, None) is not None:
            self._emit("BridgeDestroy", CALL, bridge_block(b))

    def _dissolve(self, b: Bridge) -> list[Channel]:
        """Everyone left in a two-party bridge leaves it; the bridge goes."""
        rest: list[Channel] = []
        if len(b.channels) <= 1:
            for y in list(b.channels):
                self._bridge_leave(y)
                rest.append(y)
            self._bridge_destroy(b)
        return rest

    def _after_bridge(self, y: Channel, reason: str) -> None:
        """``y`` was left alone in a bridge: its application returns, or it hangs up."""
        if y.gone:
            return
        if y.pbx:
            job = y.job
            if isinstance(job, QueueEntry):
                self._queue_after_bridge(job, reason)
                self._pbx_next(y)
            elif isinstance(job, DialJob):
                self._varset(y, "DIALSTATUS", "ANSWER")
                self._pbx_next(y)
            else:
                y.job = None
                self._pbx_run(y)
        else:
            self._destroy(y, 16)

    # ---------------------------------------------------------------- hangup

    def bye(self, ch: Channel) -> None:
        """The endpoint of ``ch`` hangs up (a phone or the caller sends BYE)."""
        if ch.gone:
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "BUSY", 17, rna=True)
            return
        self._chan_ev("HangupRequest", ch)
        self._hangup(ch, "bye")

    def hangup_channel(self, ch: Channel, cause: int | None = None) -> None:
        """The AMI ``Hangup`` action on ``ch``."""
        if ch.gone:
            return
        if ch.hold_owner is not None:
            self._atxfer_transferer_gone(ch.hold_owner, ch)
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "CANCEL", cause if cause is not None else 16, rna=True)
            return
        self._hangup(ch, "ami", cause)

    def _hangup(self, ch: Channel, source: str, cause: int | None = None) -> None:
        """Tear ``ch`` down.  ``source``: ``bye`` (its endpoint hung up; the
        HangupRequest is already out), ``req`` (same, propagated from the other
        half of a Local channel), ``ami`` (the Hangup action)."""
        if ch.gone:
            return
        if ch.hold_owner is not None:
            self._atxfer_transferer_gone(ch.hold_owner, ch)
            return
        if self._local_hangup_hook(ch):
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "CANCEL", 16, rna=True)
            return
        b = ch.bridge
        if b is not None:
            reason = "agent" if source == "bye" and self._is_queue_agent(ch) else "caller"
            if ch.pbx and source != "ami":
                if isinstance(ch.job, QueueEntry):
                    self._queue_complete(ch.job, "caller", with_dest=True)
                self._bridge_leave(ch)
                ch.cause = cause if cause is not None else 16
                self._pbx_end(ch)
                for y in self._dissolve(b):
                    self._after_bridge(y, reason)
                return
            self._bridge_leave(ch)
            rest = self._dissolve(b)
            if ch.pbx:
                for y in rest:
                    self._after_bridge(y, reason)
                if isinstance(ch.job, QueueEntry):
                    self._queue_after_bridge(ch.job, reason)
                ch.cause = cause if cause is not None else 16
                self._pbx_end(ch)
            else:
                self._destroy(ch, cause if cause is not None else 16)
                for y in rest:
                    self._after_bridge(y, reason)
            return
        if ch.pbx:
            self._job_interrupt(ch, hangup=True)
            if ch.cause is None:
                ch.cause = cause if cause is not None else 0
            self._pbx_end(ch)
            return
        self._destroy(ch, cause if cause is not None else 16)

    def _pbx_end(self, ch: Channel) -> None:
        if ch.gone:
            return
        self._chan_ev("SoftHangupRequest", ch, "Cause: 16\r\n")
        cause = ch.cause if ch.cause is not None else 16
        self._destroy(ch, cause)

    def _job_interrupt(self, ch: Channel, hangup: bool) -> None:
        """Stop the application ``ch`` runs (it hangs up or is redirected)."""
        job = ch.job
        ch.job = None
        if isinstance(job, QueueEntry):
            self._queue_leave_waiting(job, abandon=hangup)
        elif isinstance(job, DialJob):
            self._dial_cancel(job)
        elif isinstance(job, WaitJob):
            self._cancel(job.timer)
        self._moh_stop(ch)

    # -------------------------------------------------------------- dialplan

    def _lookup_var(self, ch: Channel, name: str) -> str:
        if name == "EXTEN":
            return ch.exten
        if name == "CONTEXT":
            return ch.context
        if name == "CALLERID(num)":
            return ch.cid_num
        if name == "CALLERID(name)":
            return ch.cid_name
        if name == "UNIQUEID":
            return ch.uniqueid
        return ch.vars.get(name, self.global_vars.get(name, ""))

    def _pbx_start(self, ch: Channel) -> None:
        ch.pbx = True
        self._pbx_run(ch)

    def _pbx_next(self, ch: Channel) -> None:
        ch.job = None
        ch.priority += 1
        self._pbx_run(ch)

    def _pbx_run(self, ch: Channel) -> None:
        while not ch.gone:
            steps = self.dialplan.lookup(ch.context, ch.exten)
            if steps is None or not 1 <= ch.priority <= len(steps):
                self._pbx_end(ch)
                return
            app, data = steps[ch.priority - 1]
            data = substitute(data, lambda n: self._lookup_var(ch, n))
            self._newexten(ch, app, data)
            ch.app, ch.appdata = app, data
            fn = getattr(self, "_app_" + app.lower(), None)
            if fn is None:
                log.warning("sim: %s runs %s(%s), which the simulator does not know; skipped", ch.name, app, data)
                ch.priority += 1
                continue
            res = fn(ch, data)
            if res == CONTINUE:
                ch.priority += 1
            elif res == JUMP:
                continue
            elif res == END:
                self._pbx_end(ch)
                return
            else:
                return

    def _app_noop(self, ch: Channel, data: str) -> int:
        return CONTINUE

    def _app_set(self, ch: Channel, data: str) -> int:
        name, _, value = data.partition("=")
        if "(" in name:  # a function such as CDR(userfield): no VarSet
            ch.vars[name] = value
        else:
            self._varset(ch, name, value)
        return CONTINUE

    def _app_answer(self, ch: Channel, data: str) -> int:
        self._set_state(ch, 6)
        return CONTINUE

    def _app_hangup(self, ch: Channel, data: str) -> int:
        if data.strip().isdigit():
            ch.cause = int(data)
        return END

    def _app_goto(self, ch: Channel, data: str) -> int:
        parts = data.split(",")
        if len(parts) == 3:
            ch.context, ch.exten, ch.priority = parts[0], parts[1], int(parts[2])
        elif len(parts) == 2:
            ch.exten, ch.priority = parts[0], int(parts[1])
        else:
            ch.priority = int(parts[0])
        return JUMP

    def _app_wait(self, ch: Channel, data: str) -> int:
        try:
            secs = float(data or 0)
        except ValueError:
            secs = 0.0
        job = WaitJob(ch, "wait")
        ch.job = job
        job.timer = self._later(secs, self._wait_done, ch, job, chan=ch)
        return WAIT

    def _wait_done(self, ch: Channel, job: WaitJob) -> None:
        if ch.job is job and not ch.gone:
            self._pbx_next(ch)

    def _app_musiconhold(self, ch: Channel, data: str) -> int:
        cls, _, duration = data.partition(",")
        self._set_state(ch, 6)
        self._moh_start(ch, cls or "default")
        job = WaitJob(ch, "moh")
        ch.job = job
        if duration.strip():
            job.timer = self._later(float(duration), self._moh_done, ch, job, chan=ch)
        return WAIT

    def _moh_done(self, ch: Channel, job: WaitJob) -> None:
        if ch.job is job and not ch.gone:
            self._moh_stop(ch)
            self._pbx_next(ch)

    _app_playback = _app_noop
    _app_progress = _app_noop
    _app_ringing = _app_noop

    # ---------------------------------------------------------------- Dial()

    def _app_dial(self, ch: Channel, data: str) -> int:
        args = data.split(",")
        job = DialJob(ch, self.now())
        ch.job = job
        for target in args[0].split("&"):
            tech, _, rest = target.partition("/")
            peer, _, number = rest.partition("/")
            line = self.dial_target(tech, peer)
            if line is None or not line.reachable:
                job.statuses.append("CHANUNAVAIL")
                continue
            job.legs.append(self._dial_leg(job, line, number, rest))
        if not job.legs:
            self._varset(ch, "DIALSTATUS", "CHANUNAVAIL")
            ch.job = None
            return CONTINUE
        timeout = args[1].strip() if len(args) > 1 else ""
        if timeout:
            job.timer = self._later(float(timeout), self._dial_timeout, job, chan=ch)
        return WAIT

    def _dial_leg(self, job: DialJob, line: Line, number: str, dialstring: str) -> Leg:
        caller = job.chan
        if line.trunk:
            callee = self._new_channel(
                self._sip_name(line), state=0, cid=("", ""), context=line.context, exten="s", linkedid=caller.linkedid, line=line
            )
            callee.exten = number
            self._newexten(callee, "AppDial", "(Outgoing Line)")
            self._set_callerid(callee, number, caller.cid_name)
            self._set_connected(callee, caller.cid_num, caller.cid_name)
        else:
            callee = self._line_channel(line, caller)
            callee.exten = caller.exten
            self._newexten(callee, "AppDial", "(Outgoing Line)")
            self._set_connected(callee, caller.cid_num, caller.cid_name)
        leg = Leg("dial", caller, callee, line, job, dialstring, self.now())
        callee.leg = leg
        line.channels.append(callee)
        self._update_line(line)
        self._emit("DialBegin", CALL, channel_block(caller) + channel_block(callee, "Dest") + f"DialString: {dialstring}\r\n")
        if not line.trunk:
            self._set_connected(caller, callee.cid_num, callee.cid_name)
        self._ring(leg)
        return leg

    def _dial_timeout(self, job: DialJob) -> None:
        for leg in list(job.legs):
            if not leg.ended and not leg.answered:
                self._leg_end(leg, "NOANSWER", 16)

    def _dial_cancel(self, job: DialJob) -> None:
        self._cancel(job.timer)
        for leg in list(job.legs):
            if not leg.ended and not leg.answered:
                self._dial_end(leg, "CANCEL")
                self._destroy(leg.chan, 16)

    def _dial_answered(self, job: DialJob, leg: Leg) -> None:
        caller = job.chan
        self._cancel(job.timer)
        job.answered = leg
        for other in job.legs:
            if other is not leg and not other.ended:
                self._dial_end(other, "CANCEL")
                self._destroy(other.chan, 26)
        if caller.state != 6:
            self._set_state(caller, 6)
        elapsed = self.now() - job.started
        self._varset(caller, "DIALEDPEERNAME", leg.chan.name)
        self._varset(caller, "DIALEDPEERNUMBER", leg.dialstring)
        self._varset(caller, "RINGTIME", str(int(elapsed)))
        b = self._bridge_create()
        callee = leg.chan
        callee.exten = ""
        self._newexten(callee, "AppDial", "(Outgoing Line)")
        self._bridge_enter(b, callee)
        self._bridge_enter(b, caller)

    def _dial_failed(self, job: DialJob, status: str) -> None:
        job.statuses.append(status)
        if any(not leg.ended for leg in job.legs):
            return
        ch = job.chan
        if ch.job is not job or ch.gone:
            return
        self._cancel(job.timer)
        final = "BUSY" if "BUSY" in job.statuses else job.statuses[-1]
        if final == "BUSY":
            ch.cause = 17  # Dial passes the called side's cause on to the caller
        self._varset(ch, "DIALSTATUS", final)
        self._pbx_next(ch)

    # ------------------------------------------------------------------ legs

    def _dial_end(self, leg: Leg, status: str) -> None:
        caller = leg.caller
        head = channel_block(caller) if caller is not None and leg.kind != "local" else ""
        self._emit("DialEnd", CALL, head + channel_block(leg.chan, "Dest") + f"DialStatus: {status}\r\n")

    def _ring(self, leg: Leg) -> None:
        """The called endpoint got the INVITE: it rings, or says busy at once."""
        line = leg.line
        assert line is not None
        b = line.behaviour
        ch = leg.chan
        if b.busy:
            self._later(0.05, self._refused, leg, "BUSY", 17, chan=ch)
            return
        if b.decline:
            if ch.tech == "PJSIP":
                self._later(0.05, self._refused, leg, "NOANSWER", 21, chan=ch)
            else:
                self._refused(leg, "BUSY", 21)
            return
        if b.silent:
            delay = draw(b.answer_after, self.random)
            if delay is not None:
                self._later(delay, self._leg_answer, leg, chan=ch)
            return
        self._set_state(ch, 5)
        caller = leg.caller
        if leg.kind == "queue" and caller is not None:
            self._newexten(ch, "AppQueue", "(Outgoing Line)")
            self._chan_ev("NewConnectedLine", ch)
        head = channel_block(caller) if caller is not None else ""
        dialstate = make_event("DialState", CALL, head + channel_block(ch, "Dest") + "DialStatus: RINGING\r\n")
        if self._ring_batch is not None:
            self._ring_batch.append(dialstate)
        elif self._subs or self._held is not None:
            self._dispatch(dialstate)
        if caller is not None and caller.tech == "Local" and caller.local_peer is not None:
            self._local_ringing(caller, ch)
        if not line.trunk and line.tech == "SIP":
            self._set_dev(line.device, self._line_state(line), force=True)
        delay = draw(b.answer_after, self.random)
        if delay is not None:
            self._later(delay, self._leg_answer, leg, chan=ch)

    def _refused(self, leg: Leg, status: str, cause: int) -> None:
        """The phone answered the INVITE with a final error (486 Busy, 603 Decline).

        chan_pjsip hangs its channel up on it (``HangupRequest``); for a 603 the
        caller then sees a hangup, not a busy signal (``NOANSWER``).
        """
        if leg.ended or leg.answered:
            return
        if leg.chan.tech == "PJSIP":
            self._chan_ev("HangupRequest", leg.chan)
        self._leg_end(leg, status, cause, rna=True)

    def ring_all(self, legs: Callable[[], None]) -> None:
        """Call several phones at once (``Queue`` ringall): each ``DialState
        RINGING`` comes after all of them were called and the ones that
        refused at once were dealt with, as app_queue reads the answers in its
        wait loop only after placing every call."""
        outer = self._ring_batch
        self._ring_batch = batch = [] if outer is None else outer
        try:
            legs()
        finally:
            if outer is None:
                self._ring_batch = None
                for ev in batch:
                    self._dispatch(ev)

    def _leg_answer(self, leg: Leg) -> None:
        if leg.answered or leg.ended or leg.chan.gone:
            return
        leg.answered = True
        ch = leg.chan
        if leg.kind == "originate":
            self._originate_answered_early(leg)
        if leg.line is not None:
            self._update_line(leg.line)
        self._set_state(ch, 6)
        self._dial_end(leg, "ANSWER")
        if leg.line is not None:
            hang = draw(leg.line.behaviour.hangup_after, self.random)
            if hang is not None:
                self._later(hang, self._phone_hangs_up, ch, chan=ch)
        if leg.kind == "queue":
            self._queue_answered(leg.owner, leg)
        elif leg.kind == "dial":
            self._dial_answered(leg.owner, leg)
        elif leg.kind == "originate":
            self._originate_answered(leg.owner, leg)
        elif leg.kind == "local":
            self._local_leg_answered(leg)

    def _phone_hangs_up(self, ch: Channel) -> None:
        if not ch.gone:
            self.bye(ch)

    def _leg_end(self, leg: Leg, status: str, cause: int, rna: bool = False, dialend: bool = True) -> None:
        """The call attempt failed: no answer, busy, cancelled.  ``dialend``:
        False when nobody reports it (an Originate giving up on its own)."""
        if leg.ended or leg.answered:
            return
        leg.ended = True
        if dialend:
            self._dial_end(leg, status)
        if leg.kind == "queue" and rna:
            self._queue_rna(leg)
        self._destroy(leg.chan, cause)
        if leg.kind == "queue":
            self._queue_leg_failed(leg.owner, leg)
        elif leg.kind == "dial":
            self._dial_failed(leg.owner, status)
        elif leg.kind == "originate":
            self._originate_failed(leg.owner, status)
        elif leg.kind == "local":
            self._local_leg_failed(leg, status)

    # -------------------------------------------------------------- callers

    def caller_calls(
        self,
        exten: str,
        from_number: str = "420777123456",
        name: str = "Customer",
        *,
        trunk: str = "SIP/carrier",
        hangup_after: Delay = None,
        abandon_after: Delay = None,
    ) -> Channel:
        """A customer calls ``exten`` through the trunk.

        ``hangup_after``: seconds after someone answers (the caller is bridged)
        before the customer hangs up.  ``abandon_after``: seconds after the
        call arrives before the customer gives up if nobody answered yet.
        """
        line = self.line(trunk)
        self._check_running()
        if not line.trunk:
            raise SimError(f"{trunk} is a phone line, not a trunk: callers come in through a trunk")
        ch = self._new_channel(
            self._sip_name(line),
            state=0,
            cid=(clean(from_number), clean(name)),
            context=line.context,
            exten=clean(exten),
            line=line,
        )
        ch.dnid = ch.exten
        self._varset(ch, "SIPURI", f"sip:{ch.cid_num}@{line.ip}:{line.port}")
        self._varset(ch, "SIPDOMAIN", SIP_DOMAIN)
        self._varset(ch, "SIPCALLID", self._callid(line))
        line.channels.append(ch)
        self._set_state(ch, 4)
        self.security_event(
            "SuccessfulAuth",
            f"Severity: Informational\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {ch.exten}\r\n"
            f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
            f"RemoteAddress: IPV4/UDP/{line.ip}/{line.port}\r\nUsingPassword: 0\r\n",
        )
        talk = draw(hangup_after, self.random)
        if talk is not None:
            ch.on_bridged = lambda c, t=talk: self._later(t, self._phone_hangs_up, c, chan=c)
        patience = draw(abandon_after, self.random)
        if patience is not None:
            self._later(patience, self._give_up, ch, chan=ch)
        self._pbx_start(ch)
        return ch

    def _check_running(self) -> None:
        if not self.running:
            raise SimError("the simulated Asterisk is restarting: no call can start until it is back")

    def _give_up(self, ch: Channel) -> None:
        if not ch.gone and ch.bridge_time is None:
            self.bye(ch)

    def call_from_line(self, line: Line, exten: str) -> Channel | None:
        """The phone on ``line`` dials ``exten`` (its dialplan context runs).

        An extension its context does not have is refused (404) before any
        channel exists: None.  chan_sip reports it as a ``FailedACL``
        (``no_extension_match``) while the line shows in use for a moment.
        """
        self._check_running()
        if not line.reachable:
            raise SimError(f"{line.device} is not registered: it cannot place a call")
        if not self.dialplan.exists(line.context, clean(exten)):
            if line.tech == "SIP":
                self._set_dev(line.device, "INUSE")
                self.security_event(
                    "FailedACL",
                    f"Severity: Error\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {clean(exten)}\r\n"
                    f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
                    f"RemoteAddress: IPV4/UDP/{line.ip}/{line.port}\r\nACLName: no_extension_match\r\n",
                )
                self._update_line(line, at_once=True)
            return None
        # chan_pjsip creates the channel of an incoming INVITE already ringing.
        ch = self._new_channel(
            self._sip_name(line),
            state=4 if line.tech == "PJSIP" else 0,
            cid=(line.number, line.display),
            context=line.context,
            exten=clean(exten),
            line=line,
        )
        ch.dnid = ch.exten
        self._varset(ch, "SIPCALLID", self._callid(line))
        line.channels.append(ch)
        self._set_state(ch, 4)
        self._update_line(line)
        self._pbx_start(ch)
        return ch

    # ---------------------------------------------------------------- booting

    def _boot(self, first: bool = False) -> None:
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        if first:
            self.devices: dict[str, str] = {}
        else:
            self.devices = {d: self._line_state(line) for d, line in self.lines.items()}
            self.devices.update((f"Queue:{q}_avail", "INUSE") for q in self.queues)
        self._uid = 0
        self._sip_seq = 0
        self._local_seq = 0
        self.processed_calls = 0
        self.booted_at = self.now()
        self.reloaded_at = self.booted_at
        self.running = True
        self._kicks: set[str] = set()
        for q in self.queues.values():
            q.members.clear()
            q.avail.clear()
            q.entries.clear()
            q.rr_last = -1
            q.holdtime = q.talktime = q.completed = q.abandoned = 0
        self._members_by_dev: dict[str, list[Member]] = {}

    def restart(self, downtime: float = 0.0) -> None:
        """``core restart now``: hang up every channel, send ``Shutdown``,
        close the AMI links, forget dynamic queue members, come back after
        ``downtime`` seconds (``FullyBooted`` on the next login)."""
        if not self.running:
            raise SimError("the simulated Asterisk is already restarting")
        chans = list(self.channels.values())
        for c in reversed(chans):
            self._chan_ev("SoftHangupRequest", c, "Cause: 4\r\n")
        for b in list(self.bridges.values()):
            for c in b.channels:
                if isinstance(c.job, QueueEntry):
                    self._queue_complete(c.job, "agent", with_dest=True)
            for c in list(b.channels):
                self._bridge_leave(c)
            self._bridge_destroy(b)
        for c in chans:
            c.hold_owner = None
            if c.pbx and not c.gone:
                job = c.job
                c.job = None
                if isinstance(job, QueueEntry):
                    self._queue_leave_waiting(job, abandon=True)
                elif isinstance(job, DialJob):
                    self._dial_cancel(job)
                self._moh_stop(c)
                c.cause = 16
                self._pbx_end(c)
        for c in chans:
            if not c.gone:
                self._destroy(c, 16)
        self._emit("Shutdown", SYSTEM, "Shutdown: Cleanly\r\nRestart: True\r\n")
        self.running = False
        for dc in list(self._pending):
            self._cancel(dc)
        for line in self.lines.values():
            line.channels.clear()
            if line.reg_expires_at is not None:
                left = line.reg_expires_at - self.now()
                if left > 0:
                    line.reg_timer = self._later(left, self._expire, line)
        for fn in list(self._state_listeners):
            fn("shutdown")
        if downtime > 0:
            self._later(downtime, self._come_back)
        else:
            self._come_back()

    #: The modules ``module reload`` knows; reloading one keeps its state
    #: (dynamic queue members stay, as the matrix's sip_module_reload_queue shows).
    MODULES = ("app_queue.so", "chan_sip.so", "res_pjsip.so", "pbx_config.so", "features")

    def module_reload(self, module: str) -> None:
        """``module reload <module>`` on the Asterisk console: a ``Reload`` event."""
        if module not in self.MODULES:
            raise SimError(f"module {module!r} is not simulated: reload one of {', '.join(self.MODULES)}")
        self.reloaded_at = self.now()
        self._emit("Reload", SYSTEM, f"Module: {module}\r\nStatus: 0\r\n")

    def _come_back(self) -> None:
        self._boot()
        for fn in list(self._state_listeners):
            fn("booted")

    # ---------------------------------------------------------- snapshots

    def uptime(self) -> int:
        return int(self.now() - self.booted_at)


_QOS = "ssrc=0;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000"


_QOS_VARS = (
    ("RTPAUDIOQOS", _QOS),
    ("RTPAUDIOQOSJITTER", ("minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;stdevrxjitter=000.000000;"
     "mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;stdevtxjitter=000.000000;")),
    ("RTPAUDIOQOSLOSS", ("  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;  stdevrxlost=000.000000;"
     "  mintxlost=000.000000;  maxtxlost=000.000000;  avgtxlost=000.000000;  stdevtxlost=000.000000;")),
    ("RTPAUDIOQOSRTT", "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;     stdevrtt=000.000000;"),
    ("RTPAUDIOQOSMES", ("   minrxmes=000.000000;   maxrxmes=000.000000;   avgrxmes=000.000000;   stdevrxmes=000.000000;"
     "   mintxmes=000.000000;   maxtxmes=000.000000;   avgtxmes=000.000000;   stdevtxmes=000.000000;")),
)


def _peer(device: str) -> tuple[str, str]:
    """``SIP/1001`` -> ("SIP", "1001"); ``PJSIP/2001`` -> ("PJSIP", "2001")."""
    tech = "PJSIP" if device.upper().startswith("PJSIP/") else "SIP"
    peer = device[len(tech) + 1 :] if device.upper().startswith(tech + "/") else device
    if not peer or "/" in peer or "-" in peer:
        raise SimError(f"line name {device!r}: use SIP/<peer> or PJSIP/<endpoint> such as SIP/1001")
    return tech, peer

