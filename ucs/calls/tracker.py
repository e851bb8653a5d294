"""The call tracker: turns the PBX model's channel-level facts into calls.

A call is every channel sharing one ``Linkedid``.  The channel whose
``Uniqueid`` equals the ``Linkedid`` (or, without one, the first seen) is the
caller's leg; the direction, caller and cause are read from its point of
view.

Who ended a connected call is decided the way the captures' README explains:
the side whose channel *first* leaves the bridge the caller is in at the end,
counting from the last time that bridge's members changed.  Neither
``SoftHangupRequest`` nor the order of ``Hangup`` events says who hung up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ucs.ami.message import Message
from ucs.calls.call import (
    INCOMING, INTERNAL, OUTGOING, Call, CallState, Cause, JourneyStep, Leg,
    cause_from_dialstatus, cause_from_q850,
)
from ucs.calls.numbers import LINE, LOCAL, TRUNK, DeviceClassifier, NumberNormalizer
from ucs.pbx.model import Bridge, Channel, Queue
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX, SecondsClock

if TYPE_CHECKING:
    from twisted.logger import Logger


def _cid(value: str | None) -> str:
    return "" if not value or value in ("<unknown>", "unknown") else value


#: Dialplan applications worth a step in the journey: where a caller spends
#: time without a person on the line.  Plumbing (Set, Goto, NoOp…) is not.
JOURNEY_APPS = frozenset({
    "Playback", "BackGround", "Background", "Read", "WaitExten", "Wait", "VoiceMail",
    "VoiceMailMain", "MusicOnHold", "AGI", "EAGI", "FastAGI", "ConfBridge", "MeetMe", "Record",
    "SayDigits", "SayNumber", "SayAlpha", "Echo", "Park", "ParkedCall", "Directory", "Page",
    "Festival", "Milliwatt", "Playtones", "Stasis",
})


class CallObserver:
    """What the tracker tells the rest of UCS (agents, the bus, the CDR writer)."""

    def call_created(self, call: Call) -> None: ...
    def call_changed(self, call: Call) -> None: ...
    def call_ended(self, call: Call) -> None: ...


class CallTracker(PBXObserver):
    @property
    def log(self) -> Logger:
        """Twisted's logger, imported when an observer fails: ``ucs-replay`` starts without Twisted."""
        from twisted.logger import Logger

        return Logger(namespace=f"{__name__}.{type(self).__name__}", source=self)


    def __init__(
        self,
        pbx: PBX,
        clock: SecondsClock,
        classify: DeviceClassifier | None = None,
        normalize: NumberNormalizer | None = None,
        observers: Iterable[CallObserver] = (),
    ) -> None:
        self._pbx = pbx
        self._clock = clock
        self.classify = classify or DeviceClassifier()
        self.normalize = normalize or NumberNormalizer()
        self.observers: list[CallObserver] = list(observers)
        self.calls: dict[str, Call] = {}  # active, by Linkedid
        self._leg_call: dict[str, Call] = {}  # leg Uniqueid → call
        self._visible: set[str] = set()
        self._ids = itertools.cycle(range(1, 65536))
        # bridge → uniqueid of the first channel to leave since its members last changed
        self._first_leaver: dict[str, str | None] = {}
        self._last_bridge: dict[str, str] = {}  # call → the caller leg's last bridge
        self._queue_steps: dict[str, JourneyStep] = {}
        self._app_steps: dict[str, JourneyStep] = {}
        # legs Asterisk lost (restart) or that ended while the link was down
        self._forced: set[str] = set()
        self._redirecting: set[str] = set()
        self._originating: dict[str, str] = {}  # device → the number UCS asked it to call
        self._gone_seq = 0
        # The owner puts the tracker in ``pbx.observers`` (``ucs.server``): the
        # constructor subscribes to nothing.

    # -- lookups ------------------------------------------------------------------

    def call_of(self, uniqueid: str) -> Call | None:
        return self._leg_call.get(uniqueid)

    def active_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.uniqueid in self._visible]

    def calls_of_device(self, device: str) -> list[Call]:
        return [
            c for c in self.active_calls()
            if any(leg.device == device and leg.ended is None for leg in c.legs.values())
        ]

    # -- notifications ------------------------------------------------------------

    def _notify(self, method: str, call: Call) -> None:
        if call.uniqueid not in self._visible:
            return
        for obs in self.observers:
            try:
                getattr(obs, method)(call)
            except Exception:
                self.log.failure("call observer {obs!r} failed on {method}", obs=obs, method=method)

    def _changed(self, call: Call) -> None:
        origin = self._pbx.channels.get(call.origin)
        path: list[Channel] = []
        talks_to = self._far_end(origin, set(), path) if origin is not None else None
        self._update_state(call, path)
        self._update_consult(call, talks_to)
        self._notify("call_changed", call)

    # -- channels -------------------------------------------------------------------

    def channel_created(self, ch: Channel) -> None:
        now = self._clock.seconds()
        call = self.calls.get(ch.linkedid)
        if call is None:
            call = self.calls[ch.linkedid] = Call(uniqueid=ch.linkedid, id=next(self._ids), created=now)
        kind = self.classify(ch.device)
        leg = Leg(ch.uniqueid, ch.name, ch.device, kind, now, ch.caller_num, ch.caller_name)
        call.legs[ch.uniqueid] = leg
        self._leg_call[ch.uniqueid] = call
        origin = call.legs.get(call.origin)
        if (
            origin is None
            or (ch.uniqueid == call.uniqueid and origin.uniqueid != call.uniqueid)
            or (origin.kind == LOCAL and kind != LOCAL and not self._has_real_leg(call, leg))
        ):
            if origin is not None and origin.step is not None:
                # Seen after its other legs (a resync): the caller was not who we thought.
                origin.step.description = f"Call to {origin.number or origin.device}"
                origin.step.start = leg.created
            self._set_origin(call, leg, ch)
            if leg.step is not None and call.journey[0] is not leg.step:
                call.journey.remove(leg.step)
                call.journey.insert(0, leg.step)
        elif kind != LOCAL:
            if kind == TRUNK and call.direction == INTERNAL:
                call.direction = OUTGOING
            leg.step = self._step(call, ch.device, kind, f"{'Outgoing call to' if kind == TRUNK else 'Call to'} {ch.caller_num or ch.exten}".strip(), now)
        if kind != LOCAL and call.uniqueid not in self._visible:
            self._visible.add(call.uniqueid)
            self._update_state(call, [])
            self._notify("call_created", call)

    def _party_name(self, call: Call, ch: Channel) -> str:
        """The name of the party on ``ch``.  A channel Asterisk dialled out on a
        trunk carries the caller's own name (it is what the far end is shown),
        never the called party's: that one is unknown."""
        if self.classify(ch.device) == TRUNK and ch.uniqueid != call.origin and ch.caller_name == call.caller_name:
            return ""
        return ch.caller_name

    def _has_real_leg(self, call: Call, besides: Leg) -> bool:
        return any(l.kind != LOCAL for l in call.legs.values() if l is not besides)

    def expect_origination(self, device: str, number: str) -> None:
        """UCS is about to ``Originate`` a call from ``device`` to ``number``
        (click-to-dial): the phone rings first and Asterisk names the number
        only once it answers, but the bar must show whom the agent calls from
        the first ``call.new``."""
        self._originating[device] = number

    def forget_origination(self, device: str) -> None:
        self._originating.pop(device, None)

    def _set_origin(self, call: Call, leg: Leg, ch: Channel) -> None:
        call.origin = leg.uniqueid
        call.caller_channel = ch.name
        call.caller_number = ch.caller_num
        call.caller_name = ch.caller_name
        call.caller_type = leg.kind if leg.kind != LOCAL else ""
        call.caller_internal = leg.kind == LINE
        call.caller_number_norm = "" if call.caller_internal else self.normalize(ch.caller_num)
        if leg.kind == TRUNK:
            call.direction = INCOMING
            call.called_number = ch.exten if ch.exten not in ("s", "") else call.called_number
            call.called_number_norm = self.normalize(call.called_number)
            desc = f"Incoming call from {ch.caller_num or 'anonymous'}"
            if call.called_number:
                desc += f" to {call.called_number}"
        elif leg.kind == LINE:
            if any(l.kind == TRUNK for l in call.legs.values() if l is not leg):
                call.direction = OUTGOING
            else:
                call.direction = INTERNAL
            number = self._originating.pop(ch.device, None) if ch.uniqueid == ch.linkedid else None
            if number:
                call.called_number = number
                call.called_number_norm = self.normalize(number)
                digits = sum(c.isdigit() for c in number)
                if call.called_number_norm or digits >= self.normalize.min_length:
                    # An outside number (longer than any extension): it will leave
                    # through a trunk, whatever outside-line prefix the PBX uses.
                    call.direction = OUTGOING
            elif ch.uniqueid == ch.linkedid and ch.exten not in ("s", "") and not call.called_number:
                # What the phone dialled (the INVITE's number): the bar shows whom
                # the agent calls from the first call.new, before any Dial.
                call.called_number = ch.exten
            desc = f"Call from {ch.caller_name + ' ' if ch.caller_name else ''}({ch.caller_num or ch.device})"
        else:
            return
        leg.step = self._step(call, ch.device, leg.kind, desc, leg.created)

    def _step(self, call: Call, device: str, kind: str, description: str, start: float) -> JourneyStep:
        step = JourneyStep(device, kind, description, start)
        call.journey.append(step)
        return step

    def channel_updated(self, ch: Channel, msg: Message) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        leg = call.legs[ch.uniqueid]
        changed = False
        if ch.state == 6 and leg.answered is None:
            leg.answered = self._clock.seconds()
            changed = True
        if leg.uniqueid == call.origin:
            if ch.caller_num and ch.caller_num != call.caller_number and call.direction != OUTGOING:
                call.caller_number = ch.caller_num
                call.caller_number_norm = "" if call.caller_internal else self.normalize(ch.caller_num)
                changed = True
            if ch.caller_name and ch.caller_name != call.caller_name:
                call.caller_name = ch.caller_name
                changed = True
            if msg.get("Event") == "MuteAudio":
                call.caller_muted = ch.muted_in
                changed = True
            if call.state == CallState.NEW and ch.state >= 4 and not call.connected_channel:
                # The caller's own phone rings (a click-to-dial Originate rings the
                # agent first, and may never get further): the call is under way.
                changed = True
        elif call.connected_channel == ch.name:
            if msg.get("Event") == "MuteAudio":
                call.connected_muted = ch.muted_in
                changed = True
            elif ch.caller_name and ch.caller_name != call.connected_name:
                call.connected_name = self._party_name(call, ch)
                changed = True
        if changed:
            self._changed(call)

    def channel_relinked(self, ch: Channel, old_linkedid: str) -> None:
        old = self.calls.get(old_linkedid)
        if old is None or set(old.legs) != {ch.uniqueid}:
            return
        # The one-leg call it seemed to be never existed: fold it into the real one.
        del self.calls[old_linkedid]
        self._visible.discard(old_linkedid)
        self._leg_call.pop(ch.uniqueid, None)
        self.channel_created(ch)

    def channel_renamed(self, ch: Channel, old_name: str) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        leg = call.legs[ch.uniqueid]
        leg.channel = ch.name
        if "<" in ch.name:
            # ``<MASQ>``/``<ZOMBIE>``: the husk a masquerade leaves behind.
            leg.kind = LOCAL
            return
        leg.device = ch.device
        leg.kind = self.classify(ch.device)
        if leg.uniqueid == call.origin:
            call.caller_channel = ch.name
        elif call.connected_channel == old_name:
            call.connected_channel = ch.name

    def channel_masqueraded(self, original: Channel, clone: Channel) -> None:
        """``original`` keeps its Uniqueid and becomes ``clone``'s line (Asterisk
        11's Local channel optimisation, pickups): it takes the clone's part
        in the call, and the clone is left a husk that only hangs up."""
        call = self._leg_call.get(original.uniqueid)
        if call is None or self._leg_call.get(clone.uniqueid) is not call:
            return
        mine, theirs = call.legs[original.uniqueid], call.legs[clone.uniqueid]
        mine.device, mine.kind = theirs.device, theirs.kind
        mine.number, mine.name = theirs.number, theirs.name
        mine.answered = mine.answered if theirs.answered is None else theirs.answered
        mine.step, theirs.step = theirs.step, None
        theirs.kind = LOCAL
        if call.origin == clone.uniqueid:
            call.origin = original.uniqueid
        if call.connected_channel == clone.name:
            call.connected_channel = ""  # set again by the bridge the original is in

    def hangup_requested(self, ch: Channel) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is not None:
            leg = call.legs[ch.uniqueid]
            leg.hangup_requested = True
            self._mark_gone(leg)

    def _mark_gone(self, leg: Leg) -> None:
        if not leg.gone_order:
            self._gone_seq += 1
            leg.gone_order = self._gone_seq

    def _first_gone(self, call: Call) -> Leg | None:
        """The real leg that hung up (or asked to) first: who ended a call that
        no bridge tells about (a held call, Asterisk 11)."""
        gone = [l for l in call.legs.values() if l.kind != LOCAL and l.gone_order]
        return min(gone, key=lambda l: l.gone_order) if gone else None

    def channel_hungup(self, ch: Channel, cause: int, cause_txt: str) -> None:
        call = self._leg_call.pop(ch.uniqueid, None)
        if call is None:
            return
        now = self._clock.seconds()
        leg = call.legs[ch.uniqueid]
        leg.ended = now
        leg.hangup_requested = leg.hangup_requested or ch.hangup_requested
        self._mark_gone(leg)
        forced = cause == 0 and cause_txt in ("Asterisk restarted", "gone while the AMI link was down")
        leg.cause = Cause.UNKNOWN if forced else self._leg_cause(call, leg, cause)
        if leg.step is not None and leg.step.end is None:
            leg.step.end = now
            self._describe_leg_end(call, leg)
        if forced:
            self._forced.add(leg.uniqueid)
        if all(l.ended is not None for l in call.legs.values()):
            self._finish(call, now, self._unseen_end(call))
        else:
            self._changed(call)

    def _unseen_end(self, call: Call) -> bool:
        """Whether the end that decides the cause happened while UCS was not
        listening (Asterisk restarted, the link was down): the caller's leg and
        the party it talked to both ended unseen.  A leg that vanished unseen
        while the other side hung up later in plain sight (the call survived
        the reconnect) still leaves its cause known."""
        origin = call.legs.get(call.origin)
        if origin is None or origin.uniqueid not in self._forced:
            return False
        party = next((l for l in call.legs.values() if call.connected_channel and l.channel == call.connected_channel), None)
        return party is None or party.uniqueid in self._forced

    def _describe_leg_end(self, call: Call, leg: Leg) -> None:
        step = leg.step
        assert step is not None
        if leg.uniqueid == call.origin or leg.kind != LINE:
            return
        if leg.transferred:
            step.description += ", transferred"
        elif leg.answered is None and not step.description.endswith("answered"):
            step.description += ", no answer" if leg.dial_status in ("", "NOANSWER", "CANCEL") else f", {leg.dial_status.lower()}"

    def _leg_cause(self, call: Call, leg: Leg, q850: int) -> Cause:
        if leg.transferred:
            return Cause.TRANSFER
        left = self._who_left(call, leg.uniqueid, set())
        if left is not None:
            return Cause.CALLER_HUNG_UP if left == call.origin else Cause.CALLED_HUNG_UP
        if leg.answered is None:
            origin = call.legs.get(call.origin)
            if origin is not None and origin.hangup_requested and leg.uniqueid != call.origin:
                return Cause.CALLER_HUNG_UP
            if leg.uniqueid != call.origin and cause_from_q850(q850) == Cause.REJECTED:
                # The phone declined (603): Dial() reports that as BUSY (chan_sip)
                # or NOANSWER (PJSIP), but its own channel says rejected.
                return Cause.REJECTED
            by_status = cause_from_dialstatus(leg.dial_status) if leg.dial_status else None
            if by_status is not None:
                return by_status
            if leg.dial_status == "CANCEL":
                return Cause.CALLER_HUNG_UP
        if leg.answered is not None and leg.uniqueid != call.origin:
            first_gone = self._first_gone(call)
            if first_gone is not None:
                return Cause.CALLER_HUNG_UP if first_gone.uniqueid == call.origin else Cause.CALLED_HUNG_UP
        return cause_from_q850(q850) or (Cause.CALLER_HUNG_UP if leg.hangup_requested else Cause.UNKNOWN)

    def _who_left(self, call: Call, uniqueid: str, seen: set[str]) -> str | None:
        """Which real leg left first the last bridge of ``uniqueid``, looking
        through Local pairs: when the first to leave was a Local half, its
        other half's bridge tells who hung up on the far side."""
        seen.add(uniqueid)
        bridge = self._last_bridge.get(uniqueid)
        first = self._first_leaver.get(bridge) if bridge is not None else None
        if first is None or first == uniqueid:
            return first
        leg = call.legs.get(first)
        if leg is None or leg.kind != LOCAL:
            return first
        partner = self._local_partner(call, leg)
        if partner is None or partner.uniqueid in seen:
            return first
        beyond = self._who_left(call, partner.uniqueid, seen)
        return uniqueid if beyond in (None, partner.uniqueid) else beyond

    @staticmethod
    def _local_partner(call: Call, leg: Leg) -> Leg | None:
        name = leg.channel
        other = name[:-1] + ("2" if name.endswith("1") else "1")
        return next((l for l in call.legs.values() if l.channel == other), None)

    # -- the end of a call -----------------------------------------------------------

    def _finish(self, call: Call, now: float, forced: bool) -> None:
        call.disconnected = now
        call.cause = Cause.UNKNOWN if forced else self._call_cause(call)
        call.state = CallState.NEW if call.connected is None else CallState.CONNECTED
        for step in call.journey:
            if step.end is None:
                step.end = now
        self._forced.difference_update(call.legs)
        self._queue_steps.pop(call.uniqueid, None)
        self._app_steps.pop(call.uniqueid, None)
        del self.calls[call.uniqueid]
        for uid in call.legs:
            self._leg_call.pop(uid, None)
            bid = self._last_bridge.pop(uid, None)
            if bid is not None and not self._pbx.bridges.get(bid):
                self._first_leaver.pop(bid, None)
        if call.uniqueid in self._visible:
            self._visible.discard(call.uniqueid)
            for obs in self.observers:
                try:
                    obs.call_ended(call)
                except Exception:
                    self.log.failure("call observer {obs!r} failed on call_ended", obs=obs)

    def _call_cause(self, call: Call) -> Cause:
        origin = call.legs.get(call.origin)
        if origin is None:
            return Cause.UNKNOWN
        if call.connected is not None:
            bridge = self._last_bridge.get(origin.uniqueid)
            first = self._first_leaver.get(bridge) if bridge else None
            if first is not None:
                return Cause.CALLER_HUNG_UP if first == origin.uniqueid else Cause.CALLED_HUNG_UP
            first_gone = self._first_gone(call)
            return Cause.CALLER_HUNG_UP if first_gone is None or first_gone is origin else Cause.CALLED_HUNG_UP
        if origin.hangup_requested:
            return Cause.CALLER_HUNG_UP
        statuses = [l.dial_status for l in call.legs.values() if l is not origin and l.dial_status]
        if "CANCEL" in statuses:
            # Dial() was still calling when its caller went: the caller hung up,
            # whatever the agent's phone had answered to before.
            return Cause.CALLER_HUNG_UP
        for status in reversed(statuses):
            mapped = cause_from_dialstatus(status)
            if mapped is not None:
                return mapped
        if origin.cause in (Cause.BUSY, Cause.INVALID_NUMBER, Cause.REJECTED, Cause.UNAVAILABLE):
            return origin.cause
        if origin.answered is not None:
            # Answered by the PBX itself (an IVR, a message) and ended by it.
            return Cause.CALLED_HUNG_UP
        return Cause.UNKNOWN

    # -- bridges: who is talking to whom ----------------------------------------------

    def bridge_entered(self, bridge: Bridge, ch: Channel) -> None:
        self._first_leaver[bridge.uniqueid] = None
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        self._last_bridge[ch.uniqueid] = bridge.uniqueid
        origin = self._pbx.channels.get(call.origin)
        if origin is None or origin.bridge is None:
            return
        far = self._far_end(origin, set())
        if far is None:
            return
        leg = call.legs.get(far.uniqueid)
        if leg is None:
            return
        now = self._clock.seconds()
        if leg.answered is None:
            leg.answered = now
        if call.connected is None:
            call.connected = now
        if call.answered_by is None and leg.uniqueid != call.origin:
            call.answered_by = leg.device
        if call.connected_channel != far.name:
            call.connected_channel = far.name
            call.connected_number = far.caller_num
            call.connected_name = self._party_name(call, far)
            call.connected_type = leg.kind
            call.connected_internal = leg.kind == LINE
            call.connected_number_norm = "" if leg.kind == LINE else self.normalize(far.caller_num)
            if call.direction == OUTGOING and leg.kind == TRUNK and not call.called_number:
                call.called_number = far.caller_num
                call.called_number_norm = self.normalize(far.caller_num)
            if leg.step is not None and not leg.step.description.endswith("answered"):
                leg.step.description += ", answered"
        self._changed(call)

    def _far_end(self, ch: Channel, seen: set[str], path: list[Channel] | None = None) -> Channel | None:
        """The line or trunk ``ch`` is talking to, looking through Local channel
        pairs; ``path`` collects the Local channels on the way."""
        seen.add(ch.uniqueid)
        bridge = self._pbx.bridges.get(ch.bridge or "")
        if bridge is None:
            return None
        for uid in bridge.channels:
            if uid in seen:
                continue
            other = self._pbx.channels.get(uid)
            if other is None:
                continue
            if not other.is_local:
                return other
            name = other.name
            partner = self._pbx.channel_by_name(name[:-1] + ("2" if name.endswith("1") else "1"))
            if partner is not None and partner.uniqueid not in seen:
                seen.add(other.uniqueid)
                found = self._far_end(partner, seen, path)
                if found is not None:
                    if path is not None:
                        path.extend((other, partner))
                    return found
        return None

    def _update_consult(self, call: Call, talks_to: Channel | None) -> None:
        """Whom the agent consults while the caller waits (an attended transfer):
        the caller is not talking to the connected agent, and the agent's phone
        rings or talks to someone else."""
        consult = None
        agent = self._pbx.channel_by_name(call.connected_channel) if call.connected_channel else None
        origin = self._pbx.channels.get(call.origin)
        if agent is not None and origin is not None and talks_to is not agent:
            far = self._far_end(agent, {call.origin})
            if far is not None:
                consult = {"state": "connected", "number": far.caller_num, "name": far.caller_name,
                           "channel": far.name}
            else:
                ringing = [
                    l for l in call.legs.values()
                    if l.kind != LOCAL and l.answered is None and l.ended is None
                    and l.uniqueid not in (call.origin, agent.uniqueid)
                ]
                if ringing:
                    consult = {"state": "ringing", "number": ringing[-1].number, "name": ringing[-1].name,
                               "channel": ringing[-1].channel}
        call.consult = consult

    def bridge_left(self, bridge: Bridge, ch: Channel) -> None:
        if ch.uniqueid in self._redirecting:
            self._redirecting.discard(ch.uniqueid)
            return
        if self._first_leaver.get(bridge.uniqueid) is None:
            self._first_leaver[bridge.uniqueid] = ch.uniqueid
        call = self._leg_call.get(ch.uniqueid)
        if call is not None and call.legs[ch.uniqueid].ended is None:
            self._changed(call)

    # -- dialing, queues, transfers ----------------------------------------------------

    def dial_begin(self, src: Channel | None, dst: Channel, dialstring: str, exten: str) -> None:
        call = self._leg_call.get(dst.uniqueid)
        if call is None:
            return
        leg = call.legs[dst.uniqueid]
        number = exten or dialstring.rpartition("/")[2]
        if leg.kind == LINE and not number.isdigit() and dst.caller_num:
            number = dst.caller_num  # Asterisk 11 dials a peer by name (``Dial(SIP/uuuuu)``)
        if leg.kind == TRUNK and leg.uniqueid != call.origin:
            if call.direction == INTERNAL:
                call.direction = OUTGOING
            if number and (call.direction == OUTGOING and not call.called_number or src is not None and src.uniqueid == call.origin):
                call.called_number = number
                call.called_number_norm = self.normalize(number)
            if leg.step is not None:
                leg.step.description = f"Outgoing call to {number}" if number else leg.step.description
        elif leg.kind == LINE and leg.uniqueid != call.origin:
            if call.direction == INTERNAL and not call.called_number and number:
                call.called_number = number
            if leg.step is not None:
                who = f"{dst.caller_name} ({dst.caller_num})" if dst.caller_name else (dst.caller_num or dst.device)
                leg.step.description = f"Rang {who}" + (f" (queue {call.queue})" if self._queue_steps.get(call.uniqueid) else "")
        self._end_app_step(call)
        call.subcalls = self._ringing(call)
        self._changed(call)

    def dial_end(self, src: Channel | None, dst: Channel, status: str) -> None:
        call = self._leg_call.get(dst.uniqueid)
        if call is None:
            return
        leg = call.legs[dst.uniqueid]
        leg.dial_status = status
        if status == "ANSWER" and leg.answered is None:
            leg.answered = self._clock.seconds()
        if status == "ANSWER" and leg.uniqueid != call.origin and leg.kind != LOCAL:
            # Answered: the bridge follows at once, unless the log does not show
            # it (a FreePBX follow-me behind Local channels, filtered by its author).
            if call.connected is None:
                call.connected = leg.answered
            if call.answered_by is None:
                call.answered_by = leg.device
        call.subcalls = self._ringing(call)
        self._changed(call)

    def _ringing(self, call: Call) -> int:
        return sum(
            1 for l in call.legs.values()
            if l.kind == LINE and l.uniqueid != call.origin and l.ended is None and l.answered is None
        )

    @staticmethod
    def _rings(call: Call) -> bool:
        """Whether a phone or a trunk is still being called for ``call``: a line
        :meth:`_ringing` counts, or a trunk leg that has not answered."""
        origin = call.origin
        for l in call.legs.values():
            if l.answered is None and l.ended is None and l.uniqueid != origin and (l.kind == LINE or l.kind == TRUNK):
                return True
        return False

    def queue_caller_joined(self, queue: Queue, ch: Channel) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        now = self._clock.seconds()
        self._end_app_step(call)
        call.queue = queue.name
        self._queue_steps[call.uniqueid] = self._step(call, f"Queue:{queue.name}", "queue", f"Waited in queue {queue.name}", now)
        self._changed(call)

    def queue_caller_left(self, queue: Queue, ch: Channel, abandoned: bool) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        step = self._queue_steps.pop(call.uniqueid, None)
        if step is None:
            return
        step.end = self._clock.seconds()
        if abandoned:
            step.description += ", abandoned"

    def agent_called(self, queue: Queue, interface: str, caller: Channel | None, agent: Channel | None) -> None:
        if agent is None:
            return
        call = self._leg_call.get(agent.uniqueid)
        if call is not None and call.legs[agent.uniqueid].step is not None:
            member = queue.members.get(interface)
            who = member.name if member and member.name else interface
            step = call.legs[agent.uniqueid].step
            assert step is not None
            step.description = f"Rang {who} (queue {queue.name})"

    def agent_ring_no_answer(self, queue: Queue, interface: str, caller: Channel | None, agent: Channel | None) -> None:
        if agent is None:
            return
        call = self._leg_call.get(agent.uniqueid)
        if call is not None:
            call.legs[agent.uniqueid].dial_status = "NOANSWER"

    def agent_connected(self, queue: Queue, interface: str, caller: Channel | None, agent: Channel | None, msg: Message) -> None:
        ch = caller or agent
        call = self._leg_call.get(ch.uniqueid) if ch is not None else None
        if call is None:
            return
        call.queue = queue.name
        if call.answered_by is None:
            call.answered_by = interface or (agent.device if agent else None)
        for step in reversed(call.journey):
            if step.device == f"Queue:{queue.name}":
                step.description += f", answered by {interface}"
                break
        self._changed(call)

    def transfer(self, kind: str, msg: Message) -> None:
        if msg.get("Result", "Success") != "Success":
            return
        names = (
            [msg.get("TransfererChannel", "")] if kind == "blind"
            else [msg.get("OrigTransfererChannel", ""), msg.get("SecondTransfererChannel", "")]
        )
        call: Call | None = None
        source: Leg | None = None
        for name in dict.fromkeys(n for n in names if n):  # the same channel may be both transferers
            ch = self._pbx.channel_by_name(name)
            found = self._leg_call.get(ch.uniqueid) if ch is not None else None
            if found is None or ch is None:
                continue
            call = found
            leg = found.legs[ch.uniqueid]
            if leg.uniqueid != found.origin:
                leg.transferred = True
            source = source or leg
        if call is None or source is None:
            return
        if kind == "blind":
            target = msg.get("Extension", "")
        else:
            target = _cid(msg.get("TransfereeConnectedLineNum")) or _cid(msg.get("SecondTransfererConnectedLineNum"))
            target = target or call.connected_number
        call.transfers.append({"kind": kind, "from": source.device, "to": target, "at": self._clock.seconds()})
        self._changed(call)

    def expect_redirect(self, uniqueids: Iterable[str]) -> None:
        """Call control is about to move these channels out of their bridge
        with ``Redirect`` (hold on chan_sip): leaving that bridge is not hanging
        up, so it must not count as who left first."""
        self._redirecting.update(uniqueids)

    def hold_changed(self, ch: Channel) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is not None:
            self._changed(call)

    def application(self, ch: Channel, app: str, data: str) -> None:
        if app not in JOURNEY_APPS:
            return
        call = self._leg_call.get(ch.uniqueid)
        if call is None or ch.uniqueid != call.origin:
            return
        self._end_app_step(call)
        self._app_steps[call.uniqueid] = self._step(
            call, app, "application", f"{app}({data})" if data else app, self._clock.seconds()
        )

    def _end_app_step(self, call: Call) -> None:
        step = self._app_steps.pop(call.uniqueid, None)
        if step is not None and step.end is None:
            step.end = self._clock.seconds()

    # -- state ---------------------------------------------------------------------------

    def _update_state(self, call: Call, path: list[Channel]) -> None:
        """``path``: the Local channels between the caller and whom it talks to."""
        origin = self._pbx.channels.get(call.origin)
        if call.connected_channel:
            far = self._pbx.channel_by_name(call.connected_channel)
            held = (
                (origin is not None and origin.on_hold) or (far is not None and far.on_hold)
                or any(ch.on_hold for ch in path)
            )
            talking = origin is not None and origin.bridge is not None and far is not None
            if held:
                call.state = CallState.HELD
            elif talking:
                call.state = CallState.CONNECTED
            else:
                call.state = CallState.SUSPENDED
        elif self._rings(call):
            call.state = CallState.RINGING
        elif len(call.legs) > 1 or (origin is not None and origin.state >= 4):
            call.state = CallState.DIALING

    def pbx_restarted(self) -> None:
        # PBX.clear() already hung every channel up with cause 0.
        pass
