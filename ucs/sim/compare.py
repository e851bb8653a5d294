"""Hold AMI output to a capture: what must match, what may differ.

Two runs of the same scenario on a real Asterisk differ in identifiers
(channel numbers, Uniqueids, bridge UUIDs), timings, dialplan noise and the
interleaving of independent things (a device state event and the channel event
next to it).  :func:`significant` keeps what a CTI server relies on and names
it without identifiers; :func:`diff` compares two runs stream by stream (per
channel, per queue member, per bridge, per device...), so that only the order
within each stream counts.  Comparing the two real captures of the same call
(``queue_answered_caller_hangup`` and ``filtered_events``) gives no
difference.

Used by the simulator's tests and by anyone who wants to hold another AMI
source (``ucs-replay`` output of the simulator, a customer's log) to a capture.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

Message = Mapping[str, str]
Record = tuple[str, ...]

#: Events left out of the comparison: dialplan noise, media reports,
#: security reports, caller-id updates whose position races with others.
NOISE = frozenset(
    {
        "VarSet",
        "Newexten",
        "RTCPSent",
        "RTCPReceived",
        "DTMFBegin",
        "DTMFEnd",
        "SuccessfulAuth",
        "ChallengeSent",
        "RequestBadFormat",
        "InvalidPassword",
        "InvalidAccountID",
        "ChallengeResponseFailed",
        "NewConnectedLine",
        "NewCallerid",
        "LocalBridge",
    }
)

AGENT_EVENTS = frozenset({"AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer"})
MEMBER_EVENTS = frozenset({"QueueMemberAdded", "QueueMemberRemoved", "QueueMemberStatus", "QueueMemberPause"})

_SUFFIX = re.compile(r"^(.*)-([0-9a-f]{8})(;[12])?$")


def load_capture(path: str | Path) -> list[dict[str, str]]:
    """The messages of a raw ``.ami`` capture, parsed as UCS parses AMI."""
    from ucs.ami.message import AMIParser

    return AMIParser().feed(Path(path).read_bytes())


def load_actions(path: str | Path) -> list[list[tuple[str, str]]]:
    """The actions of a ``.actions`` file, each a list of (header, value)."""
    text = Path(path).read_bytes().decode("utf-8").replace("\r\n", "\n")
    out = []
    for block in text.split("\n\n"):
        pairs = []
        for line in block.split("\n"):
            k, sep, v = line.partition(": ")
            if sep:
                pairs.append((k, v))
        if pairs:
            out.append(pairs)
    return out


class Names:
    """Identifier-free names: ``SIP/1001#2`` is the second SIP/1001 channel."""

    def __init__(self) -> None:
        self._chan: dict[str, str] = {}
        self._count: dict[str, int] = {}
        self._local_inst: dict[str, str] = {}
        self._uid: dict[str, str] = {}
        self._bridge: dict[str, str] = {}

    def channel(self, name: str | None) -> str:
        if not name:
            return ""
        key = self._chan.get(name)
        if key is not None:
            return key
        m = _SUFFIX.match(name)
        if m is None:
            return name
        base, inst, half = m.group(1), m.group(2), m.group(3) or ""
        if half:
            ikey = f"{base}-{inst}"
            ordinal = self._local_inst.get(ikey)
            if ordinal is None:
                n = self._count[base + ";"] = self._count.get(base + ";", 0) + 1
                ordinal = self._local_inst[ikey] = str(n)
            key = f"{base}{half}#{ordinal}"
        else:
            n = self._count[base] = self._count.get(base, 0) + 1
            key = f"{base}#{n}"
        self._chan[name] = key
        return key

    def uniqueid(self, uid: str | None, channel: str | None = None) -> str:
        if not uid:
            return ""
        if uid not in self._uid and channel:
            self._uid[uid] = self.channel(channel)
        return self._uid.get(uid, "?")

    def bridge(self, bid: str | None) -> str:
        if not bid:
            return ""
        key = self._bridge.get(bid)
        if key is None:
            key = self._bridge[bid] = f"bridge#{len(self._bridge) + 1}"
        return key


def significant(messages: Iterable[Message], names: Names | None = None) -> list[tuple[str, Record]]:
    """The events that matter, in order, as (stream, record) without identifiers."""
    n = names or Names()
    out: list[tuple[str, Record]] = []
    for m in messages:
        ev = m.get("Event")
        if ev is None or ev in NOISE or "Privilege" not in m:
            continue
        chan = m.get("Channel")
        if chan and m.get("Uniqueid"):
            n.uniqueid(m.get("Uniqueid"), chan)
        if m.get("DestChannel") and m.get("DestUniqueid"):
            n.uniqueid(m.get("DestUniqueid"), m.get("DestChannel"))
        c = n.channel(chan)
        if ev in AGENT_EVENTS:
            out.append((f"agent:{m.get('Queue')}:{m.get('Interface')}", (ev, c, m.get("Reason", ""))))
        elif ev in MEMBER_EVENTS:
            rec: Record = (ev, m.get("Status", ""), m.get("Paused", ""), m.get("PausedReason", ""), m.get("CallsTaken", ""))
            out.append((f"member:{m.get('Queue')}:{m.get('Interface')}", rec))
        elif ev == "DeviceStateChange":
            out.append((f"dev:{m.get('Device')}", (ev, m.get("State", ""))))
        elif ev in ("BridgeCreate", "BridgeDestroy"):
            out.append((f"bridge:{n.bridge(m.get('BridgeUniqueid'))}", (ev,)))
        elif ev in ("BridgeEnter", "BridgeLeave"):
            b = n.bridge(m.get("BridgeUniqueid"))
            out.append((f"bridge:{b}", (ev, c)))
            out.append((f"chan:{c}", (ev, m.get("ChannelStateDesc", ""), b)))
        elif ev == "BridgeMerge":
            out.append((f"bridge:{n.bridge(m.get('ToBridgeUniqueid'))}", (ev, n.bridge(m.get("FromBridgeUniqueid")))))
        elif ev in ("AttendedTransfer", "BlindTransfer"):
            transferer = m.get("OrigTransfererChannel") or m.get("TransfererChannel")
            out.append(("transfer", (ev, m.get("Result", ""), n.channel(transferer), n.channel(m.get("TransfereeChannel")))))
        elif ev == "OriginateResponse":
            ch = m.get("Channel", "")
            key = n.channel(ch) if _SUFFIX.match(ch) else ch
            out.append((f"originate:{m.get('ActionID', '')}", (ev, m.get("Response", ""), m.get("Reason", ""), key)))
        elif ev == "PeerStatus":
            out.append((f"peer:{m.get('Peer')}", (ev, m.get("PeerStatus", ""), m.get("Address", ""), m.get("Cause", ""))))
        elif ev in ("DialBegin", "DialState", "DialEnd"):
            dest = n.channel(m.get("DestChannel"))
            owner = c or dest
            out.append((f"chan:{owner}", (ev, dest, m.get("DialStatus", ""))))
        elif chan:
            rec = (ev, m.get("ChannelStateDesc", ""))
            if ev == "Newchannel":
                rec += (m.get("Context", ""), n.uniqueid(m.get("Linkedid")))
            elif ev in ("Hangup", "SoftHangupRequest"):
                rec += (m.get("Cause", ""),)
            elif ev.startswith("QueueCaller"):
                rec += (m.get("Queue", ""),)
            out.append((f"chan:{c}", rec))
        else:
            out.append(("system", (ev,)))
    return out


def streams(sig: Iterable[tuple[str, Record]]) -> dict[str, list[Record]]:
    """Group significant records by stream; repeated device states collapse."""
    out: dict[str, list[Record]] = {}
    for stream, rec in sig:
        lst = out.setdefault(stream, [])
        if stream.startswith("dev:") and lst and lst[-1] == rec:
            continue
        lst.append(rec)
    return out


def _device_lenient(recs: list[Record]) -> list[Record]:
    # A device's first state announcement depends on what Asterisk had cached
    # before the scenario began; it is not part of the scenario.
    if recs and recs[0][-1] == "NOT_INUSE":
        return recs[1:]
    return recs


_AVAIL = re.compile(r"^dev:Queue:.*_avail$")


def _last_leaves_unordered(recs: list[Record]) -> list[Record]:
    # When an action pulls every party out of a bridge at once (Redirect of
    # both, BlindTransfer), each leaves from its own thread: hold_redirect_bridge
    # has the customer leave first and sip_hold_redirect_bridge the agent, and
    # blind_transfer_action / sip_blind_transfer_action the other way round.
    # The leaves that end a bridge are compared as a set; who hung up a call
    # still shows in each channel's stream (HangupRequest before BridgeLeave).
    out = list(recs)
    i = 0
    while i < len(out):
        if out[i][0] == "BridgeLeave":
            j = i
            while j < len(out) and out[j][0] == "BridgeLeave":
                j += 1
            if j < len(out) and out[j][0] == "BridgeDestroy":
                out[i:j] = sorted(out[i:j])
            i = j
        else:
            i += 1
    return out


def diff(actual: Iterable[Message], expected: Iterable[Message], *, ignore: Iterable[str] = ()) -> list[str]:
    """The differences in significant events between two runs; empty if none.

    ``ignore``: stream name prefixes to leave out (``"dev:SIP/carrier"``).
    """
    a = streams(significant(actual))
    e = streams(significant(expected))
    skip = tuple(ignore)
    problems = []
    for stream in sorted(set(a) | set(e)):
        if skip and stream.startswith(skip):
            continue
        # A queue's "<queue>_avail" pseudo-device is announced only when
        # app_queue finds its cached value stale, which depends on what ran
        # before: the same flow recorded twice (sip_ and
        # pj_queue_answered_agent_hangs_up) shows it change four times in one
        # run and never in the other.  Nothing in UCS reads it.
        if _AVAIL.match(stream):
            continue
        got, want = a.get(stream, []), e.get(stream, [])
        if stream.startswith("dev:"):
            got, want = _device_lenient(got), _device_lenient(want)
        elif stream.startswith("bridge:"):
            got, want = _last_leaves_unordered(got), _last_leaves_unordered(want)
        if got != want:
            problems.append(f"{stream}:\n  got:      {got}\n  expected: {want}")
    return problems


def responses(messages: Iterable[Message], names: Names | None = None) -> dict[str, Record]:
    """Per ActionID: (Response, Message) followed by the events of its list.

    A list event is summarised by its name and the fields that identify what
    it lists (queue, member, pause state, channel), without identifiers.
    """
    msgs = list(messages)
    n = names or Names()
    significant(msgs, n)  # name channels in order of appearance, as diff does
    out: dict[str, list[str]] = {}
    for m in msgs:
        aid = m.get("ActionID")
        if aid is None:
            continue
        if "Response" in m and "Event" not in m:
            out[aid] = [m["Response"], m.get("Message", "")]
        elif "Event" in m and "Privilege" not in m and aid in out:
            ev = m["Event"]
            parts = [ev]
            for k in ("Queue", "Location", "Paused", "PausedReason", "Device", "ObjectName", "Dynamic"):
                if k in m:
                    parts.append(f"{k}={m[k]}")
            if "Channel" in m:
                parts.append("Channel=" + n.channel(m["Channel"]))
            if ev.endswith("Complete"):
                parts.append(f"ListItems={m.get('ListItems')}")
            out[aid].append(" ".join(parts))
    return {k: tuple(v) for k, v in out.items()}
