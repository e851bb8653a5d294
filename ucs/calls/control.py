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
``record``             ``MixMonitor`` of the agent's channel, ``stop_record``
                       ``StopMixMonitor`` (:mod:`ucs.calls.recording`; a
                       queue with ``record`` is recorded from ``AgentConnect``)
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

Its parts: :mod:`ucs.calls.control_base` (the line, AMI actions and their
confirmation), :mod:`ucs.calls.dial` (click-to-dial), :mod:`ucs.calls.cdrmeta`
(account codes and metadata of live and stored calls, :attr:`CallControl.records`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.interfaces import IReactorTime

from ucs.ami.message import Message
from ucs.bus import EventBus
from ucs.calls import accountcode
from ucs.calls.call import Call
from ucs.calls.cdrmeta import CallRecords, CDRStore, Flushable
from ucs.calls.confirm import Confirmations
from ucs.calls.control_base import (
    LAB_CONTEXTS,
    MAX_NUMBER,
    STATE_RINGING,
    ActionRefused,
    Contexts,
    DirectoryView,
    check_number,
    line_device,
)
from ucs.calls.control_state import CONFERENCE, CONSULTING, HELD, IDLE, PARKED, SWAPPED, LineOp, next_state
from ucs.calls.control_xfer import TransferControl, TransferKeys
from ucs.calls.dial import ORIGINATE_REASONS, Dialling, _Originating
from ucs.calls.recording import Recording
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.directory.model import Line
from ucs.error import InvalidState, PBXError
from ucs.interfaces import ActionSender
from ucs.pbx.model import STATE_UP, Bridge, Channel
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX

__all__ = [
    "LAB_CONTEXTS", "MAX_NUMBER", "ORIGINATE_REASONS", "ActionRefused", "CallControl", "CallRecords",
    "CDRStore", "Contexts", "DirectoryView", "Flushable", "check_number",
]


class CallControl(Dialling, TransferControl, Recording):
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
    :param keys: features.conf's ``atxferswap`` and ``atxferthreeway`` (swap, conference).
    """

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
        keys: TransferKeys | None = None,
    ) -> None:
        self._ami = ami
        self._pbx = pbx
        self._tracker = tracker
        self._bus = bus
        self.clock = clock
        self.directory = directory
        self.contexts = contexts
        self.confirm_timeout = confirm_timeout
        self.ring_timeout = ring_timeout
        if keys is not None:
            self.keys = keys
        self._confirm = Confirmations(clock)
        self.ops: dict[str, LineOp] = {}
        self._busy: dict[str, str] = {}
        self._originating: dict[str, _Originating] = {}  # by the Originate's ActionID
        self._ctd = itertools.count(1)
        #: Account codes and metadata of live, recent and stored calls.
        self.records = CallRecords(tracker, bus, directory=directory, store=store, cdrs=cdrs, recent=recent)
        #: What the owner puts in the PBX model's and the tracker's observer lists
        #: (``ucs.server``), after the tracker: the checks then run on a model the
        #: tracker already updated.  The constructor subscribes to nothing.
        self.observer = _Watcher(self)

    # -- answer ----------------------------------------------------------------------

    async def answer(self, line: Line | str) -> Call:
        """Answer the call ringing on the agent's phone, remotely.

        Only phones that answer on a SIP NOTIFY ``Event: talk`` can be made to
        answer, and the line must say so (``auto_answer = "sip-notify"``);
        otherwise :class:`InvalidState` explains that the call must be answered
        on the phone.  Resolves when the phone has answered.
        """
        device = line_device(line)
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

    # -- hangup ----------------------------------------------------------------------

    async def hangup(self, line: Line | str) -> Call:
        """Hang up the agent's call (or decline it while it rings).

        During an attended transfer this ends the consultation call and the
        agent is back with the caller; a held call is taken off hold first,
        so that the call's cause says the agent ended it.
        """
        device = line_device(line)
        with self._line_busy(device, "hangup"):
            ch = self._current(device)
            op = self.ops.get(device)
            if op is not None and ch.uniqueid == op.agent:
                if op.state == CONSULTING:
                    return await self._abort_consult(device, op, ch)
                if op.state == SWAPPED:
                    return await self._abort_swapped(device, op, ch)
                if op.state == CONFERENCE:
                    return await self._leave_conference(device, ch)
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

        result = await self._hang_up_until(consult, back, f"{device} is back with the caller after the consultation call ended")
        self._drop(device, "abort")
        return result

    async def _hang_up_until(self, channels: list[Channel], test: Callable[[], Call | None], what: str) -> Call:
        """Hang ``channels`` up and wait until the model shows ``test`` (``what``)."""
        exp = self._confirm.expect(test, what)
        try:
            for c in channels:
                await self._send("Hangup", {"Channel": c.name, "Cause": 16})
        except BaseException:
            exp.cancel()
            raise
        return await exp.wait(self.confirm_timeout)

    async def _leave_conference(self, device: str, agent: Channel) -> Call:
        """The agent leaves the other two talking: for the call that is a transfer
        (the agent's leg ends as transferred, cause 8, and who hangs up later
        decides the call's cause), though Asterisk reports none."""
        self._drop(device, "leave")
        call = self._call_of(agent, device)
        leg = call.legs.get(agent.uniqueid)
        if leg is not None and leg.uniqueid != call.origin and len(self._bridged_with(agent)) >= 2:
            leg.transferred = True
            self._tracker.expect_redirect((agent.uniqueid,))  # leaving is not ending the call
        return await self._do("Hangup", {"Channel": agent.name, "Cause": 16},
                              lambda: call if agent.uniqueid not in self._pbx.channels else None,
                              f"{agent.name} leaves the conference")

    async def _abort_swapped(self, device: str, op: LineOp, agent: Channel) -> Call:
        """Back with the caller: hang up the consulted party who waits on hold."""
        bridge = self._pbx.bridges.get(op.target_bridge)
        waiting = [self._pbx.channels[u] for u in (bridge.channels if bridge else []) if u in self._pbx.channels]
        call = self._call_of(agent, device)
        result = await self._hang_up_until(waiting, lambda: call if self._swapped_over(op) else None,
                                           f"the consultation call on {device} ends")
        self._drop(device, "abort")
        return result

    # -- hold ------------------------------------------------------------------------

    async def hold(self, line: Line | str) -> Call:
        """Put the call on hold: the other party hears music, the agent's phone
        stays in the call in silence.  Resolves once the model shows it held."""
        device = line_device(line)
        with self._line_busy(device, "hold"):
            op = self.ops.get(device)
            next_state(device, op.state if op else IDLE, "hold")
            agent, party, call = self._talking(device)
            await self._park(device, agent, party, call)
            self.ops[device] = LineOp(device, HELD, agent.uniqueid, party.uniqueid, call.uniqueid)
            return call

    async def unhold(self, line: Line | str) -> Call:
        """Take the held call off hold (also leaves transfer mode)."""
        device = line_device(line)
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
        device = line_device(line)
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
        device = line_device(line)
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
        device = line_device(line)
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
            if op.state == SWAPPED:
                # Asterisk kicks the agent out of the caller's bridge after the consulted
                # party came in: that leaving is the transfer, not who ended the call.
                self._tracker.expect_redirect((agent.uniqueid,))

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
        device = line_device(line)
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

    # -- account codes and metadata (CallRecords) ----------------------------------------

    async def set_account_code(
        self, uniqueid: str, code: str, sub_code: str | None = None, override: bool = False
    ) -> str:
        """See :meth:`CallRecords.set_account_code`."""
        return await self.records.set_account_code(uniqueid, code, sub_code, override)

    async def cdr_metadata(self, uniqueid: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`CallRecords.cdr_metadata`."""
        return await self.records.cdr_metadata(uniqueid, metadata)

    def set_metadata_transformer(self, fn: accountcode.MetadataTransformer) -> None:
        """See :meth:`CallRecords.set_metadata_transformer`."""
        self.records.set_metadata_transformer(fn)

    def unset_metadata_transformer(self) -> None:
        self.records.unset_metadata_transformer()

    def find_call(self, uniqueid: str) -> Call | None:
        """A call in progress or recently ended, by its uniqueid or any leg's."""
        return self.records.find_call(uniqueid)

    async def stored_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """The stored CDR of an ended call (after the CDRs being written are), or ``None``."""
        return await self.records.stored_cdr(uniqueid)

    # -- observing the PBX -----------------------------------------------------------------

    def _restarted(self) -> None:
        self.ops.clear()
        self._confirm.fail_all(PBXError("Asterisk restarted before it confirmed the request"))

    def _ended(self, call: Call) -> None:
        self.records.call_ended(call)


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

    def agent_connected(self, queue: Any, interface: str, caller: Channel | None, agent: Channel | None,
                        msg: Message) -> None:
        self._control.queue_answered(queue.name, agent)
