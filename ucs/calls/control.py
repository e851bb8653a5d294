"""Call control: what an agent does to the call on their phone, done with AMI.

Every method takes the agent's line (a directory :class:`~ucs.directory.model.Line`
or its device, ``"SIP/1001"``), checks the phone and the call first and
refuses with :class:`~ucs.error.InvalidState` saying why, sends the AMI
actions, and resolves only once the PBX model shows the result (or fails with
:class:`~ucs.error.PBXError` saying what did not happen).  How each operation
is done follows the real Asterisk 20 / chan_sip captures in
``shared/ami-captures``:

=====================  ======================================================
``dial``               ``Originate`` (async) to the agent's line; when the
                       agent answers, the number runs in the outgoing context
                       (``click_to_dial``)
``answer``             ``SIPnotify`` ``Event=talk`` (``PJSIPNotify`` for
                       PJSIP) — only for lines whose ``auto_answer`` is
                       ``"sip-notify"``
``hangup``             ``Hangup`` of the agent's channel
``hold`` / ``unhold``  ``Redirect`` of the other party to the hold context
                       with the agent's channel as ``ExtraChannel`` to the
                       wait context; ``Bridge`` of the two to resume
                       (``hold_redirect_bridge``: chan_sip has no AMI hold)
``mute``               ``MuteAudio`` ``Direction: in`` on the agent's channel
                       (a toggle; Asterisk sends no event, so it is recorded
                       with :meth:`PBX.set_muted` after the response)
``transfer(number)``   ``Setvar TRANSFER_EXTEN`` + ``Atxfer``; ``finish_transfer``
                       hangs the agent's channel up (``atxfer_complete``)
``transfer()``         transfer mode: the call is held; the next ``dial`` makes
                       the consultation call (the call is bridged back and
                       ``Atxfer`` runs as above), ``finish_transfer`` completes
``blind_transfer``     ``BlindTransfer`` (``blind_transfer_action``); where
                       Asterisk refuses it, or the call is on hold, ``Redirect``
                       of the other party to the number and ``Hangup`` of the
                       agent's channel
=====================  ======================================================

What a line must support: nothing for ``dial``, ``hangup``, ``hold``,
``mute`` and the transfers (they work on the PBX side; the dialplan needs the
hold and wait contexts, :class:`Contexts`); ``answer`` needs a phone that
answers a ringing call on a SIP NOTIFY ``Event: talk`` (Yealink "Allow
Remote Answer"/``features.remote_answer``, Snom, Polycom ...), declared by the
line's ``auto_answer = "sip-notify"``.  Such lines also have click-to-dial
calls answered for the agent.  See ``docs/call-control.md``.

The instance hears the PBX model and the call tracker through
:attr:`CallControl.observer`, which its owner puts in both observer lists after
the tracker (``ucs.server`` does), so that its checks run on a model the
tracker already updated.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs import events as ev
from ucs.ami.errors import AMIActionError, AMIError
from ucs.ami.message import Message
from ucs.bus import EventBus
from ucs.calls import accountcode
from ucs.calls.call import Call
from ucs.calls.confirm import Confirmations
from ucs.calls.control_state import CONSULTING, HELD, IDLE, PARKED, LineOp, next_state
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.directory.model import Line, Queue, User
from ucs.error import (
    InvalidDataInput,
    InvalidState,
    NotFound,
    PBXError,
    ProcessingError,
)
from ucs.interfaces import ActionSender
from ucs.pbx.model import STATE_UP, Bridge, Channel
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX

T = TypeVar("T")

STATE_RINGING = 5

#: Dial strings: digits, ``*`` and ``#``, with an optional leading ``+``.
_NUMBER = re.compile(r"\+?[0-9*#]+")
#: What CRMs put in numbers for people to read; removed before checking.
_FILLER = str.maketrans("", "", " \t-./()")
MAX_NUMBER = 32

#: ``OriginateResponse`` ``Reason`` (the last control frame Asterisk saw) in words.
ORIGINATE_REASONS = {
    0: "the line could not be called (unknown, unregistered or unreachable)",
    1: "the call was hung up before it was answered",
    3: "the phone rang but nobody answered",
    5: "the phone was busy",
    8: "the network was congested",
}


class CDRStore(Protocol):
    def get_cdr(self, uniqueid: str) -> Deferred[dict[str, Any] | None]: ...
    def save_cdr(self, cdr: dict[str, Any]) -> Deferred[None]: ...


class Flushable(Protocol):
    def flushed(self) -> Deferred[None]: ...


class DirectoryView(Protocol):
    """What call control reads from :class:`~ucs.directory.directory.Directory`."""

    queues: dict[int, Queue]
    callreasons: dict[int, Any]

    def line_by_device(self, device: str) -> Line | None: ...
    def queues_of(self, user: User) -> list[tuple[Queue, Any]]: ...


@attrs.define(frozen=True)
class Contexts:
    """The dialplan call control relies on (the lab's, by default).

    ``outgoing``: where click-to-dial numbers and transfer targets are dialled
    (an extension pattern per number, e.g. ``_1XXX`` → ``Dial(SIP/${EXTEN})``,
    ``_0X.`` → the trunk).  ``hold``: where a held party waits
    (``s`` → ``Answer``, ``MusicOnHold``).  ``wait``: where the agent's channel
    waits while the call is held (``s`` → ``Answer``, ``Wait(3600)``).
    """

    outgoing: str = "internal"
    hold: str = "ucs-hold"
    wait: str = "ucs-wait"
    #: The extension of the hold and wait contexts.
    start: str = "s"


#: The lab's contexts (``etc/asterisk/extensions.conf``).
LAB_CONTEXTS = Contexts()


class ActionRefused(PBXError):
    """Asterisk answered ``Response: Error`` to an action."""

    def __init__(self, action: str, asterisk_message: str) -> None:
        self.action = action
        self.asterisk_message = asterisk_message
        super().__init__(f"Asterisk refused {action}: {asterisk_message or '(no message)'}")


def check_number(value: Any, arg: str = "number") -> str:
    """``value`` as a dial string (spaces, dashes, dots and brackets removed);
    :class:`InvalidDataInput` naming ``arg`` when it is not a phone number."""
    if not isinstance(value, str):
        raise InvalidDataInput({arg: f"{value!r} is not accepted; give the number as a string"})
    number = value.translate(_FILLER)
    if not number or len(number) > MAX_NUMBER or not _NUMBER.fullmatch(number):
        raise InvalidDataInput(
            {arg: f"{value!r} is not a phone number; give 1 to {MAX_NUMBER} digits, "
                  "* or #, with an optional leading +"}
        )
    return number


def _device(line: Line | str) -> str:
    device = line.device if isinstance(line, Line) else line
    if not isinstance(device, str) or "/" not in device:
        raise InvalidDataInput({"line": f"{device!r} is not a phone line; give a line or a device such as SIP/1001"})
    return device


def _uid_order(ch: Channel) -> tuple[int, int, float]:
    epoch, _, seq = ch.uniqueid.partition(".")
    try:
        return (int(epoch), int(seq or 0), ch.created)
    except ValueError:
        return (0, 0, ch.created)


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


class CallControl:
    """The agent's call-control methods (seed 002 ``dial``, ``answer`` … ``setAccountCode``).

    :param ami: sends actions (:class:`~ucs.ami.client.AMIClient`).
    :param pbx: the PBX model; :param tracker: the call tracker (built before this).
    :param bus: where account-code and metadata changes of a live call are published.
    :param clock: times the waits for the PBX's confirmation.
    :param directory: outgoing queues and call reasons (optional).
    :param store: CDRs of calls that already ended (account codes, metadata).
    :param cdrs: the CDR writer, waited for before a stored CDR is changed, so
        that a call that just ended is not read before it is written.
    :param contexts: the dialplan contexts used (:class:`Contexts`).
    :param confirm_timeout: seconds to wait for the PBX to confirm an action.
    :param ring_timeout: seconds the agent's phone rings for a click-to-dial call.
    """

    log = Logger()

    def __init__(
        self,
        ami: ActionSender,
        pbx: PBX,
        tracker: CallTracker,
        bus: EventBus,
        clock: IReactorTime,
        *,
        directory: DirectoryView | None = None,
        store: CDRStore | None = None,
        cdrs: Flushable | None = None,
        contexts: Contexts = LAB_CONTEXTS,
        confirm_timeout: float = 5.0,
        ring_timeout: float = 20.0,
        recent: int = 2000,
    ) -> None:
        self._ami = ami
        self._pbx = pbx
        self._tracker = tracker
        self._bus = bus
        self.clock = clock
        self.directory = directory
        self._store = store
        self._cdrs = cdrs
        self.contexts = contexts
        self.confirm_timeout = confirm_timeout
        self.ring_timeout = ring_timeout
        self._confirm = Confirmations(clock)
        #: Lines whose call UCS holds or transfers (see ucs.calls.control_state).
        self.ops: dict[str, LineOp] = {}
        self._busy: dict[str, str] = {}
        self._originating: dict[str, _Originating] = {}  # by the Originate's ActionID
        self._recent: OrderedDict[str, Call] = OrderedDict()
        self._recent_max = recent
        self._cdr_lock = DeferredLock()
        self._transformer: accountcode.MetadataTransformer | None = None
        self._ctd = itertools.count(1)
        #: What the owner puts in the PBX model's and the tracker's observer lists
        #: (``ucs.server``), after the tracker: the checks then run on a model the
        #: tracker already updated.  The constructor subscribes to nothing.
        self.observer = _Watcher(self)

    # -- dial ------------------------------------------------------------------------

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
        device = _device(line)
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
            "Variable": [f"UCS_UNIQUE=ctd-{next(self._ctd)}"],
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

    # -- answer ----------------------------------------------------------------------

    async def answer(self, line: Line | str) -> Call:
        """Answer the call ringing on the agent's phone, remotely.

        Only phones that answer on a SIP NOTIFY ``Event: talk`` can be made to
        answer, and the line must say so (``auto_answer = "sip-notify"``);
        otherwise :class:`InvalidState` explains that the call must be answered
        on the phone.  Resolves when the phone has answered.
        """
        device = _device(line)
        with self._line_busy(device, "answer"):
            chans = self._channels(device)
            ringing = [c for c in chans if c.state == STATE_RINGING]
            if not ringing:
                if chans:
                    raise InvalidState(f"the call on {device} is not ringing: it is already answered or still being set up")
                raise InvalidState(f"there is no call on {device}")
            mode = self._auto_answer(line)
            if mode != "sip-notify":
                raise InvalidState(
                    f"{device} cannot be answered remotely: its line's auto_answer is {mode!r}; answer on the phone, "
                    "or set auto_answer to \"sip-notify\" for a phone that answers on a SIP NOTIFY Event: talk"
                )
            ch = ringing[-1]
            call = self._call_of(ch, device)

            def answered() -> Call | None:
                if ch.uniqueid not in self._pbx.channels:
                    raise PBXError(f"the call on {device} stopped ringing before the phone answered")
                return call if ch.state == STATE_UP else None

            action, headers = self._notify_action(device)
            return await self._do(
                action, headers, answered,
                f"{device} answers when told to by a SIP NOTIFY Event: talk (does the phone allow remote answer?)",
            )

    def _notify_action(self, device: str) -> tuple[str, dict[str, object]]:
        tech, _, name = device.partition("/")
        if tech.upper() == "SIP":
            return "SIPnotify", {"Channel": name, "Variable": "Event=talk"}
        if tech.upper() == "PJSIP":
            return "PJSIPNotify", {"Endpoint": name, "Variable": "Event=talk"}
        raise InvalidState(f"{device} cannot be answered remotely: only SIP and PJSIP phones can be told to answer")

    def _auto_answer(self, line: Line | str) -> str:
        if isinstance(line, Line):
            return line.auto_answer
        found = self.directory.line_by_device(line) if self.directory is not None else None
        return found.auto_answer if found is not None else "none"

    # -- hangup ----------------------------------------------------------------------

    async def hangup(self, line: Line | str) -> Call:
        """Hang up the agent's call (or decline it while it rings).

        During an attended transfer this ends the consultation call and the
        agent is back with the caller; a held call is taken off hold first,
        so that the call's cause says the agent ended it.
        """
        device = _device(line)
        with self._line_busy(device, "hangup"):
            ch = self._current(device)
            op = self.ops.get(device)
            if op is not None and ch.uniqueid == op.agent:
                if op.state == CONSULTING:
                    return await self._abort_consult(device, op, ch)
                await self._resume(device, op)
            call = self._call_of(ch, device)

            def gone() -> Call | None:
                return call if ch.uniqueid not in self._pbx.channels else None

            return await self._do("Hangup", {"Channel": ch.name, "Cause": 16}, gone, f"{ch.name} hangs up")

    async def _abort_consult(self, device: str, op: LineOp, agent: Channel) -> Call:
        bridge = self._pbx.bridges.get(agent.bridge or "")
        consult = [self._pbx.channels[u] for u in (bridge.channels if bridge else []) if u != agent.uniqueid and u in self._pbx.channels]
        if not consult:
            raise InvalidState(f"the consultation call on {device} is not connected yet; wait, or finish the transfer")
        call = self._call_of(agent, device)

        def back() -> Call | None:
            party = self._pbx.channels.get(op.party)
            if agent.uniqueid not in self._pbx.channels or party is None:
                return call
            return call if agent.bridge is not None and agent.bridge == party.bridge else None

        exp = self._confirm.expect(back, f"{device} is back with the caller after the consultation call ended")
        try:
            for c in consult:
                await self._send("Hangup", {"Channel": c.name, "Cause": 16})
        except BaseException:
            exp.cancel()
            raise
        result = await exp.wait(self.confirm_timeout)
        self._drop(device, "abort")
        return result

    # -- hold ------------------------------------------------------------------------

    async def hold(self, line: Line | str) -> Call:
        """Put the call on hold: the other party hears music, the agent's phone
        stays in the call in silence.  Resolves once the model shows it held."""
        device = _device(line)
        with self._line_busy(device, "hold"):
            op = self.ops.get(device)
            next_state(device, op.state if op else IDLE, "hold")
            agent, party, call = self._talking(device)
            await self._park(device, agent, party, call)
            self.ops[device] = LineOp(device, HELD, agent.uniqueid, party.uniqueid, call.uniqueid)
            return call

    async def unhold(self, line: Line | str) -> Call:
        """Take the held call off hold (also leaves transfer mode)."""
        device = _device(line)
        with self._line_busy(device, "unhold"):
            op = self.ops.get(device)
            next_state(device, op.state if op else IDLE, "unhold")
            assert op is not None
            return await self._resume(device, op)

    async def _park(self, device: str, agent: Channel, party: Channel, call: Call) -> Call:
        def held() -> Call | None:
            if agent.uniqueid not in self._pbx.channels or party.uniqueid not in self._pbx.channels:
                raise PBXError(f"the call on {device} ended while it was being put on hold")
            return call if party.on_hold and party.bridge is None and agent.bridge is None else None

        c = self.contexts
        # Leaving the bridge for music on hold is not hanging up: tell the
        # tracker, so that who hangs up the held call later decides its cause.
        self._tracker.expect_redirect((agent.uniqueid, party.uniqueid))
        return await self._do(
            "Redirect",
            {
                "Channel": party.name, "Context": c.hold, "Exten": c.start, "Priority": 1,
                "ExtraChannel": agent.name, "ExtraContext": c.wait, "ExtraExten": c.start, "ExtraPriority": 1,
            },
            held,
            f"the call on {device} is put on hold ({party.name} hears music on hold)",
        )

    async def _resume(self, device: str, op: LineOp) -> Call:
        agent = self._pbx.channels.get(op.agent)
        party = self._pbx.channels.get(op.party)
        if agent is None or party is None:
            self._drop(device, "gone")
            raise InvalidState(f"the held call on {device} has ended")
        call = self._call_of(party, device)

        def talking() -> Call | None:
            if agent.uniqueid not in self._pbx.channels or party.uniqueid not in self._pbx.channels:
                raise PBXError(f"the call on {device} ended while it was being taken off hold")
            together = agent.bridge is not None and agent.bridge == party.bridge
            return call if together and not party.on_hold else None

        result = await self._do(
            "Bridge",
            {"Channel1": agent.name, "Channel2": party.name, "Tone": "no"},
            talking,
            f"the call on {device} is taken off hold ({agent.name} and {party.name} talk again)",
        )
        self._drop(device, "unhold")
        return result

    # -- mute ------------------------------------------------------------------------

    async def mute(self, line: Line | str) -> Call:
        """Turn the agent's microphone off, or on again (a toggle): ``MuteAudio``
        of what the agent's channel sends.  ``Call.caller_muted`` or
        ``connected_muted`` (whichever side the agent is) shows the result."""
        device = _device(line)
        with self._line_busy(device, "mute"):
            ch = self._current(device)
            if ch.state != STATE_UP:
                raise InvalidState(f"the call on {device} is not answered yet")
            call = self._call_of(ch, device)
            on = not ch.muted_in
            await self._send("MuteAudio", {"Channel": ch.name, "Direction": "in", "State": "on" if on else "off"})
            if ch.uniqueid not in self._pbx.channels:
                raise PBXError(f"the call on {device} ended before the microphone was {'muted' if on else 'unmuted'}")
            self._pbx.set_muted(ch.name, "in", on)
            return call

    # -- transfers ---------------------------------------------------------------------

    async def transfer(self, line: Line | str, number: str | None = None) -> Call:
        """Attended transfer.

        With ``number``: the caller hears music while the agent talks to
        ``number`` (a consultation call); :meth:`finish_transfer` connects the
        caller to them.  Without: *transfer mode* — the call is put on hold and
        the next :meth:`dial` makes the consultation call.  :meth:`hangup`
        during the consultation ends it and brings the agent back to the caller.
        """
        device = _device(line)
        if number is not None:
            number = check_number(number)
        with self._line_busy(device, "transfer"):
            op = self.ops.get(device)
            state = op.state if op else IDLE
            if number is not None:
                next_state(device, state, "consult")
                return await self._consult(device, op, number)
            next_state(device, state, "park")
            if op is not None:
                op.move("park")
                return self._call_of(self._pbx.channels[op.party], device)
            agent, party, call = self._talking(device)
            await self._park(device, agent, party, call)
            self.ops[device] = LineOp(device, PARKED, agent.uniqueid, party.uniqueid, call.uniqueid)
            return call

    async def _consult(self, device: str, op: LineOp | None, number: str) -> Call:
        if op is not None:
            call = await self._resume(device, op)
            agent, party = self._pbx.channels.get(op.agent), self._pbx.channels.get(op.party)
            if agent is None or party is None:
                raise PBXError(f"the call on {device} ended before the consultation call to {number} started")
        else:
            agent, party, call = self._talking(device)
        await self._send("Setvar", {"Channel": agent.name, "Variable": "TRANSFER_EXTEN", "Value": number})

        def consulting() -> Call | None:
            if agent.uniqueid not in self._pbx.channels or party.uniqueid not in self._pbx.channels:
                raise PBXError(f"the call on {device} ended before the consultation call to {number} started")
            apart = agent.bridge is not None and agent.bridge != party.bridge
            return call if apart and party.on_hold else None

        await self._do(
            "Atxfer",
            {"Channel": agent.name, "Exten": number, "Context": self.contexts.outgoing},
            consulting,
            f"the consultation call from {device} to {number} starts (is {number} a valid number?)",
        )
        self.ops[device] = LineOp(device, CONSULTING, agent.uniqueid, party.uniqueid, call.uniqueid, number)
        return call

    async def finish_transfer(self, line: Line | str) -> Call:
        """Complete the attended transfer: the agent leaves, the caller talks to
        the consulted party.  Resolves once the caller is connected to them."""
        device = _device(line)
        with self._line_busy(device, "finishTransfer"):
            op = self.ops.get(device)
            next_state(device, op.state if op else IDLE, "finish")
            assert op is not None
            agent = self._pbx.channels.get(op.agent)
            if agent is None:
                self._drop(device, "gone")
                raise InvalidState(f"the transfer on {device} has already ended")
            call = self._call_of(agent, device)
            number = op.number

            def transferred() -> Call | None:
                if agent.uniqueid in self._pbx.channels:
                    return None
                party = self._pbx.channels.get(op.party)
                if party is None:
                    raise PBXError(f"the transfer to {number} did not complete: the caller hung up")
                return call if party.bridge is not None and not party.on_hold else None

            result = await self._do(
                "Hangup", {"Channel": agent.name, "Cause": 16}, transferred,
                f"the caller on {device} is connected to {number}",
            )
            self._drop(device, "finish")
            return result

    async def blind_transfer(self, line: Line | str, number: str) -> Call:
        """Transfer the call to ``number`` without consulting: ``BlindTransfer``;
        resolves once the agent's channel has left the call."""
        device = _device(line)
        number = check_number(number)
        with self._line_busy(device, "blindTransfer"):
            op = self.ops.get(device)
            next_state(device, op.state if op else IDLE, "blind")
            if op is not None:
                agent = self._pbx.channels.get(op.agent)
                party = self._pbx.channels.get(op.party)
                if agent is None or party is None:
                    self._drop(device, "gone")
                    raise InvalidState(f"the held call on {device} has ended")
                self._drop(device, "blind")
                return await self._redirect_transfer(device, agent, party, self._call_of(party, device), number)
            agent, party, call = self._talking(device)

            def left() -> Call | None:
                return call if agent.uniqueid not in self._pbx.channels else None

            exp = self._confirm.expect(left, f"the call on {device} is transferred to {number}")
            try:
                await self._send("BlindTransfer", {"Channel": agent.name, "Exten": number, "Context": self.contexts.outgoing})
            except ActionRefused as e:
                exp.cancel()
                self.log.info(
                    "BlindTransfer refused ({error}); transferring the call on {device} with Redirect",
                    error=e.asterisk_message, device=device,
                )
                return await self._redirect_transfer(device, agent, party, call, number)
            except BaseException:
                exp.cancel()
                raise
            return await exp.wait(self.confirm_timeout)

    async def _redirect_transfer(self, device: str, agent: Channel, party: Channel, call: Call, number: str) -> Call:
        """The other party goes to ``number`` by ``Redirect``; the agent's channel is
        hung up.  Asterisk reports no transfer, so the agent's leg is marked
        transferred here (its cause is then 8, as with ``BlindTransfer``)."""
        leg = call.legs.get(agent.uniqueid)
        mark = leg is not None and leg.uniqueid != call.origin and not leg.transferred
        entry = {"kind": "blind", "from": device, "to": number, "at": self.clock.seconds()}

        def done() -> Call | None:
            if party.uniqueid not in self._pbx.channels:
                raise PBXError(f"the caller on {device} hung up before the transfer to {number}")
            return call if agent.uniqueid not in self._pbx.channels else None

        exp = self._confirm.expect(done, f"the call on {device} is transferred to {number}")
        if mark and leg is not None:
            leg.transferred = True
        call.transfers.append(entry)
        try:
            await self._send("Redirect", {"Channel": party.name, "Context": self.contexts.outgoing, "Exten": number, "Priority": 1})
        except BaseException:
            exp.cancel()
            if mark and leg is not None:
                leg.transferred = False
            if entry in call.transfers:
                call.transfers.remove(entry)
            raise
        if agent.uniqueid in self._pbx.channels:
            try:
                await self._send("Hangup", {"Channel": agent.name, "Cause": 16})
            except ActionRefused:
                pass  # it went by itself when the other party left
            except BaseException:
                exp.cancel()
                raise
        return await exp.wait(self.confirm_timeout)

    # -- account codes and metadata ----------------------------------------------------

    async def set_account_code(
        self, uniqueid: str, code: str, sub_code: str | None = None, override: bool = False
    ) -> str:
        """Set the call's account code (seed 002 ``setAccountCode``) and return it.

        ``override`` replaces what the call has; otherwise the entry is
        appended (``"A|B"``; ``Code/Sub`` for a sub-code, see
        :mod:`ucs.calls.accountcode`).  Checked against the directory's call
        reasons when there are any.  Works during the call and after it: an
        ended call's stored CDR is updated.
        """
        reasons = self.directory.callreasons.values() if self.directory is not None else ()
        entry = accountcode.check_code(reasons, code, sub_code)
        uid = self._check_uniqueid(uniqueid)
        call = self.find_call(uid)
        if call is not None and not call.ended:
            call.account_code = accountcode.merge(call.account_code, entry, override)
            self._bus.publish(ev.EVENT_CALL_CHANGE, call)
            return call.account_code
        async with self._cdr_lock:
            key = call.uniqueid if call is not None else uid
            stored = await self._stored_cdr(key)
            if stored is None:
                if call is None:
                    raise NotFound(f"there is no call {uid!r}: it is neither in progress nor in the CDRs")
                call.account_code = accountcode.merge(call.account_code, entry, override)
                return call.account_code
            new = accountcode.merge(stored.get("account_code"), entry, override)
            await self._save_cdr(accountcode.update_cdr(stored, account_code=new))
            if call is not None:
                call.account_code = new
            return new

    async def cdr_metadata(self, uniqueid: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Attach ``metadata`` to the call (``Call.data``; on the CDR once it
        ended), through the metadata transformer if one is set.  Keys given
        replace the same keys; others are kept.  A string ``accountcode`` in
        the (transformed) metadata also becomes the call's account code, as in
        seed 000's example, checked against the call reasons like
        :meth:`set_account_code` (else an agent could set any code this way).
        Returns the call's metadata."""
        uid = self._check_uniqueid(uniqueid)
        call = self.find_call(uid)
        meta = accountcode.transform(self._transformer, call.uniqueid if call is not None else uid, metadata)
        code = meta.get("accountcode")
        code = self._checked_codes(code) if isinstance(code, str) else None
        if call is not None and not call.ended:
            accountcode.measure({**call.data, **meta}, what="the call's metadata")  # before anything changes
            call.data.update(meta)
            if code is not None:
                call.account_code = code
            self._bus.publish(ev.EVENT_CALL_CHANGE, call)
            return dict(call.data)
        async with self._cdr_lock:
            stored = await self._stored_cdr(call.uniqueid if call is not None else uid)
            # Re-checked after the await: the call may have changed meanwhile.
            current = stored.get("metadata") if stored is not None else None
            if call is not None:
                accountcode.measure({**call.data, **meta}, what="the call's metadata")
            if isinstance(current, dict):
                accountcode.measure({**current, **meta}, what="the call's metadata")
            if call is not None:
                call.data.update(meta)
                if code is not None:
                    call.account_code = code
            if stored is None:
                if call is None:
                    raise NotFound(f"there is no call {uid!r}: it is neither in progress nor in the CDRs")
                return dict(call.data)
            updated = accountcode.update_cdr(stored, account_code=code, metadata=meta)
            await self._save_cdr(updated)
            return dict(updated["metadata"])

    def _checked_codes(self, account_code: str) -> str:
        """A whole account code (``"A/Sub|B"``) given in metadata, each entry checked
        against the call reasons; :class:`InvalidDataInput` on ``metadata`` otherwise."""
        reasons = list(self.directory.callreasons.values()) if self.directory is not None else []
        checked = []
        for entry in accountcode.entries(account_code):
            code, _, sub = entry.partition(accountcode.SUB_SEPARATOR)
            try:
                checked.append(accountcode.check_code(reasons, code, sub or None))
            except InvalidDataInput as e:
                why = "; ".join(str(v) for v in e.message.values()) if isinstance(e.message, dict) else str(e)
                raise InvalidDataInput({"metadata": f"accountcode {entry!r}: {why}"}) from None
        return accountcode.SEPARATOR.join(checked)

    def set_metadata_transformer(self, fn: accountcode.MetadataTransformer) -> None:
        """Seed 000: ``fn(uniqueid, metadata)`` changes the metadata of every
        ``cdr.metadata`` call in place before it is stored."""
        if not callable(fn):
            raise InvalidDataInput(f"a metadata transformer must be callable, not {type(fn).__name__}")
        self._transformer = fn

    def unset_metadata_transformer(self) -> None:
        self._transformer = None

    def find_call(self, uniqueid: str) -> Call | None:
        """A call in progress or recently ended, by its uniqueid or any leg's."""
        call = self._tracker.call_of(uniqueid) or self._tracker.calls.get(uniqueid)
        if call is not None:
            return call
        call = self._recent.get(uniqueid)
        if call is not None:
            return call
        return next((c for c in reversed(self._recent.values()) if uniqueid in c.legs), None)

    @staticmethod
    def _check_uniqueid(uniqueid: Any) -> str:
        if not isinstance(uniqueid, str) or not uniqueid.strip():
            raise InvalidDataInput({"uniqueid": f"{uniqueid!r} is not accepted; give the call's uniqueid"})
        return uniqueid.strip()

    async def stored_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """The stored CDR of an ended call (after the CDRs being written are), or ``None``."""
        return await self._stored_cdr(uniqueid)

    async def _stored_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        if self._store is None:
            return None
        try:
            if self._cdrs is not None:
                await self._cdrs.flushed()
            return await self._store.get_cdr(uniqueid)
        except Exception as e:  # noqa: BLE001 - any store failure is told to the client
            raise ProcessingError(f"the CDR of call {uniqueid} cannot be read now: {e}") from None

    async def _save_cdr(self, cdr: dict[str, Any]) -> None:
        assert self._store is not None
        try:
            await self._store.save_cdr(cdr)
        except Exception as e:  # noqa: BLE001 - any store failure is told to the client
            raise ProcessingError(f"the CDR of call {cdr.get('uniqueid')} cannot be saved now: {e}") from None

    # -- the phone and its call --------------------------------------------------------

    def _channels(self, device: str) -> list[Channel]:
        """The device's channels (no Local plumbing), oldest first."""
        return sorted((c for c in self._pbx.channels_of_device(device) if not c.is_local), key=_uid_order)

    def _current(self, device: str) -> Channel:
        """The channel the agent is busy with: the newest, preferring answered
        ones, and a held call's only when there is nothing else."""
        chans = self._channels(device)
        op = self.ops.get(device)
        if op is not None and op.state in (HELD, PARKED):
            others = [c for c in chans if c.uniqueid != op.agent]
            if others:
                chans = others
        if not chans:
            raise InvalidState(f"there is no call on {device}")
        answered = [c for c in chans if c.state == STATE_UP]
        return (answered or chans)[-1]

    def _talking(self, device: str) -> tuple[Channel, Channel, Call]:
        """The agent's channel, the one it talks to, and their call."""
        agent = self._current(device)
        if agent.state != STATE_UP:
            raise InvalidState(f"the call on {device} is not answered yet")
        bridge: Bridge | None = self._pbx.bridges.get(agent.bridge or "")
        others = [self._pbx.channels[u] for u in (bridge.channels if bridge else []) if u != agent.uniqueid and u in self._pbx.channels]
        if not others:
            raise InvalidState(f"the call on {device} is not connected to anyone now")
        if len(others) > 1:
            raise InvalidState(f"the call on {device} has {len(others) + 1} parties; this works on two-party calls only")
        return agent, others[0], self._call_of(agent, device)

    def _call_of(self, ch: Channel, device: str) -> Call:
        call = self._tracker.call_of(ch.uniqueid)
        if call is None:
            raise InvalidState(f"there is no call on {device} that UCS knows of ({ch.name})")
        return call

    @contextmanager
    def _line_busy(self, device: str, what: str) -> Iterator[None]:
        """One request per line at a time; the second is refused, not queued."""
        doing = self._busy.get(device)
        if doing is not None:
            raise InvalidState(f"{doing} on {device} is still in progress; try again when it is done")
        self._busy[device] = what
        try:
            yield
        finally:
            del self._busy[device]
            self._reconcile()

    def _drop(self, device: str, input: str) -> None:
        op = self.ops.pop(device, None)
        if op is not None:
            op.move(input)

    # -- talking to Asterisk -------------------------------------------------------------

    async def _send(self, action: str, headers: Mapping[str, object]) -> Any:
        try:
            return await self._ami.sendAction(action, headers)
        except AMIActionError as e:
            raise ActionRefused(action, e.message) from None
        except AMIError as e:
            raise PBXError(f"{action} could not be sent to Asterisk: {e}") from None

    async def _do(self, action: str, headers: Mapping[str, object], check: Callable[[], T | None], what: str) -> T:
        """Send ``action`` and wait until ``check`` sees its effect in the model."""
        exp = self._confirm.expect(check, what)
        if not exp.done:
            try:
                await self._send(action, headers)
            except BaseException:
                exp.cancel()
                raise
        return await exp.wait(self.confirm_timeout)

    def _fire(self, action: str, headers: Mapping[str, object], why: str) -> None:
        """Send without waiting (clean-ups); a failure is logged."""

        def failed(f: Failure) -> None:
            self.log.warn("{action} for {why} failed: {error}", action=action, why=why, error=f.getErrorMessage())

        d: Deferred[Any] = Deferred.fromCoroutine(self._send(action, headers))
        d.addErrback(failed)

    # -- observing the PBX -----------------------------------------------------------------

    def _changed(self) -> None:
        try:
            self._reconcile()
            self._confirm.poke()
        except Exception:  # noqa: BLE001 - nothing may break the PBX model's update
            self.log.failure("call control failed on a PBX event")

    def _reconcile(self) -> None:
        """Forget holds and transfers the PBX ended by itself; a held call whose
        other side went away is hung up (nobody could ever take it off hold)."""
        channels = self._pbx.channels
        for device, op in list(self.ops.items()):
            if device in self._busy:
                continue
            agent, party = channels.get(op.agent), channels.get(op.party)
            if op.state in (HELD, PARKED):
                if agent is not None and party is not None and (agent.bridge is None or agent.bridge != party.bridge):
                    continue  # still held
                self._drop(device, "gone")
                survivor = agent or party
                if survivor is not None and (agent is None or party is None):
                    self._fire("Hangup", {"Channel": survivor.name, "Cause": 16}, why=f"the held call on {device}")
            elif agent is None or party is None or (agent.bridge is not None and agent.bridge == party.bridge):
                self._drop(device, "gone")

    def _restarted(self) -> None:
        self.ops.clear()
        self._confirm.fail_all(PBXError("Asterisk restarted before it confirmed the request"))

    def _ended(self, call: Call) -> None:
        self._recent[call.uniqueid] = call
        self._recent.move_to_end(call.uniqueid)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)


class _Watcher(PBXObserver, CallObserver):
    """Tells call control about every fact the PBX model and the tracker apply."""

    def __init__(self, control: CallControl) -> None:
        self._control = control

    def channel_created(self, ch: Channel) -> None:
        self._control._changed()

    def channel_updated(self, ch: Channel, msg: Message) -> None:
        self._control._changed()

    def channel_hungup(self, ch: Channel, cause: int, cause_txt: str) -> None:
        for o in self._control._originating.values():
            if o.uid == ch.uniqueid:
                o.hangup_cause = cause
        self._control._changed()

    def hold_changed(self, ch: Channel) -> None:
        self._control._changed()

    def bridge_entered(self, bridge: Bridge, ch: Channel) -> None:
        self._control._changed()

    def bridge_left(self, bridge: Bridge, ch: Channel) -> None:
        self._control._changed()

    def dial_begin(self, src: Channel | None, dst: Channel, dialstring: str, exten: str) -> None:
        self._control._changed()

    def dial_end(self, src: Channel | None, dst: Channel, status: str) -> None:
        self._control._changed()

    def transfer(self, kind: str, msg: Message) -> None:
        self._control._changed()

    def resynced(self) -> None:
        self._control._changed()

    def pbx_restarted(self) -> None:
        self._control._restarted()

    def originate_response(self, msg: Message) -> None:
        """The PBX model passes every ``OriginateResponse`` on; ours fail or confirm a dial."""
        self._control.originate_response(msg)

    def call_ended(self, call: Call) -> None:
        self._control._ended(call)
