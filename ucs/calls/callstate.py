"""A call's state read off the PBX model: dialling, ringing, connected, held
or suspended, and how many phones still ring for it.

Derived afresh from the call's legs and the channels they are on each time
something changes, never remembered: pure functions, apart from the tracker
that keeps the calls (``ucs.calls.tracker``) so that what decides the state
reads in one screen.
"""

from __future__ import annotations

from ucs.calls.call import Call, CallState
from ucs.calls.numbers import LINE, TRUNK
from ucs.calls.view import parties
from ucs.pbx.model import Channel
from ucs.pbx.pbx import PBX


def ringing(call: Call) -> int:
    """How many phones are still being called for ``call`` (``Call.subcalls``)."""
    return sum(
        1 for l in call.legs.values()
        if l.kind == LINE and l.uniqueid != call.origin and l.ended is None and l.answered is None
    )


def rings(call: Call) -> bool:
    """Whether a phone or a trunk is still being called for ``call``: a line
    :func:`ringing` counts, or a trunk leg that has not answered."""
    origin = call.origin
    for l in call.legs.values():
        if l.answered is None and l.ended is None and l.uniqueid != origin and (l.kind == LINE or l.kind == TRUNK):
            return True
    return False


def update_state(pbx: PBX, call: Call, path: list[Channel]) -> None:
    """Set ``call.state``.  ``path``: the Local channels between the caller and
    whom it talks to."""
    origin = pbx.channels.get(call.origin)
    if call.connected_channel:
        far = pbx.channel_by_name(call.connected_channel)
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
    elif rings(call):
        call.state = CallState.RINGING
    elif len(call.legs) > 1 or (origin is not None and origin.state >= 4):
        call.state = CallState.DIALING


def note_hold(call: Call, now: float) -> None:
    """Keep ``call.held_since`` and ``call.hold_parties`` with ``call.state``: set when
    the call goes on hold (who was in the call then: a phone that joins while the
    caller still hears music, the consulted party of a transfer that completes, did
    not hold it and is talking), cleared when it is no longer held."""
    if call.state == CallState.HELD and not call.ended:
        if call.held_since is None:
            call.held_since = now
            call.hold_parties = frozenset(parties(call))
    elif call.held_since is not None:
        call.held_since = None
        call.hold_parties = frozenset()
