"""Call pickup (``PickupChan``/``Pickup``, the ``*8`` feature), mixed into :class:`Sim`.

What Asterisk's ``ast_do_pickup`` (main/pickup.c) does, as the matrix's ``*_pickup``
captures show: the picker's channel learns whom it talks to and answers; a ``Pickup``
event names the ringing channel (``Target*``); the ringing channel gets a soft hangup
and hangs up with cause 26 (answered elsewhere); the caller's ``Dial()`` reports the
*picker's* channel answered (``DialEnd ANSWER``) and bridges with it; the picker's
channel takes the caller's Linkedid only once it is in the bridge.
"""

from __future__ import annotations

from ucs.sim.dialplan import CONTINUE, WAIT
from ucs.sim.events import SimPart
from ucs.sim.model import Channel, DialJob
from ucs.sim.wire import channel_block

#: AST_CAUSE_ANSWERED_ELSEWHERE.
ANSWERED_ELSEWHERE = 26


class PickupMixin(SimPart):
    """``PickupChan(device)`` and ``Pickup(exten@context)``: a part of :class:`ucs.sim.pbx.Sim`."""

    def _ringing_channel(self, device: str = "", exten: str = "") -> Channel | None:
        """The channel ringing for ``Dial()`` on ``device`` (or for ``exten``), the oldest first."""
        for ch in list(self.channels.values()):  # type: ignore[attr-defined]
            leg = ch.leg
            if leg is None or leg.kind != "dial" or leg.answered or leg.ended or ch.state != 5:
                continue
            if (device and ch.peer_name.lower() == device.lower()) or (exten and ch.exten == exten):
                return ch
        return None

    def _app_pickupchan(self, ch: Channel, data: str) -> int:
        for device in data.split(",")[0].split("&"):
            target = self._ringing_channel(device=device.strip())
            if target is not None:
                return self._pick_up(ch, target)
        return CONTINUE  # nothing rings there: the dialplan goes on

    def _app_pickup(self, ch: Channel, data: str) -> int:
        exten = data.split(",")[0].partition("@")[0].strip()
        target = self._ringing_channel(exten=exten) if exten else None
        return self._pick_up(ch, target) if target is not None else CONTINUE

    def _pick_up(self, picker: Channel, target: Channel) -> int:
        leg = target.leg
        assert leg is not None and isinstance(leg.owner, DialJob)
        caller = leg.caller
        assert caller is not None
        self._set_connected(picker, caller.cid_num, caller.cid_name)  # type: ignore[attr-defined]
        self._set_state(picker, 6)  # type: ignore[attr-defined]
        self._chan_ev("Pickup", picker, channel_block(target, "Target"))  # type: ignore[attr-defined]
        self._chan_ev("SoftHangupRequest", target, "Cause: 16\r\n")  # type: ignore[attr-defined]
        self._set_connected(caller, picker.cid_num, picker.cid_name)  # type: ignore[attr-defined]
        # The picker's channel takes the ringing one's place in the Dial(): no dialplan of its own.
        target.leg = None
        leg.chan, picker.leg = picker, leg
        picker.pbx, picker.job = False, None
        leg.answered = True
        self._dial_end(leg, "ANSWER")  # type: ignore[attr-defined]
        self._destroy(target, ANSWERED_ELSEWHERE)  # type: ignore[attr-defined]
        self._dial_answered(leg.owner, leg)  # type: ignore[attr-defined]
        picker.linkedid = caller.linkedid  # only once it is in the bridge
        return WAIT
