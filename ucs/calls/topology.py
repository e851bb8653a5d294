"""Who talks to whom: the PBX model's bridges read through Local channel pairs.

A call's people are joined by bridges, but a Local channel pair (``…;1`` and
``…;2``, queues, follow-me) is plumbing between them: both the tracker (whom
the caller talks to, the state, an attended transfer's consultation) and the
hang-up reasoning (which side left first) look through such pairs.  Pure
functions of the model, here once instead of a method each of them reaches
through the tracker for.
"""

from __future__ import annotations

from ucs.pbx.model import Channel
from ucs.pbx.pbx import PBX


def local_partner_name(name: str) -> str:
    """The name of the other half of the Local channel called ``name``."""
    return name[:-1] + ("2" if name.endswith("1") else "1")


def far_end(pbx: PBX, ch: Channel, seen: set[str], path: list[Channel] | None = None) -> Channel | None:
    """The line or trunk ``ch`` is talking to, looking through Local channel
    pairs; ``path`` collects the Local channels on the way."""
    seen.add(ch.uniqueid)
    bridge = pbx.bridges.get(ch.bridge or "")
    if bridge is None:
        return None
    for uid in bridge.channels:
        if uid in seen:
            continue
        other = pbx.channels.get(uid)
        if other is None:
            continue
        if not other.is_local:
            return other
        name = other.name
        # local_partner_name(name), inline: this runs for every change of every call
        partner = pbx.channel_by_name(name[:-1] + ("2" if name.endswith("1") else "1"))
        if partner is not None and partner.uniqueid not in seen:
            seen.add(other.uniqueid)
            found = far_end(pbx, partner, seen, path)
            if found is not None:
                if path is not None:
                    path.extend((other, partner))
                return found
    return None


def talk_together(pbx: PBX, ch: Channel, other: str) -> bool:
    """Whether ``ch`` talks with the channel whose Uniqueid is ``other``: both in
    one bridge, or in bridges joined by Local channel pairs.  Unlike
    :func:`far_end` this sees every party of a bridge (a three-way conference),
    not only the first; a bridge on hold for a consultation is nobody's party."""
    seen = {ch.uniqueid}
    todo = [ch]
    while todo:
        bridge = pbx.bridges.get(todo.pop().bridge or "")
        if bridge is None:
            continue
        for uid in bridge.channels:
            if uid == other:
                return True
            if uid in seen:
                continue
            seen.add(uid)
            peer = pbx.channels.get(uid)
            if peer is None or not peer.is_local:
                continue
            partner = pbx.channel_by_name(local_partner_name(peer.name))
            if partner is not None and partner.uniqueid not in seen:
                seen.add(partner.uniqueid)
                todo.append(partner)
    return False
