"""The caller hangs up while the agent consults: what is left is a call of its own.

During an attended transfer the caller waits on hold in one bridge while the agent
talks to the consulted party in another (through a Local pair).  Every channel
shares the caller's ``Linkedid``, so the tracker sees one call.  When the caller
hangs up there, Asterisk 20 ends the transfer (``bridge_basic.c``: in the
consulting state, the transferee's hang-up makes the consultation bridge a normal
one) and the agent and the consulted party talk on; nothing else is said on the
AMI (the captures ``*_atxfer_caller_hangs_up_consulting``).  Were the legs left in
the caller's call, the agent's bar would show a caller on hold who is gone, the
consulted agent the caller's number while talking to a colleague, and the CDR the
consultation's minutes as the caller's.

So the caller's call ends when the caller hangs up (its CDR, cause 3: the caller
hung up) and the two who still talk are a new internal (or outgoing, when the
consulted number is outside) call from the agent, created at that moment.  When
the consultation was still ringing, Asterisk tears it all down itself
(``AttendedTransfer`` Result ``Fail``): nothing to split, one call ends.
"""

from __future__ import annotations

import attrs

from ucs.calls.call import Call, Cause, Leg
from ucs.calls.numbers import LOCAL
from ucs.calls.topology import far_end
from ucs.pbx.pbx import PBX


def talking_on(pbx: PBX, call: Call) -> tuple[Leg, Leg] | None:
    """Two legs of ``call`` still up and talking to each other, the one that was the
    call's connected party (the agent who consulted) first; ``None`` if there are none."""
    for leg in call.legs.values():
        if leg.ended is not None or leg.kind == LOCAL or leg.uniqueid == call.origin:
            continue
        ch = pbx.channels.get(leg.uniqueid)
        far = far_end(pbx, ch, set()) if ch is not None else None
        other = call.legs.get(far.uniqueid) if far is not None else None
        if other is None or other.ended is not None or other.uniqueid == call.origin:
            continue
        if other.channel == call.connected_channel:
            return other, leg
        return leg, other
    return None


def part_with(call: Call, now: float, staying: list[Leg]) -> dict[str, Leg]:
    """Take ``staying`` (the legs still up) out of ``call``, which ends now: the call
    keeps a copy of each, ended now because the caller hung up, and their journey
    steps end.  Returns the legs that go on, by uniqueid, to build the new call from."""
    moved: dict[str, Leg] = {}
    for leg in staying:
        record = attrs.evolve(leg, ended=now, cause=Cause.CALLER_HUNG_UP, hangup_requested=False)
        if leg.step is not None and leg.step.end is None:
            leg.step.end = now
        call.legs[leg.uniqueid] = record
        leg.step = None
        moved[leg.uniqueid] = leg
    return moved
