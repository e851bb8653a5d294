"""Who is on a call: the caller (its leg, number, name, the direction that
follows from its kind) and the party it talks to, with the numbers the way
the bar and the CDR show them.

The Asterisk side of that is messy (a trunk channel carries the caller's own
name, a click-to-dial rings the agent before the number is known, a trunk's
``s`` extension is no number); these functions hold those rules apart from
the tracker (``ucs.calls.tracker``), which calls them when a call's caller is
(re)decided or its connected party changes.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from ucs.calls.call import INCOMING, INTERNAL, OUTGOING, Call, Leg
from ucs.calls.journey import add_step
from ucs.calls.numbers import LINE, LOCAL, TRUNK, DeviceClassifier, NumberNormalizer
from ucs.pbx.model import Channel


def party_name(classify: DeviceClassifier, call: Call, ch: Channel) -> str:
    """The name of the party on ``ch``.  A channel Asterisk dialled out on a
    trunk carries the caller's own name (it is what the far end is shown),
    never the called party's: that one is unknown."""
    if classify(ch.device) == TRUNK and ch.uniqueid != call.origin and ch.caller_name == call.caller_name:
        return ""
    return ch.caller_name


def set_origin(
    call: Call, leg: Leg, ch: Channel, normalize: NumberNormalizer, originating: MutableMapping[str, str]
) -> None:
    """Make ``leg`` (on ``ch``) ``call``'s caller, and start its step in the
    journey.  ``originating``: device → the number UCS asked it to call
    (click-to-dial); the entry is used up here."""
    call.origin = leg.uniqueid
    call.caller_channel = ch.name
    call.caller_number = ch.caller_num
    call.caller_name = ch.caller_name
    call.caller_type = leg.kind if leg.kind != LOCAL else ""
    call.caller_internal = leg.kind == LINE
    call.caller_number_norm = "" if call.caller_internal else normalize(ch.caller_num)
    if leg.kind == TRUNK:
        call.direction = INCOMING
        call.called_number = ch.exten if ch.exten not in ("s", "") else call.called_number
        call.called_number_norm = normalize(call.called_number)
        desc = f"Incoming call from {ch.caller_num or 'anonymous'}"
        if call.called_number:
            desc += f" to {call.called_number}"
    elif leg.kind == LINE:
        if any(l.kind == TRUNK for l in call.legs.values() if l is not leg):
            call.direction = OUTGOING
        else:
            call.direction = INTERNAL
        number = originating.pop(ch.device, None) if ch.uniqueid == ch.linkedid else None
        if number:
            call.called_number = number
            call.called_number_norm = normalize(number)
            digits = sum(c.isdigit() for c in number)
            if call.called_number_norm or digits >= normalize.min_length:
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
    leg.step = add_step(call, ch.device, leg.kind, desc, leg.created)


def set_connected(call: Call, leg: Leg, far: Channel, classify: DeviceClassifier, normalize: NumberNormalizer) -> None:
    """The caller now talks to ``far`` (``leg`` of ``call``): it becomes the
    connected party, and an outgoing call's number is the one it answered with
    when none was dialled."""
    call.connected_channel = far.name
    call.connected_number = far.caller_num
    call.connected_name = party_name(classify, call, far)
    call.connected_type = leg.kind
    call.connected_internal = leg.kind == LINE
    call.connected_number_norm = "" if leg.kind == LINE else normalize(far.caller_num)
    if call.direction == OUTGOING and leg.kind == TRUNK and not call.called_number:
        call.called_number = far.caller_num
        call.called_number_norm = normalize(far.caller_num)
    if leg.step is not None and not leg.step.description.endswith("answered"):
        leg.step.description += ", answered"
