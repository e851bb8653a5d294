"""Transfers: the record of each completed one, and whom an agent consults
before an attended one while the caller waits.

Asterisk tells a transfer by channel names, and a consultation only shows in
the bridges; both are read here against the tracker's calls, which these pure
functions are handed, so that the tracker keeps only the bookkeeping of which
call a fact belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ucs.ami.message import Message
from ucs.calls.call import Call, Leg
from ucs.calls.numbers import LOCAL
from ucs.calls.topology import far_end
from ucs.pbx.model import Channel
from ucs.pbx.pbx import PBX, SecondsClock


def _cid(value: str | None) -> str:
    return "" if not value or value in ("<unknown>", "unknown") else value


def record_transfer(
    pbx: PBX, leg_call: Mapping[str, Call], kind: str, msg: Message, clock: SecondsClock
) -> Call | None:
    """Mark the transferring legs and add the transfer to ``call.transfers``
    (``kind`` is ``"blind"`` or ``"attended"``, ``msg`` the raw event).  The
    call it changed, or ``None`` when the transfer failed or is none of
    the calls in ``leg_call`` (leg Uniqueid → call)."""
    if msg.get("Result", "Success") != "Success":
        return None
    threeway = kind == "attended" and msg.get("DestType") == "Threeway"
    names = (
        [msg.get("TransfererChannel", "")] if kind == "blind"
        else [msg.get("OrigTransfererChannel", ""), msg.get("SecondTransfererChannel", "")]
    )
    call: Call | None = None
    source: Leg | None = None
    for name in dict.fromkeys(n for n in names if n):  # the same channel may be both transferers
        ch = pbx.channel_by_name(name)
        found = leg_call.get(ch.uniqueid) if ch is not None else None
        if found is None or ch is None:
            continue
        call = found
        leg = found.legs[ch.uniqueid]
        if leg.uniqueid != found.origin and not threeway:  # a conference: the transferer stays
            leg.transferred = True
        source = source or leg
    if call is None or source is None:
        return None
    if kind == "blind":
        target = msg.get("Extension", "")
    else:
        target = _cid(msg.get("TransfereeConnectedLineNum")) or _cid(msg.get("SecondTransfererConnectedLineNum"))
        target = target or call.connected_number
    if threeway:
        target = _cid(msg.get("TransferTargetCallerIDNum")) or target
    call.transfers.append({"kind": "conference" if threeway else kind, "from": source.device, "to": target,
                           "at": clock.seconds()})
    return call


def consult_of(pbx: PBX, call: Call, talks_to: Channel | None) -> dict[str, Any] | None:
    """Whom the agent consults while the caller waits (an attended transfer),
    for ``call.consult``: the caller is not talking to the connected agent
    (``talks_to``: whom it does talk to), and the agent's phone rings or talks
    to someone else."""
    consult = None
    agent = pbx.channel_by_name(call.connected_channel) if call.connected_channel else None
    origin = pbx.channels.get(call.origin)
    if agent is not None and origin is not None and talks_to is not agent:
        far = far_end(pbx, agent, {call.origin})
        if far is not None:
            consult = {"state": "connected", "number": far.caller_num, "name": far.caller_name,
                       "channel": far.name}
        else:
            ringing = [
                l for l in call.legs.values()
                if l.kind != LOCAL and l.answered is None and l.ended is None
                and l.uniqueid not in (call.origin, agent.uniqueid)
            ]
            if ringing:
                consult = {"state": "ringing", "number": ringing[-1].number, "name": ringing[-1].name,
                           "channel": ringing[-1].channel}
    return consult
