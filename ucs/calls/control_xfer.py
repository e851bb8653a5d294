"""During an attended transfer: swap between the two parties and the three-way
conference; and the keypad (DTMF) of any call.  Built on
:class:`~ucs.calls.control_base.ControlBase`; part of
:class:`~ucs.calls.control.CallControl`.

Asterisk's attended transfer (``Atxfer``, ``main/bridge_basic.c``) listens to
the transferer's keys while it runs: ``atxferswap`` (``*4`` unless
``features.conf`` says otherwise) moves the transferer between the caller
and the consulted party, the other one waiting with music
(CONSULTING ⇄ DOUBLECHECKING), and ``atxferthreeway`` (``*3``) merges the two
bridges into one (``AttendedTransfer`` with ``DestType: Threeway``).  No AMI
action does either, so UCS presses those keys for the agent: ``PlayDTMF``
with ``Receive: true`` on the agent's channel queues each digit as if the
phone had sent it.  The keypad instead sends digits *out* to whoever the
agent talks to (``PlayDTMF`` on the far channel, no ``Receive``), so that a
``*2`` typed for an IVR is not taken for a transfer feature.
"""

from __future__ import annotations

import re

import attrs

from ucs.calls.call import Call
from ucs.calls.control_base import ControlBase, line_device
from ucs.calls.control_state import CONFERENCE, CONSULTING, IDLE, SWAPPED, LineOp, next_state
from ucs.directory.model import Line
from ucs.error import InvalidDataInput, InvalidState, PBXError
from ucs.pbx.model import STATE_UP, Channel

#: What the keypad sends: DTMF digits and A-D.
_DIGITS = re.compile(r"[0-9*#A-Da-d]+")
MAX_DIGITS = 32


@attrs.define(frozen=True)
class TransferKeys:
    """``features.conf`` ``atxferswap`` and ``atxferthreeway`` (Asterisk's defaults)."""

    swap: str = "*4"
    threeway: str = "*3"


def check_digits(value: object, arg: str = "digits") -> str:
    if not isinstance(value, str):
        raise InvalidDataInput({arg: f"{value!r} is not accepted; give the digits as a string"})
    digits = value.replace(" ", "")
    if not digits or len(digits) > MAX_DIGITS or not _DIGITS.fullmatch(digits):
        raise InvalidDataInput(
            {arg: f"{value!r} is not accepted; give 1 to {MAX_DIGITS} keys: 0-9, *, # or A-D"}
        )
    return digits.upper()


class TransferControl(ControlBase):
    """Swap, conference and the keypad."""

    keys: TransferKeys = TransferKeys()

    def _bridged_with(self, ch: Channel) -> list[Channel]:
        bridge = self._pbx.bridges.get(ch.bridge or "")
        return [self._pbx.channels[u] for u in (bridge.channels if bridge else [])
                if u != ch.uniqueid and u in self._pbx.channels]

    def _transfer_op(self, device: str, input: str) -> tuple[LineOp, Channel]:
        op = self.ops.get(device)
        next_state(device, op.state if op else IDLE, input)
        assert op is not None
        agent = self._pbx.channels.get(op.agent)
        party = self._pbx.channels.get(op.party)
        if agent is None or party is None:
            self._drop(device, "gone")
            raise InvalidState(f"the transfer on {device} has already ended")
        if op.state == CONSULTING:
            with_agent = self._bridged_with(agent)
            if not any(c.state == STATE_UP for c in with_agent):
                raise InvalidState(
                    f"the consultation call to {op.number} is not answered yet: wait until they answer, "
                    "or hang up to cancel it"
                )
        return op, agent

    async def _keys(self, agent: Channel, keys: str) -> None:
        for key in keys:
            await self._send("PlayDTMF", {"Channel": agent.name, "Digit": key, "Receive": "true"})

    async def swap(self, line: Line | str) -> Call:
        """Talk to the other party of the attended transfer: from the consulted
        party back to the caller, or the other way; the one left waits with music."""
        device = line_device(line)
        with self._line_busy(device, "swap"):
            op, agent = self._transfer_op(device, "swap")
            call = self._call_of(agent, device)
            to_caller = op.state == CONSULTING
            if to_caller:
                op.target_bridge = agent.bridge or ""
            party = self._pbx.channels[op.party]

            def swapped() -> Call | None:
                if agent.uniqueid not in self._pbx.channels:
                    raise PBXError(f"the call on {device} ended during the swap")
                with_caller = agent.bridge is not None and agent.bridge == party.bridge
                return call if with_caller == to_caller and not agent.on_hold else None

            exp = self._confirm.expect(
                swapped, f"{device} talks to {'the caller' if to_caller else op.number} "
                f"(is atxferswap {self.keys.swap} in features.conf?)")
            try:
                await self._keys(agent, self.keys.swap)
            except BaseException:
                exp.cancel()
                raise
            result = await exp.wait(self.confirm_timeout)
            op.move("swap")
            return result

    async def conference(self, line: Line | str) -> Call:
        """Join the caller and the consulted party: all three talk.  The
        transfer is over; the agent leaves with :meth:`hangup`."""
        device = line_device(line)
        with self._line_busy(device, "conference"):
            op, agent = self._transfer_op(device, "conference")
            call = self._call_of(agent, device)
            party = self._pbx.channels[op.party]

            def joined() -> Call | None:
                if agent.uniqueid not in self._pbx.channels or party.uniqueid not in self._pbx.channels:
                    raise PBXError(f"the call on {device} ended before the conference began")
                together = agent.bridge is not None and agent.bridge == party.bridge
                return call if together and len(self._bridged_with(agent)) >= 2 and not party.on_hold else None

            exp = self._confirm.expect(
                joined, f"the caller, {device} and {op.number} talk together "
                f"(is atxferthreeway {self.keys.threeway} in features.conf?)")
            try:
                await self._keys(agent, self.keys.threeway)
            except BaseException:
                exp.cancel()
                raise
            result = await exp.wait(self.confirm_timeout)
            op.move("conference")
            return result

    async def send_dtmf(self, line: Line | str, digits: str) -> Call:
        """Send ``digits`` (0-9, ``*``, ``#``, A-D) to whoever the agent talks to,
        as if pressed on the phone's keypad (an IVR, a voicemail, a conference
        PIN); resolves when Asterisk has queued them all."""
        device = line_device(line)
        digits = check_digits(digits)
        with self._line_busy(device, "dtmf"):
            agent = self._current(device)
            if agent.state != STATE_UP:
                raise InvalidState(f"the call on {device} is not answered yet")
            call = self._call_of(agent, device)
            far = self._bridged_with(agent)
            if not far:
                raise InvalidState(f"the call on {device} is not connected to anyone now (on hold?): there is "
                                   "nobody to send the keys to")
            for key in digits:
                for ch in far:
                    await self._send("PlayDTMF", {"Channel": ch.name, "Digit": key, "Duration": 150})
            return call

    def _conference_over(self, op: LineOp) -> bool:
        """A conference ended when the agent left or it is two people again."""
        agent = self._pbx.channels.get(op.agent)
        return agent is None or agent.bridge is None or len(self._bridged_with(agent)) < 2

    def _swapped_over(self, op: LineOp) -> bool:
        """Back with the caller, the consultation ended when its bridge did."""
        agent, party = self._pbx.channels.get(op.agent), self._pbx.channels.get(op.party)
        bridge = self._pbx.bridges.get(op.target_bridge)
        return agent is None or party is None or bridge is None or not bridge.channels


__all__ = ["CONFERENCE", "SWAPPED", "TransferControl", "TransferKeys", "check_digits"]
