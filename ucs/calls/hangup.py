"""Who ended a call, and the cause of each leg's end and of the call's.

The captures' README explains the rule: the side whose channel *first* leaves
the bridge the caller is in at the end, counting from the last time that
bridge's members changed; neither ``SoftHangupRequest`` nor the order of
``Hangup`` events says who hung up.  When no bridge tells (a held call,
Asterisk 11), the order in which legs asked to hang up does; when the end
happened while UCS was not listening (Asterisk restarted, the AMI link was
down), nothing does and the cause is unknown.

:class:`Hangups` keeps what that needs across events and reasons with it.  The
tracker (``ucs.calls.tracker``) records the bridge facts into its dicts
itself, on the hot path of every bridge event, and asks it for a cause once
per hang-up.
"""

from __future__ import annotations

from ucs.calls.call import Call, Cause, Leg, cause_from_dialstatus, cause_from_q850

#: AST_CAUSE_ANSWERED_ELSEWHERE: ast_do_pickup sets it on the ringing channel it takes over.
ANSWERED_ELSEWHERE = 26
from ucs.calls.numbers import LOCAL
from ucs.calls.topology import local_partner_name
from ucs.pbx.pbx import PBX


class Hangups:
    def __init__(self) -> None:
        #: bridge → uniqueid of the first channel to leave since its members last changed
        self.first_leaver: dict[str, str | None] = {}
        #: leg → the last bridge it entered
        self.last_bridge: dict[str, str] = {}
        #: legs Asterisk lost (restart) or that ended while the link was down
        self.forced: set[str] = set()
        #: legs call control moves out of their bridge (``Redirect``, hold on
        #: chan_sip): leaving that bridge is not hanging up
        self.redirecting: set[str] = set()
        self._gone_seq = 0

    def mark_gone(self, leg: Leg) -> None:
        """``leg`` hung up or asked to: remember in which order."""
        if not leg.gone_order:
            self._gone_seq += 1
            leg.gone_order = self._gone_seq

    @staticmethod
    def first_gone(call: Call) -> Leg | None:
        """The real leg that hung up (or asked to) first: who ended a call that
        no bridge tells about (a held call, Asterisk 11)."""
        gone = [l for l in call.legs.values() if l.kind != LOCAL and l.gone_order]
        return min(gone, key=lambda l: l.gone_order) if gone else None

    def unseen_end(self, call: Call) -> bool:
        """Whether the end that decides the cause happened while UCS was not
        listening (Asterisk restarted, the link was down): the caller's leg and
        the party it talked to both ended unseen.  A leg that vanished unseen
        while the other side hung up later in plain sight (the call survived
        the reconnect) still leaves its cause known."""
        origin = call.legs.get(call.origin)
        if origin is None or origin.uniqueid not in self.forced:
            return False
        party = next((l for l in call.legs.values() if call.connected_channel and l.channel == call.connected_channel), None)
        return party is None or party.uniqueid in self.forced

    def leg_cause(self, call: Call, leg: Leg, q850: int) -> Cause:
        """Why ``leg`` ended (``q850``: its channel's hang-up cause)."""
        if leg.transferred:
            return Cause.TRANSFER
        origin = call.legs.get(call.origin)
        if (origin is not None and origin.hangup_requested and origin.ended is not None and leg is not origin
                and leg.answered is not None and not leg.hangup_requested):
            # The caller's phone hung up first and this one did not: Asterisk ended
            # its part (an attended transfer whose consultation still rang fails,
            # and takes the agent's channel with it).
            return Cause.CALLER_HUNG_UP
        left = self._who_left(call, leg.uniqueid, set())
        if left is not None:
            return Cause.CALLER_HUNG_UP if left == call.origin else Cause.CALLED_HUNG_UP
        if leg.answered is None:
            if origin is not None and origin.hangup_requested and leg.uniqueid != call.origin:
                return Cause.CALLER_HUNG_UP
            if leg.uniqueid != call.origin and q850 == ANSWERED_ELSEWHERE:
                return Cause.PICKUP  # another phone picked the call up (main/pickup.c)
            if leg.uniqueid != call.origin and cause_from_q850(q850) == Cause.REJECTED:
                # The phone declined (603): Dial() reports that as BUSY (chan_sip)
                # or NOANSWER (PJSIP), but its own channel says rejected.
                return Cause.REJECTED
            if leg.uniqueid != call.origin and cause_from_q850(q850) == Cause.INVALID_NUMBER:
                # The carrier answered 404 Not Found (Q.850 1, unallocated number):
                # chan_sip's Dial() reports that as NOANSWER, the channel says why.
                return Cause.INVALID_NUMBER
            by_status = cause_from_dialstatus(leg.dial_status) if leg.dial_status else None
            if by_status is not None:
                return by_status
            if leg.dial_status == "CANCEL":
                return Cause.CALLER_HUNG_UP
        if leg.answered is not None and leg.uniqueid != call.origin:
            first_gone = self.first_gone(call)
            if first_gone is not None:
                return Cause.CALLER_HUNG_UP if first_gone.uniqueid == call.origin else Cause.CALLED_HUNG_UP
        return cause_from_q850(q850) or (Cause.CALLER_HUNG_UP if leg.hangup_requested else Cause.UNKNOWN)

    def _who_left(self, call: Call, uniqueid: str, seen: set[str]) -> str | None:
        """Which real leg left first the last bridge of ``uniqueid``, looking
        through Local pairs: when the first to leave was a Local half, its
        other half's bridge tells who hung up on the far side."""
        seen.add(uniqueid)
        bridge = self.last_bridge.get(uniqueid)
        first = self.first_leaver.get(bridge) if bridge is not None else None
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
        other = local_partner_name(leg.channel)
        return next((l for l in call.legs.values() if l.channel == other), None)

    def call_cause(self, call: Call) -> Cause:
        """Why ``call`` ended, once all its legs have."""
        origin = call.legs.get(call.origin)
        if origin is None:
            return Cause.UNKNOWN
        if call.connected is not None:
            bridge = self.last_bridge.get(origin.uniqueid)
            first = self.first_leaver.get(bridge) if bridge else None
            if first is not None:
                return Cause.CALLER_HUNG_UP if first == origin.uniqueid else Cause.CALLED_HUNG_UP
            first_gone = self.first_gone(call)
            return Cause.CALLER_HUNG_UP if first_gone is None or first_gone is origin else Cause.CALLED_HUNG_UP
        if origin.hangup_requested:
            return Cause.CALLER_HUNG_UP
        if any(l.cause == Cause.INVALID_NUMBER for l in call.legs.values() if l is not origin):
            return Cause.INVALID_NUMBER  # the number dialled does not exist (before Dial()'s NOANSWER)
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

    def forget(self, pbx: PBX, call: Call) -> None:
        """``call`` is over: drop what was kept for its legs, and for their
        last bridges when those are gone too."""
        self.forced.difference_update(call.legs)
        for uid in call.legs:
            bid = self.last_bridge.pop(uid, None)
            if bid is not None and not pbx.bridges.get(bid):
                self.first_leaver.pop(bid, None)
