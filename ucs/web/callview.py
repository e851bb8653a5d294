"""What each agent bar was shown of each call, and how a call looks from one phone.

A call is seen from each phone's side: ringing for the phone that rings in a call
connected elsewhere, talking for the party consulted while the caller is on hold,
a hang-up (with its own cause) for the phone that left a call that goes on.
:class:`CallViews` remembers the state each session (by sid) was last shown of
each call, so that each change becomes the events that session has not had yet;
the :class:`~ucs.web.hub.Hub` finds the connections and sends them.
"""

from __future__ import annotations

from typing import Any

from ucs import events as ev
from ucs.calls.call import INCOMING, Call, CallState, Cause
from ucs.calls.view import PHONE_RINGING, state_event

_RINGING = (CallState.NEW, CallState.DIALING, CallState.RINGING)


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


class CallViews:
    """Per session, the state each call was last shown in; per call, who saw it."""

    __slots__ = ("calls", "hold_parties", "viewers")

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, int]] = {}  # sid → call uniqueid → state last shown
        self.viewers: dict[str, set[str]] = {}  # call uniqueid → sids it was shown to
        self.hold_parties: dict[str, frozenset[str]] = {}  # held call uniqueid → the phones of its parties then

    def note_hold(self, call: Call) -> None:
        if call.state == CallState.HELD and not call.ended:
            # Who was in the call when it was put on hold: a phone that joins the
            # call while the caller still hears music (the consulted party of a
            # transfer that completes) did not hold it and is talking.
            self.hold_parties.setdefault(call.uniqueid, frozenset(self.holders(call)))
        else:
            self.hold_parties.pop(call.uniqueid, None)

    def forget(self, sid: str) -> None:
        for uid in self.calls.pop(sid, {}):
            viewers = self.viewers.get(uid)
            if viewers is not None:
                viewers.discard(sid)
                if not viewers:
                    del self.viewers[uid]

    def view(self, sid: str, call: Call, name: str, device: str) -> tuple[tuple[str, ...], int]:
        """Which events one phone's bar gets for this change, and the call's state as that phone sees it."""
        shown = self.calls.setdefault(sid, {})
        uid = call.uniqueid
        prev = shown.get(uid)
        legs = [leg for leg in call.legs.values() if leg.device == device and leg.ended is None]
        if call.ended or name == ev.EVENT_CALL_HANGUP or not legs:
            if prev is None:
                return (), int(call.state)
            del shown[uid]
            self.unview(uid, sid)
            return ("call.hangup",), int(call.state)
        leg = legs[-1]
        state = int(call.state)
        if leg.answered is None and call.state not in _RINGING:
            state = int(CallState.RINGING)  # my phone rings in a call that is connected elsewhere
        elif leg.answered is not None and device not in self.hold_parties.get(uid, self.holders(call)):
            if prev == CallState.HELD:
                state = prev  # I held the caller, who went to the one I consulted; my own leg ends next
            elif call.state == CallState.HELD:
                state = int(CallState.CONNECTED)  # consulted while the caller waits on hold: I am talking
        if state == CallState.SUSPENDED and prev is not None:
            state = prev  # passing through on the way to hold or back
        names: list[str] = []
        if prev is None:
            origin = call.legs.get(call.origin)
            if origin is not None and origin.device == device and call.direction != INCOMING:
                names.append(ev.EVENT_CALL_NEW)
        told = state_event(state, prev, held=prev == CallState.HELD, ringing=PHONE_RINGING)
        if told is not None:
            names.append(told)
        if name in (ev.EVENT_CALL_MUTE, ev.EVENT_CALL_UNMUTE, ev.EVENT_CALL_TRANSFER) and prev is not None:
            names.append(name)
        if not names:
            names.append(ev.EVENT_CALL_CHANGE)
        shown[uid] = state
        self.viewers.setdefault(uid, set()).add(sid)
        return tuple(names), state

    def unview(self, uid: str, sid: str) -> None:
        viewers = self.viewers.get(uid)
        if viewers is not None:
            viewers.discard(sid)
            if not viewers:
                del self.viewers[uid]

    @staticmethod
    def holders(call: Call) -> set[str]:
        """The phones of the call's two parties (the caller's and the connected one's):
        when the call is on hold, one of them holds it."""
        out = set()
        for leg in call.legs.values():
            if leg.uniqueid == call.origin or (call.connected_channel and leg.channel == call.connected_channel):
                out.add(leg.device)
        return out
