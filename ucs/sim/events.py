"""The simulator's clock and events: timers, subscribers, and the events
that report a channel's state (``Newstate``, ``VarSet``, ``Newexten``,
``NewCallerid``, ``MusicOnHoldStart``...).

:class:`SimPart` is the base of every part of :class:`ucs.sim.pbx.Sim`
(:class:`EventsMixin` here, the lines, channels and applications parts, the
queues and transfers).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ucs.sim.dialplan import Dialplan
from ucs.sim.model import Bridge, Channel, Line
from ucs.sim.wire import ALL, CALL, CLASSES, DIALPLAN, SECURITY, Event, channel_block, make_event

_DIALPLAN_BIT = CLASSES["dialplan"]
_SECURITY_BIT = CLASSES["security"]


class Subscription:
    """An event listener; ``mask`` selects the event classes it wants."""

    __slots__ = ("_mask", "_sim", "fn")

    def __init__(self, sim: SimPart, fn: Callable[[Event], None], mask: int) -> None:
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


class SimPart:
    """What the parts of :class:`ucs.sim.pbx.Sim` share: its state, set in
    ``Sim.__init__`` and ``Sim._boot``.  A part calls the others' methods on
    ``self``; for the type checker those are looked up on ``Sim``'s other
    parts at run time (``__getattr__`` below exists only for it)."""

    clock: Any
    random: random.Random
    _offset: float
    _pending: set[Any]
    _subs: list[Subscription]
    _mask: int
    _held: list[Event] | None
    _ring_batch: list[Event] | None
    _state_listeners: list[Callable[[str], None]]
    lines: dict[str, Line]
    channels: dict[str, Channel]
    bridges: dict[str, Bridge]
    devices: dict[str, str]
    dialplan: Dialplan
    global_vars: dict[str, str]
    running: bool
    processed_calls: int
    _uid: int
    _sip_seq: int
    _local_seq: int

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


class EventsMixin(SimPart):
    """Time and events, a part of :class:`ucs.sim.pbx.Sim`."""

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
        if state == 6 and ch.line is not None and ch.line.driver is not None:
            ch.line.driver.channel_up(ch)

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
