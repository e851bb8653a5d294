"""The simulated Asterisk 20: :class:`Sim`, put together from its parts.

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

The parts, each a module named after what it holds (none imports this one
back): :mod:`ucs.sim.events` (clock, subscribers, channel-state events),
:mod:`ucs.sim.phones` (lines, devices, registration, :class:`Phone`),
:mod:`ucs.sim.channels` (channels, bridges, hangups),
:mod:`ucs.sim.applications` (the dialplan and ``Dial``),
:mod:`ucs.sim.queues` (``Queue``, members), :mod:`ucs.sim.xfer` (Originate,
Local channels, transfers, Redirect, Bridge), :mod:`ucs.sim.pickup` (call pickup).  This module holds what a
caller or the PBX as a whole does: calls coming in, booting, restarting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ucs.sim.applications import ApplicationsMixin
from ucs.sim.channels import ChannelsMixin
from ucs.sim.dialplan import Dialplan
from ucs.sim.events import EventsMixin, Subscription
from ucs.sim.features import FeaturesMixin
from ucs.sim.model import (
    PJSIP_PORT,
    SIP_DOMAIN,
    Bridge,
    Channel,
    Delay,
    DialJob,
    Leg,
    Line,
    Member,
    Queue,
    QueueEntry,
    SimError,
    WaitJob,
    draw,
)
from ucs.sim.phones import LinesMixin, Phone
from ucs.sim.pickup import PickupMixin
from ucs.sim.queues import QueueMixin
from ucs.sim.spy import SpyMixin
from ucs.sim.wire import SYSTEM, Event, clean
from ucs.sim.xfer import XferMixin

#: Sim and what used to be defined here (other code imports them from here).
__all__ = [
    "DEFAULT_EPOCH",
    "PJSIP_PORT",
    "SIP_DOMAIN",
    "DialJob",
    "Leg",
    "Phone",
    "Sim",
    "SimError",
    "Subscription",
    "WaitJob",
]

#: A test clock starts at 0; Uniqueids then count from this epoch instead.
DEFAULT_EPOCH = 1795391200.0


class Sim(QueueMixin, XferMixin, FeaturesMixin, SpyMixin, PickupMixin, ApplicationsMixin, ChannelsMixin,
          LinesMixin, EventsMixin):
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
        #: Where relative MixMonitor files go (Asterisk's ``astspooldir``/monitor).
        self.monitor_dir = "/var/spool/asterisk/monitor"
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
