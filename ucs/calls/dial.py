"""Click-to-dial: the agent's phone rung by an ``Originate``, then the number
dialled from it once the agent answers.

:class:`Dialling` is the part of :class:`~ucs.calls.control.CallControl` that
does ``dial``: the checks of the line and the campaign, the ``Originate`` and
the wait for the agent to answer (answered for them on a ``sip-notify`` line),
and the ``OriginateResponse`` that fails it early with Asterisk's reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import attrs

from ucs import events as ev
from ucs.ami.message import Message
from ucs.calls import accountcode
from ucs.calls.call import Call
from ucs.calls.control_base import STATE_RINGING, ControlBase, check_number, line_device
from ucs.calls.control_state import HELD, LineOp, next_state
from ucs.directory.model import Line, Queue, User
from ucs.error import InvalidDataInput, InvalidState, PBXError
from ucs.pbx.model import STATE_UP

#: ``OriginateResponse`` ``Reason`` (the last control frame Asterisk saw) in words.
ORIGINATE_REASONS = {
    0: "the line could not be called (unknown, unregistered or unreachable)",
    1: "the call was hung up before it was answered",
    3: "the phone rang but nobody answered",
    5: "the phone was busy",
    8: "the network was congested",
}


#: What the Originate of a click-to-dial adds to the INVITE that rings a WebRTC line
#: (``PJSIP_HEADER`` on the dialled channel, set before Asterisk sends it): the bar's
#: softphone answers such a call by itself, since the agent placed it; a call that
#: rings the browser for any other reason has no such header and rings.
WEBRTC_ANSWER_HEADER = "PJSIP_HEADER(add,Call-Info)=<sip:ucs.invalid>;answer-after=0"


def _callerid(name: str, number: str) -> str:
    name = "".join(c for c in name if c not in '"<>\r\n\\').strip()
    return f'"{name}" <{number}>' if name else number


@attrs.define(eq=False)
class _Originating:
    """A click-to-dial call on its way to the agent's phone."""

    device: str
    number: str
    before: frozenset[str]
    uid: str | None = None
    call: Call | None = None
    failure: str | None = None
    notified: bool = False
    #: Asterisk's Q.850 cause when the phone's channel hung up before answering:
    #: an Originate that rang out ends with 19 and no DialEnd (Asterisk 20).
    hangup_cause: int = 0


class Dialling(ControlBase):
    """``dial`` and what it waits for; the state is set by ``CallControl``."""

    _originating: dict[str, _Originating]  # by the Originate's ActionID
    _ctd: itertools.count[int]

    async def dial(
        self,
        line: Line | str,
        number: str,
        queue: int | str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        caller_name: str = "",
        user: User | None = None,
    ) -> Call:
        """Click-to-dial: ring the agent's phone, then call ``number`` from it.

        Resolves with the call once the agent answered (the number is being
        dialled then; whether it answers, is busy or does not answer is the
        call's own story: ``Call.cause``).  ``queue``: an outgoing queue
        (campaign) id, ``"directCall"`` (none) or ``"undefined"`` (the agent's
        only outgoing queue, if they have exactly one); recorded as
        ``Call.queue``.  ``data``: metadata attached to the call (``Call.data``).
        On a line in transfer mode (:meth:`transfer` without a number) this is
        the consultation call of the transfer instead.
        """
        device = line_device(line)
        number = check_number(number)
        with self._line_busy(device, "dial"):
            op = self.ops.get(device)
            if op is not None and op.state != HELD:
                next_state(device, op.state, "consult")
                return await self._consult(device, op, number)
            campaign = self._campaign(queue, user)
            meta = accountcode.json_copy(data, "data") if data is not None else None
            self._check_free(device, op)
            self._check_reachable(device)
            name = caller_name or (line.name if isinstance(line, Line) else "")
            return await self._originate(line, device, number, name, campaign, meta)

    async def _originate(
        self, line: Line | str, device: str, number: str, name: str, campaign: Queue | None, meta: dict[str, Any] | None
    ) -> Call:
        o = _Originating(device, number, frozenset(c.uniqueid for c in self._channels(device)))
        auto = self._auto_answer(line) == "sip-notify"

        def check() -> Call | None:
            if o.failure is not None:
                raise PBXError(f"Asterisk could not call {device} for the call to {number}: {o.failure}")
            if o.uid is None:
                for c in self._channels(device):
                    if c.uniqueid not in o.before and c.linkedid == c.uniqueid:
                        o.uid = c.uniqueid
                        break
                else:
                    return None
            ch = self._pbx.channels.get(o.uid)
            if o.call is None:
                o.call = self._tracker.call_of(o.uid)
                if o.call is not None:
                    self._annotate(o.call, campaign, meta)
            if ch is None:
                raise PBXError(f"{device} did not take the call to {number}: {self._why_not_answered(o)}")
            if ch.state == STATE_UP and o.call is not None:
                return o.call
            if auto and not o.notified and ch.state == STATE_RINGING:
                o.notified = True
                self._fire(*self._notify_action(device), why=f"answering the click-to-dial call on {device}")
            return None

        headers: dict[str, object] = {
            "Channel": device,
            "Context": self.contexts.outgoing,
            "Exten": number,
            "Priority": 1,
            "CallerID": _callerid(name, device.partition("/")[2]),
            "Timeout": int(self.ring_timeout * 1000),
            "Async": "true",
            "Variable": [f"UCS_UNIQUE=ctd-{next(self._ctd)}"]
            + ([WEBRTC_ANSWER_HEADER] if self._line_kind(line) == "webrtc" else []),
        }
        exp = self._confirm.expect(check, f"{device} answers the click-to-dial call to {number}")
        self._tracker.expect_origination(device, number)
        try:
            response = await self._send("Originate", headers)
        except BaseException:
            exp.cancel()
            self._tracker.forget_origination(device)
            raise
        aid = response.get("ActionID") if isinstance(response, dict) else None
        if aid:
            self._originating[aid] = o
        try:
            return await exp.wait(self.ring_timeout + self.confirm_timeout)
        finally:
            self._tracker.forget_origination(device)
            if aid:
                self._originating.pop(aid, None)

    def _why_not_answered(self, o: _Originating) -> str:
        leg = o.call.legs.get(o.uid or "") if o.call is not None else None
        status = leg.dial_status if leg is not None else ""
        if status == "NOANSWER" or o.hangup_cause in (18, 19):
            return f"it rang for {self.ring_timeout:g} s and nobody answered"
        if status in ("BUSY", "CONGESTION") or o.hangup_cause in (17, 21):
            return "the phone rejected it (busy)"
        return "the call ended before the phone answered"

    def originate_response(self, msg: Message) -> None:
        """An ``OriginateResponse`` (the result of an async ``Originate``).

        The PBX model does not pass these on today; feed them here (or have
        the model emit ``originate_response`` to its observers) to fail a
        click-to-dial with Asterisk's reason at once instead of by timeout.
        """
        o = self._originating.get(msg.get("ActionID", ""))
        if o is None:
            return
        if msg.get("Response") == "Success":
            uid = msg.get("Uniqueid", "")
            if o.uid is None and uid in self._pbx.channels:
                o.uid = uid
        else:
            try:
                reason = int(msg.get("Reason", "0"))
            except ValueError:
                reason = 0
            o.failure = ORIGINATE_REASONS.get(reason, f"Asterisk's reason {reason}")
        self._changed()

    def _campaign(self, queue: int | str | None, user: User | None) -> Queue | None:
        if queue is None or queue == "directCall":
            return None
        if queue == "undefined":
            if self.directory is None or user is None:
                return None
            outgoing = [q for q, _ in self.directory.queues_of(user) if q.type == 0]
            return outgoing[0] if len(outgoing) == 1 else None
        if not isinstance(queue, int) or isinstance(queue, bool):
            raise InvalidDataInput({"queue": f"{queue!r} is not accepted; give an outgoing queue id, \"directCall\" or \"undefined\""})
        if self.directory is None:
            raise InvalidDataInput({"queue": f"queue {queue} cannot be used: UCS runs without a directory of queues"})
        found = self.directory.queues.get(queue)
        if found is None:
            raise InvalidDataInput({"queue": f"queue {queue} does not exist"})
        if found.type != 0:
            raise InvalidDataInput(
                {"queue": f"queue {queue} ({found.name}) is an incoming queue; give an outgoing queue (campaign), "
                          "\"directCall\" or \"undefined\""}
            )
        return found

    def _annotate(self, call: Call, campaign: Queue | None, meta: dict[str, Any] | None) -> None:
        if campaign is not None:
            call.queue = campaign.asterisk_name
            call.outbound_id = campaign.id
            call.data["outbound_id"] = campaign.id  # the agents' outgoing-queue figures read it
        if meta:
            call.data.update(meta)
        if campaign is not None or meta:
            self._bus.publish(ev.EVENT_CALL_CHANGE, call)

    def _check_free(self, device: str, op: LineOp | None) -> None:
        busy = [c for c in self._channels(device) if op is None or c.uniqueid != op.agent]
        if busy:
            what = "ringing" if all(c.state != STATE_UP for c in busy) else "in progress"
            raise InvalidState(f"there is already a call {what} on {device}: hang it up or put it on hold before dialling")

    def _check_reachable(self, device: str) -> None:
        d = self._pbx.devices.get(device)
        if d is None:
            return
        if d.state in ("UNAVAILABLE", "INVALID") or d.registration in ("Unregistered", "Unreachable", "Rejected"):
            state = d.state if d.state in ("UNAVAILABLE", "INVALID") else d.registration.lower()
            raise InvalidState(f"{device} is {state}: the phone is not registered with Asterisk, so it cannot ring")
