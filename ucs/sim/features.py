"""DTMF on the simulated PBX: AMI ``PlayDTMF`` (``apps/app_senddtmf.c``) and the
attended transfer's own keys (``main/bridge_basic.c``), mixed into :class:`Sim`.

``PlayDTMF`` without ``Receive`` sends a digit out to the channel's phone: it
raises no event (``ast_senddigit_external`` publishes none); the simulator
records it in :attr:`Channel.dtmf` (a Local channel's digit goes on to the
channel bridged with its other half).  With ``Receive: true`` the digit is
queued as if the phone had sent it: ``DTMFEnd``/``DTMFBegin`` (``Direction:
Received``) and, when the channel is the transferer of an attended transfer,
the features there: ``atxferswap`` moves it between the caller and the
consulted party (CONSULTING ⇄ DOUBLECHECKING: ``Hold`` on the transferer, the
party left behind hears music, ``BridgeLeave``/``BridgeEnter``, ``Unhold``),
``atxferthreeway`` merges the two bridges (``BridgeMerge``, every channel of
the consultation's bridge into the caller's, ``AttendedTransfer`` with
``DestType: Threeway``; app_queue ignores it, and no ``Unhold`` is sent for
the transferer).  Only once the consulted party has answered: before that
the keys are ignored here (Asterisk would go to its HESITANT state).
"""

from __future__ import annotations

from typing import Any

from ucs.sim.model import Channel
from ucs.sim.wire import CALL, bridge_block, channel_block
from ucs.sim.xfer import AtxferJob

DTMF = "dtmf,all"


class FeaturesMixin:
    #: features.conf: ``atxferswap``, ``atxferthreeway`` (Asterisk's defaults;
    #: the lab's features.conf sets the same), ``featuredigittimeout`` (ms).
    atxfer_swap: str = "*4"
    atxfer_threeway: str = "*3"
    feature_digit_timeout: float = 1.0

    def play_dtmf(self: Any, ch: Channel, digit: str, duration: int, receive: bool) -> None:
        """AMI ``PlayDTMF`` of ``digit`` on ``ch``."""
        if not receive:
            ch.dtmf.append(digit)
            peer = ch.local_peer
            if peer is not None and peer.bridge is not None:
                for c in peer.bridge.channels:
                    if c is not peer:
                        c.dtmf.append(digit)
            return
        ms = max(duration, 100)
        self._emit("DTMFEnd", DTMF, channel_block(ch) + f"Digit: {digit}\r\nDurationMs: {ms}\r\nDirection: Received\r\n")
        self._emit("DTMFBegin", DTMF, channel_block(ch) + f"Digit: {digit}\r\nDirection: Received\r\n")
        self._feature_key(ch, digit)

    def phone_dtmf(self: Any, ch: Channel, digit: str, *, end: bool, duration_ms: int = 0) -> None:
        """The phone of ``ch`` sent a key in its call's RTP (RFC 4733): what ``__ast_read``
        (main/channel.c) publishes for the DTMF frames res_rtp_asterisk makes of it,
        ``DTMFBegin`` at the key's first packet and ``DTMFEnd`` (``DurationMs``: the
        event's duration on the wire) at its end, both ``Direction: Received``; an ended
        key is also one for the bridge's features (an attended transfer's keys)."""
        if ch.gone:
            return
        if not end:
            self._emit("DTMFBegin", DTMF, channel_block(ch) + f"Digit: {digit}\r\nDirection: Received\r\n")
            return
        self._emit("DTMFEnd", DTMF, channel_block(ch)
                   + f"Digit: {digit}\r\nDurationMs: {duration_ms}\r\nDirection: Received\r\n")
        self._feature_key(ch, digit)

    def _feature_key(self: Any, ch: Channel, digit: str) -> None:
        """A key ``ch``'s phone pressed, as the attended transfer's features see it."""
        job = ch.hold_owner
        if not isinstance(job, AtxferJob) or not job.active or job.transferer is not ch:
            return
        self._cancel(job.key_timer)
        job.keys += digit
        codes = {self.atxfer_swap: self._atxfer_swap, self.atxfer_threeway: self._atxfer_threeway}
        action = codes.get(job.keys)
        if action is not None:
            job.keys = ""
            leg = job.l1.leg
            if leg is None or leg.answered:
                action(job)
            return
        if any(code.startswith(job.keys) for code in codes):
            job.key_timer = self._later(self.feature_digit_timeout, self._atxfer_keys_timeout, job)
        else:
            job.keys = ""

    def _atxfer_keys_timeout(self: Any, job: Any) -> None:
        job.key_timer = None
        job.keys = ""

    def remote_hold(self: Any, ch: Any, on: bool) -> None:
        """The phone of ``ch`` put its call on hold (a re-INVITE saying sendonly or
        inactive) or took it off: chan_pjsip queues a hold, which the channel reports
        (``Hold``/``Unhold``) and its bridge turns into music for the other party."""
        self._chan_ev("Hold" if on else "Unhold", ch)
        if ch.bridge is not None:
            for o in ch.bridge.channels:
                if o is not ch:
                    if on:
                        self._moh_start(o)
                    else:
                        self._moh_stop(o)

    def _atxfer_swap(self: Any, job: Any) -> None:
        ch = job.transferer
        here, there = (job.b2, job.b1) if not job.swapped else (job.b1, job.b2)
        if there.id not in self.bridges:
            return
        self._chan_ev("Hold", ch)
        for o in here.channels:
            if o is not ch:
                self._moh_start(o)
        self._bridge_leave(ch)
        self._bridge_enter(there, ch)
        self._chan_ev("Unhold", ch)
        for o in there.channels:
            if o is not ch:
                self._moh_stop(o)
        job.swapped = not job.swapped

    def _atxfer_threeway(self: Any, job: Any) -> None:
        ch, b1, b2, l1 = job.transferer, job.b1, job.b2, job.l1
        if b1.id not in self.bridges or b2.id not in self.bridges:
            return
        job.active = False
        ch.hold_owner = None
        self._cancel(job.key_timer)
        for o in (b2 if job.swapped else b1).channels:
            self._moh_stop(o)
        caller = next((o for o in job.others if not o.gone), None)
        self._emit("BridgeMerge", CALL, bridge_block(b1, "To") + bridge_block(b2, "From"))
        for c in list(b2.channels):
            self._bridge_leave(c)
            self._bridge_enter(b1, c)
        self._attended_transfer_event("Success", job, transferee=caller, target=l1,
                                      dest=f"Threeway\r\nDestBridgeUniqueid: {b1.id}",
                                      tail=f"DestTransfererChannel: {ch.name}\r\n")
        l1.leg = None
        self._bridge_destroy(b2)
