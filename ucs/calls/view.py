"""How a call's change is told, and how a call looks from one phone.

Pure (no state of its own).  :func:`state_event` turns a move from one state to
another into an event name: the bus's publisher (:mod:`ucs.calls.publisher`)
applies it to the call as a whole, the agent bar's hub (:mod:`ucs.web.hub`) to
each phone's view of the call, which differs where that phone's leg does (it
rings inside a call connected elsewhere, it talks while the caller waits on hold).

The phone's view itself (:func:`phone_state`, :func:`my_number`, :func:`my_end`,
:func:`my_times`, all of it at once in :func:`phone_view`) is the one rule both the
live events (:mod:`ucs.web.callview`) and the ``state`` a bar loads after a
(re)connect (:mod:`ucs.api.state`) use.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ucs import events as ev
from ucs.calls.call import Call, CallState, Cause, Leg

#: The states the bus tells as "ringing": a call is ringing once a phone rings.
CALL_RINGING: frozenset[int] = frozenset({CallState.RINGING})
#: The states a phone's bar is told as "ringing": its own phone dialling out, too.
PHONE_RINGING: frozenset[int] = frozenset({CallState.DIALING, CallState.RINGING})

_RINGING = (CallState.NEW, CallState.DIALING, CallState.RINGING)


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


# -- one phone's view -----------------------------------------------------------------------------


def parties(call: Call) -> set[str]:
    """The phones of the call's two parties (the caller's and the connected one's):
    when the call is on hold, one of them holds it."""
    out = set()
    for leg in call.legs.values():
        if leg.uniqueid == call.origin or (call.connected_channel and leg.channel == call.connected_channel):
            out.add(leg.device)
    return out


def phone_leg(call: Call, device: str) -> Leg | None:
    """The phone's leg in the call: its latest one still up, else ``None``."""
    legs = [leg for leg in call.legs.values() if leg.device == device and leg.ended is None]
    return legs[-1] if legs else None


def phone_state(call: Call, device: str, prev: int | None = None) -> int | None:
    """The call's state as the phone ``device`` sees it (``None``: the phone has
    no leg up in the call, or the call ended).  ``prev``: the state this phone's
    bar was last shown, when it was shown one (the live events); ``None`` for a
    bar that (re)loads its whole state."""
    leg = phone_leg(call, device)
    if call.ended or leg is None:
        return None
    state = int(call.state)
    if leg.answered is None and call.state not in _RINGING:
        state = int(CallState.RINGING)  # my phone rings in a call that is connected elsewhere
    elif leg.picked_up and call.state in _RINGING:
        state = int(CallState.CONNECTED)  # I picked the ringing call up: Dial() hears of it next
    elif leg.answered is not None and device not in (call.hold_parties or parties(call)):
        if prev == CallState.HELD:
            state = prev  # I held the caller, who went to the one I consulted; my own leg ends next
        elif call.state == CallState.HELD:
            state = int(CallState.CONNECTED)  # consulted while the caller waits on hold: I am talking
    if state == CallState.SUSPENDED and prev is not None:
        state = prev  # passing through on the way to hold or back
    return state


def my_end(call: Call, device: str) -> tuple[tuple[str, Any], ...]:
    """How the call ended for this phone when the call itself goes on (the agent
    hung up and the caller's leg is still being torn down, the agent transferred
    the caller away): seed 002's ``onCallHangup`` needs a cause, never -1."""
    if call.ended:
        return ()
    mine = [leg for leg in call.legs.values() if leg.device == device and leg.ended is not None]
    if not mine:
        return ()
    leg = max(mine, key=lambda l: l.ended or 0.0)
    if (leg.answered is None and call.connected is not None and leg.created <= call.connected
            and not leg.dial_status.startswith(("BUSY", "CONGESTION"))):
        # It rang for the caller and someone else answered (ringall, a pickup).  A phone
        # rung later in the call (a consultation, a transfer) that does not answer keeps
        # its own cause.
        cause = Cause.PICKUP
    elif (leg.answered is None and call.connected is not None and leg.dial_status in ("CANCEL", "NOANSWER")
          and not _caller_gone(call)):
        # Rung later in the call (a consultation, a transfer) and withdrawn unanswered,
        # by the attended transfer's no-answer timeout or the agent giving up: for
        # this phone it rang out, as a Dial timeout does (6), not a caller hanging up.
        cause = Cause.UNAVAILABLE
    else:
        cause = leg.cause if leg.cause != Cause.NOT_SET else Cause.UNKNOWN
    return (("cause", int(cause)), ("disconnected", leg.ended))


def _caller_gone(call: Call) -> bool:
    """The caller hung up (a consultation still ringing then fails: for the phone it
    rang, the caller hung up)."""
    origin = call.legs.get(call.origin)
    return origin is not None and origin.ended is not None and origin.hangup_requested


def my_number(call: Call, device: str) -> tuple[tuple[str, Any], ...]:
    """Seed 002's ``number`` as this phone sees it (:meth:`Call.number_for`): the
    phone that placed an internal call would otherwise be shown its own extension."""
    number = call.number_for(device)
    return (("number", number),) if number != call.number else ()


def my_times(call: Call, device: str, state: int) -> tuple[tuple[str, Any], ...]:
    """What the bar's timer counts from, for this phone (server time, seconds; ``None``
    where it does not apply):

    * ``ringing_since``: this phone's leg began ringing (not the caller's wait in a queue);
    * ``answered_at``: this phone's leg was answered — for the phone that placed the
      call, when the other party answered; for a consulted agent, when it answered the
      consultation (not when the caller was first answered);
    * ``held_since``: the call went on hold, while this phone sees it held.
    """
    legs = [leg for leg in call.legs.values() if leg.device == device]
    live = [leg for leg in legs if leg.ended is None]
    if not legs:
        return (("ringing_since", None), ("answered_at", None), ("held_since", None))
    leg = (live or legs)[-1]
    answered = call.connected if leg.uniqueid == call.origin else leg.answered
    held = call.held_since if state == CallState.HELD else None
    return (("ringing_since", leg.created), ("answered_at", answered), ("held_since", held))


def phone_view(call: Call, device: str, now: float | None = None) -> dict[str, Any] | None:
    """The whole Call object (seed 002's) as the phone ``device`` sees it now, as
    ``state`` gives it to a bar that (re)connects: its state, number and timer
    fields; ``None`` when the phone has no leg up in the call."""
    state = phone_state(call, device)
    if state is None:
        return None
    d = call.to_dict(now)
    d.update(my_number(call, device), state=state)
    d.update(my_times(call, device, state))
    return d


def primary(views: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The phone's active call among its calls (seed 002's ``call``): the latest one
    not on hold, else the latest — the call the bar draws with its buttons."""
    for d in reversed(views):
        if d["state"] != CallState.HELD:
            return d
    return views[-1] if views else None

