"""The call tracker: turns the PBX model's channel-level facts into calls.

A call is every channel sharing one ``Linkedid``.  The channel whose
``Uniqueid`` equals the ``Linkedid`` (or, without one, the first seen) is the
caller's leg; the direction, caller and cause are read from its point of
view.

The tracker hears the model (a :class:`~ucs.pbx.observer.PBXObserver`), keeps
the calls and which call each leg belongs to, and tells its
:class:`CallObserver` s.  What it decides with is apart, each in a module of
its own: who talks to whom through Local pairs (:mod:`ucs.calls.topology`),
a call's state (:mod:`ucs.calls.callstate`), who ended a call and why
(:mod:`ucs.calls.hangup`), transfers and consultations
(:mod:`ucs.calls.transfers`), the journey and its queue steps
(:mod:`ucs.calls.journey`), and who the caller and the called party are
(:mod:`ucs.calls.parties`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ucs.ami.message import Message
from ucs.calls.call import INTERNAL, OUTGOING, Call, CallState, Cause, Leg
from ucs.calls.callstate import note_hold, ringing, update_state
from ucs.calls.consultation import part_with, talking_on
from ucs.calls.hangup import Hangups
from ucs.calls.journey import JOURNEY_APPS, Journey, add_step, describe_leg_end
from ucs.calls.numbers import LINE, LOCAL, TRUNK, DeviceClassifier, NumberNormalizer
from ucs.calls.parties import party_name, set_connected, set_origin
from ucs.calls.spying import CHANSPY, Spies
from ucs.calls.topology import far_end
from ucs.calls.transfers import consult_of, record_transfer
from ucs.pbx.model import Bridge, Channel, Queue
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX, SecondsClock

if TYPE_CHECKING:
    from twisted.logger import Logger


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
        self._hangups = Hangups()
        # Its bridge bookkeeping, written here by every bridge event (the hot
        # path: no call into it for that), read by its reasoning at a hang-up.
        self._first_leaver = self._hangups.first_leaver
        self._last_bridge = self._hangups.last_bridge
        self._redirecting = self._hangups.redirecting
        self._journey = Journey(clock)
        self._originating: dict[str, str] = {}  # device → the number UCS asked it to call
        #: Supervisors' monitoring (ChanSpy): which calls are monitoring sessions, and of
        #: which calls (:mod:`ucs.calls.spying`).
        self.spies = Spies()
        #: Linkedid of a call that ended while two of its legs talked on → the call they
        #: are now (:mod:`ucs.calls.consultation`): channels still to come join that one.
        self._successor: dict[str, str] = {}
        # The owner puts the tracker in ``pbx.observers`` (``ucs.server``): the
        # constructor subscribes to nothing.

    # -- lookups ------------------------------------------------------------------

    def call_of(self, uniqueid: str) -> Call | None:
        return self._leg_call.get(uniqueid)

    def touch(self, call: Call) -> None:
        """Something outside the PBX model changed the live ``call`` (a recording
        call control started): its observers hear it as a change."""
        if self.calls.get(call.uniqueid) is call and not call.ended:
            self._changed(call)

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
        talks_to = far_end(self._pbx, origin, set(), path) if origin is not None else None
        update_state(self._pbx, call, path)
        note_hold(call, self._clock.seconds())
        call.consult = consult_of(self._pbx, call, talks_to)
        call.recording = any(
            ch.recording for u, leg in call.legs.items() if leg.ended is None and (ch := self._pbx.channels.get(u))
        )
        call.recorded = call.recorded or call.recording
        self._notify("call_changed", call)

    # -- channels -------------------------------------------------------------------

    def channel_created(self, ch: Channel) -> None:
        now = self._clock.seconds()
        key = self._successor.get(ch.linkedid, ch.linkedid) if self._successor else ch.linkedid
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = Call(uniqueid=key, id=next(self._ids), created=now)
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
            set_origin(call, leg, ch, self.normalize, self._originating)
            if self.spies.expected and len(call.legs) == 1:
                self.spies.created(call, ch.device, now)
            if leg.step is not None and call.journey[0] is not leg.step:
                call.journey.remove(leg.step)
                call.journey.insert(0, leg.step)
        elif kind != LOCAL:
            if kind == TRUNK and call.direction == INTERNAL:
                call.direction = OUTGOING
            leg.step = add_step(call, ch.device, kind, f"{'Outgoing call to' if kind == TRUNK else 'Call to'} {ch.caller_num or ch.exten}".strip(), now)
        if kind != LOCAL and call.uniqueid not in self._visible:
            self._visible.add(call.uniqueid)
            update_state(self._pbx, call, [])
            self._notify("call_created", call)

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

    def expect_spy(self, device: str, mode: str, by: str, channel: str) -> None:
        """UCS is about to ring ``device`` into ChanSpy on ``channel`` for the supervisor
        ``by``: the call its phone gets is a monitoring session from its first ``call.new``
        (:mod:`ucs.calls.spying`)."""
        self.spies.expect(device, mode, by, channel, self._clock.seconds())

    def forget_spy(self, device: str) -> None:
        self.spies.forget(device)

    def channel_updated(self, ch: Channel, msg: Message) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        leg = call.legs[ch.uniqueid]
        changed = msg.get("Event") in ("MixMonitorStart", "MixMonitorStop")
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
                call.connected_name = party_name(self.classify, call, ch)
                changed = True
        if changed:
            self._changed(call)

    def channel_relinked(self, ch: Channel, old_linkedid: str) -> None:
        old = self.calls.get(old_linkedid)
        if old is None or set(old.legs) != {ch.uniqueid}:
            return
        # The one-leg call it seemed to be (the picker's dialling) was part of the real
        # one: it ends for whoever was shown it (cause 7: it picked the call up, no
        # CDR), then the channel joins the call it picked up.
        now = self._clock.seconds()
        leg = old.legs[ch.uniqueid]
        leg.ended, leg.cause = now, Cause.PICKUP
        if leg.step is not None and leg.step.end is None:
            leg.step.end = now
        old.merged_into = ch.linkedid
        old.disconnected, old.cause = now, Cause.PICKUP
        old.state = CallState.NEW if old.connected is None else CallState.CONNECTED
        del self.calls[old_linkedid]
        self._leg_call.pop(ch.uniqueid, None)
        self._journey.forget(old)
        if old_linkedid in self._visible:
            self._visible.discard(old_linkedid)
            for obs in self.observers:
                try:
                    obs.call_ended(old)
                except Exception:
                    self.log.failure("call observer {obs!r} failed on call_ended", obs=obs)
        self.channel_created(ch)
        call = self._leg_call.get(ch.uniqueid)
        if call is not None:
            call.legs[ch.uniqueid].picked_up = True

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
            self._hangups.mark_gone(leg)

    def channel_hungup(self, ch: Channel, cause: int, cause_txt: str) -> None:
        call = self._leg_call.pop(ch.uniqueid, None)
        if call is None:
            return
        now = self._clock.seconds()
        leg = call.legs[ch.uniqueid]
        leg.ended = now
        leg.hangup_requested = leg.hangup_requested or ch.hangup_requested
        self._hangups.mark_gone(leg)
        forced = cause == 0 and cause_txt in ("Asterisk restarted", "gone while the AMI link was down")
        leg.cause = Cause.UNKNOWN if forced else self._hangups.leg_cause(call, leg, cause)
        if leg.step is not None and leg.step.end is None:
            leg.step.end = now
            describe_leg_end(call, leg)
        if forced:
            self._hangups.forced.add(leg.uniqueid)
        if all(l.ended is not None for l in call.legs.values()):
            self._finish(call, now, self._hangups.unseen_end(call))
        elif leg.uniqueid == call.origin and (pair := talking_on(self._pbx, call)) is not None:
            self._split(call, now, *pair)
        else:
            self._changed(call)

    def _split(self, call: Call, now: float, agent: Leg, party: Leg) -> None:
        """The caller hung up while ``agent`` talks on with ``party`` (a consultation):
        the caller's call ends, and theirs is a new call from ``agent``
        (:mod:`ucs.calls.consultation`)."""
        moved = part_with(call, now, [l for l in call.legs.values() if l.ended is None])
        bridges = {uid: self._last_bridge[uid] for uid in moved if uid in self._last_bridge}
        self._finish(call, now, False)
        self._last_bridge.update(bridges)
        new = Call(uniqueid=agent.uniqueid, id=next(self._ids), created=now)
        new.legs.update(moved)
        for uid in moved:
            self._leg_call[uid] = new
        self.calls[new.uniqueid] = new
        self._successor[call.uniqueid] = new.uniqueid
        self._pbx.hold_ended(agent.uniqueid)
        set_origin(new, agent, self._pbx.channels[agent.uniqueid], self.normalize, {})
        if agent.step is not None:
            agent.step.start = now
        new.called_number = party.number
        party.step = add_step(new, party.device, party.kind, f"Call to {party.name + ' ' if party.name else ''}({party.number or party.device})", now)
        new.connected = now
        new.answered_by = party.device
        set_connected(new, party, self._pbx.channels[party.uniqueid], self.classify, self.normalize)
        self._visible.add(new.uniqueid)
        update_state(self._pbx, new, [])
        self._notify("call_created", new)
        self._changed(new)

    # -- the end of a call -----------------------------------------------------------

    def _finish(self, call: Call, now: float, forced: bool) -> None:
        call.disconnected = now
        if call.monitoring is not None or call.monitors:
            self.spies.finished(call, now)
        call.cause = Cause.UNKNOWN if forced else self._hangups.call_cause(call)
        call.state = CallState.NEW if call.connected is None else CallState.CONNECTED
        for step in call.journey:
            if step.end is None:
                step.end = now
        self._hangups.forget(self._pbx, call)
        self._journey.forget(call)
        del self.calls[call.uniqueid]
        if self._successor:
            self._successor = {k: v for k, v in self._successor.items() if call.uniqueid not in (k, v)}
        for uid in call.legs:
            self._leg_call.pop(uid, None)
        if call.uniqueid in self._visible:
            self._visible.discard(call.uniqueid)
            for obs in self.observers:
                try:
                    obs.call_ended(call)
                except Exception:
                    self.log.failure("call observer {obs!r} failed on call_ended", obs=obs)

    # -- bridges: who is talking to whom ----------------------------------------------

    def bridge_entered(self, bridge: Bridge, ch: Channel) -> None:
        self._first_leaver[bridge.uniqueid] = None
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        before = self._last_bridge.get(ch.uniqueid)
        if before is not None and before != bridge.uniqueid and self._first_leaver.get(before) == ch.uniqueid:
            # It moved (an attended transfer takes the agent to the consultation's
            # bridge): leaving was not hanging up, whoever leaves next there is.
            self._first_leaver[before] = None
        self._last_bridge[ch.uniqueid] = bridge.uniqueid
        self._connect_far(call)

    def _connect_far(self, call: Call) -> None:
        """The caller talks to whoever is at the far end of its bridge now."""
        origin = self._pbx.channels.get(call.origin)
        far = far_end(self._pbx, origin, set()) if origin is not None and origin.bridge is not None else None
        if far is None:
            # The caller talks to no one (on hold for a consultation): whom the agent
            # consults may have changed (the consulted phone answered).
            if origin is not None and consult_of(self._pbx, call, None) != call.consult:
                self._changed(call)
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
            set_connected(call, leg, far, self.classify, self.normalize)
        self._changed(call)

    def bridge_left(self, bridge: Bridge, ch: Channel) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is not None and call.connected_channel == ch.name and bridge.channels:
            # The one the caller talked to left a bridge the caller stays in with someone
            # else (an attended transfer completed from the caller's side, a conference).
            self._connect_far(call)
        if ch.uniqueid in self._redirecting:
            self._redirecting.discard(ch.uniqueid)
            return
        if self._first_leaver.get(bridge.uniqueid) is None:
            self._first_leaver[bridge.uniqueid] = ch.uniqueid
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
                leg.step.description = f"Rang {who}" + (f" (queue {call.queue})" if self._journey.in_queue(call) else "")
        self._journey.end_application(call)
        call.subcalls = ringing(call)
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
        call.subcalls = ringing(call)
        self._changed(call)

    def queue_caller_joined(self, queue: Queue, ch: Channel) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is None:
            return
        self._journey.queue_joined(call, queue.name)
        self._changed(call)

    def queue_caller_left(self, queue: Queue, ch: Channel, abandoned: bool) -> None:
        call = self._leg_call.get(ch.uniqueid)
        if call is not None:
            self._journey.queue_left(call, abandoned)

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
        self._journey.queue_answered(call, queue.name, interface)
        self._changed(call)

    def transfer(self, kind: str, msg: Message) -> None:
        call = record_transfer(self._pbx, self._leg_call, kind, msg, self._clock)
        if call is not None:
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
        if app == CHANSPY:  # a dialplan ChanSpy (a feature code): a monitoring session
            self.spies.data[ch.uniqueid] = data
            spy = self._leg_call.get(ch.uniqueid)
            if spy is not None and self.spies.mark(spy, data):
                self._changed(spy)
            return
        if app not in JOURNEY_APPS:
            return
        call = self._leg_call.get(ch.uniqueid)
        if call is None or ch.uniqueid != call.origin:
            return
        self._journey.application(call, app, data)

    # -- monitoring (ChanSpy): not calls, facts of the calls monitored -------------------

    def originate_response(self, msg: Message) -> None:
        """An Originate to ``Application: ChanSpy`` (UCS's or anyone's) answered: its
        channel is a monitoring session."""
        if msg.get("Application") != CHANSPY:
            return
        if msg.get("Response") != "Success":  # the phone never answered: nothing more to expect
            self.spies.forget(msg.get("Channel", ""))
            return
        uid, data = msg.get("Uniqueid", ""), msg.get("Data", "")
        if not uid:
            return
        self.spies.data[uid] = data
        spy = self._leg_call.get(uid)
        if spy is not None and self.spies.mark(spy, data):
            self._changed(spy)

    def spy_changed(self, spyee: Channel, spyer: Channel | None, started: bool) -> None:
        now = self._clock.seconds()
        target = self._leg_call.get(spyee.uniqueid)
        if started:
            if spyer is None:
                return  # a spy UCS never saw (its Newchannel before a reconnect): no phone to name
            spy = self._leg_call.get(spyer.uniqueid)
            self.spies.started(spy, spyer.uniqueid, spyer.device, spyer.name, target, spyee.name, spyee.device, now)
            if spy is not None:
                self._changed(spy)
        else:
            uid = spyer.uniqueid if spyer is not None else ""
            target = self.spies.stopped(uid, now) if uid else None
        # The monitored call's ``monitors`` changed: a change no party is told (a listening
        # supervisor is not heard, nor shown: no phone's view changes, so the bars get no frame),
        # but a cluster's standbys are (a new owner's CDR of the call keeps who monitored it).
        if target is not None:
            self.touch(target)

    def pbx_restarted(self) -> None:
        # PBX.clear() already hung every channel up with cause 0.
        self.spies.clear()
