"""What each agent bar was shown of each call, and how a call looks from one phone.

A call is seen from each phone's side: ringing for the phone that rings in a call
connected elsewhere, talking for the party consulted while the caller is on hold,
a hang-up (with its own cause) for the phone that left a call that goes on.
:class:`CallViews` remembers the state each session (by sid) was last shown of
each call, so that each change becomes the events that session has not had yet;
the :class:`~ucs.web.hub.Hub` finds the connections and sends them.
"""

from __future__ import annotations

from ucs import events as ev
from ucs.calls.call import INCOMING, Call, CallState
# The phone's view is one rule, shared with ``state`` (ucs.api.state): ucs.calls.view.
from ucs.calls.view import PHONE_RINGING, my_end, my_number, my_times, phone_state, state_event

__all__ = ["CallViews", "my_end", "my_number", "my_times"]


class CallViews:
    """Per session, the state each call was last shown in; per call, who saw it."""

    __slots__ = ("calls", "viewers")

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, int]] = {}  # sid → call uniqueid → state last shown
        self.viewers: dict[str, set[str]] = {}  # call uniqueid → sids it was shown to

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
        state = phone_state(call, device, prev)
        if state is None or name == ev.EVENT_CALL_HANGUP:
            if prev is None:
                return (), int(call.state)
            del shown[uid]
            self.unview(uid, sid)
            return ("call.hangup",), int(call.state)
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

    def shown(self, sid: str, uid: str, state: int) -> None:
        """The session was shown the call another way (a ``state`` answer): its later changes,
        its hang-up above all, are this session's too -- a bar that resumed on another node, or
        reloaded, knows its calls from ``state`` alone (issue 20: a call that ended while no
        node held the AMI link stayed on such bars)."""
        self.calls.setdefault(sid, {})[uid] = state
        self.viewers.setdefault(uid, set()).add(sid)

    def unview(self, uid: str, sid: str) -> None:
        viewers = self.viewers.get(uid)
        if viewers is not None:
            viewers.discard(sid)
            if not viewers:
                del self.viewers[uid]
