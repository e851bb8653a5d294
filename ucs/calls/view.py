"""How a call's change is told: the one rule that turns a move from one state to
another into an event name.

Pure (no state of its own): the bus's publisher (:mod:`ucs.calls.publisher`)
applies it to the call as a whole, the agent bar's hub (:mod:`ucs.web.hub`) to
each phone's view of the call, which differs where that phone's leg does (it
rings inside a call connected elsewhere, it talks while the caller waits on hold).
"""

from __future__ import annotations

from collections.abc import Collection

from ucs import events as ev
from ucs.constants import CallState

#: The states the bus tells as "ringing": a call is ringing once a phone rings.
CALL_RINGING: frozenset[int] = frozenset({CallState.RINGING})
#: The states a phone's bar is told as "ringing": its own phone dialling out, too.
PHONE_RINGING: frozenset[int] = frozenset({CallState.DIALING, CallState.RINGING})


def state_event(state: int, was: int | None, *, held: bool,
                ringing: Collection[int] = CALL_RINGING) -> str | None:
    """The event that says a call (or a phone's view of it) moved from ``was``
    (``None``: not seen before) to ``state``, or ``None`` when there is none to tell.

    ``held``: it was on hold and is not connected again yet (a connection is then
    a resume); ``ringing``: the states told as ringing (once, on entering them).
    """
    if state == was:
        return None
    if state in ringing:
        return None if was in ringing else ev.EVENT_CALL_RINGING
    if state == CallState.CONNECTED:
        return ev.EVENT_CALL_RESUME if held else ev.EVENT_CALL_CONNECT
    if state == CallState.HELD:
        return ev.EVENT_CALL_HOLD
    return None
