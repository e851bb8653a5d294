"""What UCS is doing with the call on one line: hold and transfer, as a table.

chan_sip has no AMI hold, so UCS holds a call itself (the customer is
redirected to music on hold, the agent's channel to a silent wait) and must
remember which two channels it parted; an attended transfer is remembered the
same way.  One :class:`LineOp` per line that is not simply talking; the whole
machine is :data:`TRANSITIONS`::

    idle     --hold-->      held            held      --unhold-->  idle
    idle     --park-->      parked          parked    --unhold-->  idle
    held     --park-->      parked          (transfer() without a number)
    idle|held|parked --consult--> consulting  (transfer(number); dial() when parked)
    consulting --finish--> idle             consulting --abort--> idle
    idle|held|parked --blind--> idle        any --gone--> idle
    consulting --swap--> swapped            swapped --swap--> consulting
    consulting|swapped --conference--> conference
    swapped --finish--> idle                swapped --abort--> idle
    conference --leave--> idle

``swapped`` is Asterisk's *double-checking*: during the consultation the
agent went back to the caller (``atxferswap``) while the consulted party
waits on hold; ``conference`` is the three-way call ``atxferthreeway`` makes
of the two (the transfer is over: the agent talks with both, and leaves by
hanging up).

``parked`` is seed 002's *transfer mode*: the call is on hold waiting for the
number to transfer to.  An input missing from the table is refused with the
message of :data:`REFUSALS` before anything is sent to Asterisk.
"""

from __future__ import annotations

import attrs

from ucs.error import InvalidState

IDLE, HELD, PARKED, CONSULTING = "idle", "held", "parked", "consulting"
SWAPPED, CONFERENCE = "swapped", "conference"

TRANSITIONS: dict[tuple[str, str], str] = {
    (IDLE, "hold"): HELD,
    (IDLE, "park"): PARKED,
    (HELD, "park"): PARKED,
    (HELD, "unhold"): IDLE,
    (PARKED, "unhold"): IDLE,
    (IDLE, "consult"): CONSULTING,
    (HELD, "consult"): CONSULTING,
    (PARKED, "consult"): CONSULTING,
    (CONSULTING, "finish"): IDLE,
    (CONSULTING, "abort"): IDLE,
    (IDLE, "blind"): IDLE,
    (HELD, "blind"): IDLE,
    (PARKED, "blind"): IDLE,
    (IDLE, "gone"): IDLE,
    (HELD, "gone"): IDLE,
    (PARKED, "gone"): IDLE,
    (CONSULTING, "gone"): IDLE,
    (CONSULTING, "swap"): SWAPPED,
    (SWAPPED, "swap"): CONSULTING,
    (CONSULTING, "conference"): CONFERENCE,
    (SWAPPED, "conference"): CONFERENCE,
    (SWAPPED, "finish"): IDLE,
    (SWAPPED, "abort"): IDLE,
    (SWAPPED, "gone"): IDLE,
    (CONFERENCE, "leave"): IDLE,
    (CONFERENCE, "gone"): IDLE,
}

_BUSY_TRANSFER = "a transfer is in progress on {device}: finish it (finishTransfer) or hang up the consultation call first"

_NO_CONSULT = ("there is no consultation on {device}: swap and conference work while a transfer is in "
               "progress; start one with transfer(number)")
_IN_CONFERENCE = ("the call on {device} is a three-way conference: the transfer is over; hang up to leave "
                  "the other two talking")

#: Why an input is refused in a state; ``{device}`` is the line's device.
REFUSALS: dict[tuple[str, str], str] = {
    (HELD, "hold"): "the call on {device} is already on hold",
    (PARKED, "hold"): "the call on {device} is already on hold (in transfer mode)",
    (CONSULTING, "hold"): _BUSY_TRANSFER,
    (IDLE, "unhold"): "the call on {device} is not on hold",
    (CONSULTING, "unhold"): _BUSY_TRANSFER,
    (PARKED, "park"): "the call on {device} is already in transfer mode: dial the number to transfer to",
    (CONSULTING, "park"): _BUSY_TRANSFER,
    (CONSULTING, "consult"): _BUSY_TRANSFER,
    (CONSULTING, "blind"): _BUSY_TRANSFER,
    (IDLE, "finish"): "there is no transfer in progress on {device}: start one with transfer(number), "
    "or transfer() and then dial(number)",
    (HELD, "finish"): "there is no transfer in progress on {device}: the call is on hold; "
    "start a transfer with transfer(number)",
    (PARKED, "finish"): "there is no consultation call on {device} yet: dial the number to transfer to first",
    (SWAPPED, "hold"): _BUSY_TRANSFER,
    (SWAPPED, "unhold"): _BUSY_TRANSFER,
    (SWAPPED, "park"): _BUSY_TRANSFER,
    (SWAPPED, "consult"): _BUSY_TRANSFER,
    (SWAPPED, "blind"): _BUSY_TRANSFER,
    **{(s, i): _NO_CONSULT for s in (IDLE, HELD, PARKED) for i in ("swap", "conference")},
    **{(CONFERENCE, i): _IN_CONFERENCE for i in ("hold", "unhold", "park", "consult", "blind", "finish", "swap", "conference")},
}


@attrs.define(eq=False)
class LineOp:
    """A line whose call UCS holds or transfers."""

    device: str
    state: str
    #: The agent's channel (Uniqueid) and the other party's.
    agent: str
    party: str
    #: The call (its Linkedid).
    call: str
    number: str = ""
    #: The consultation's bridge, while the agent is back with the caller (swapped).
    target_bridge: str = ""

    def move(self, input: str) -> str:
        """Apply ``input``; :class:`InvalidState` (nothing changed) when the table has no such move."""
        self.state = next_state(self.device, self.state, input)
        return self.state


def next_state(device: str, state: str, input: str) -> str:
    try:
        return TRANSITIONS[(state, input)]
    except KeyError:
        why = REFUSALS.get((state, input), f"{input} is not possible while the call on {{device}} is {state}")
        raise InvalidState(why.format(device=device)) from None
