"""The PBX model fed with real Asterisk 20 captures, and rebuilt by resync."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ucs.ami.message import AMIParser, Message
from ucs.calls.call import Call
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.pbx.observer import PBXObserver
from ucs.pbx.pbx import PBX, Snapshot
from ucs.pbx.wireclock import WireClock

CAPTURES = Path(__file__).resolve().parent / "data" / "ami-captures"


def messages(name: str) -> list[Message]:
    return AMIParser().feed((CAPTURES / f"{name}.ami").read_bytes())


class Recorder(PBXObserver, CallObserver):
    def __init__(self) -> None:
        self.members: list[tuple[str, str, bool, str]] = []
        self.ended: list[Call] = []

    def member_changed(self, member, previous) -> None:  # type: ignore[no-untyped-def]
        self.members.append((member.queue, member.interface, member.paused, member.paused_reason))

    def call_ended(self, call: Call) -> None:
        self.ended.append(call)


def build() -> tuple[PBX, CallTracker, WireClock, Recorder]:
    clock = WireClock()
    rec = Recorder()
    pbx = PBX(clock, [rec])
    tracker = CallTracker(pbx, clock, observers=[rec])
    pbx.observers.append(tracker)
    return pbx, tracker, clock, rec


def feed(pbx: PBX, clock: WireClock, msgs: list[Message]) -> None:
    for m in msgs:
        clock.observe(m)
        pbx.feed(m)


def test_phone_registers_with_address_then_unregisters() -> None:
    pbx, _, clock, rec = build()
    msgs = messages("phone_registers_and_pauses")
    registered = next(i for i, m in enumerate(msgs) if m.get("PeerStatus") == "Registered")
    feed(pbx, clock, msgs[: registered + 1])
    phone = pbx.devices["SIP/1004"]
    assert (phone.registration, phone.address, phone.port) == ("Registered", "127.0.0.14", 5064)
    feed(pbx, clock, msgs[registered + 1:])
    assert pbx.devices["SIP/1004"].registration == "Unregistered"
    assert pbx.devices["SIP/1004"].address is None
    assert pbx.devices["SIP/1004"].state == "UNAVAILABLE"
    # paused in every queue with Coffee, then unpaused in sales only
    assert ("support", "SIP/1002", True, "Coffee") in rec.members
    assert ("sales", "SIP/1002", True, "Coffee") in rec.members
    assert rec.members[-1] == ("sales", "SIP/1002", False, "")
    assert not pbx.queues["support"].members  # QueueRemove at the end


def test_paused_member_with_reason_then_unpaused() -> None:
    pbx, _, clock, rec = build()
    msgs = messages("queue_paused_aux_then_ready")
    added = next(i for i, m in enumerate(msgs) if m.get("Event") == "QueueMemberAdded")
    feed(pbx, clock, msgs[: added + 1])
    member = pbx.queues["support"].members["SIP/1002"]
    assert member.paused and member.paused_reason == "Lunch"
    feed(pbx, clock, msgs[added + 1:])
    assert ("support", "SIP/1002", False, "") in rec.members


def test_caller_waiting_then_gone() -> None:
    pbx, _, clock, _ = build()
    msgs = messages("caller_abandons")
    joined = next(i for i, m in enumerate(msgs) if m.get("Event") == "QueueCallerJoin")
    feed(pbx, clock, msgs[: joined + 1])
    (caller,) = pbx.queues["support"].callers.values()
    assert caller.caller_num == "420777123456" and caller.position == 1
    feed(pbx, clock, msgs[joined + 1:])
    assert not pbx.queues["support"].callers
    assert pbx.queues["support"].abandoned == 1
    assert not pbx.channels and not pbx.bridges


def test_every_capture_leaves_no_phantoms() -> None:
    for path in sorted(CAPTURES.glob("*.ami")):
        if path.name == "load_mixed.ami":
            continue
        pbx, tracker, clock, _ = build()
        feed(pbx, clock, AMIParser().feed(path.read_bytes()))
        assert not pbx.channels, path.name
        assert not tracker.active_calls(), path.name
        assert not pbx.bridges, path.name


def test_heard_channels_index_matches_a_scan_after_every_event() -> None:
    """The per-linkedid count that spares a hangup a scan of every channel
    (PBX._end_phantoms) equals the scan after every event: phantoms heard from
    (FreePBX's filtered follow-me log ends three unheard ones) and Asterisk 11
    relinks included."""
    paths = [p for p in sorted(CAPTURES.glob("*.ami")) if p.name != "load_mixed.ami"]
    paths += sorted((CAPTURES.parent / "foreign-ami").glob("*.ami"))
    paths.append(CAPTURES.parent / "asterisk11_queue_call.ami")
    never_heard: list[str] = []

    class Unheard(PBXObserver):
        def channel_hungup(self, ch, cause, cause_txt) -> None:  # type: ignore[no-untyped-def]
            if cause_txt == "never heard from":
                never_heard.append(ch.uniqueid)

    for path in paths:
        pbx, _, clock, _ = build()
        pbx.observers.append(Unheard())
        for m in AMIParser().feed(path.read_bytes()):
            clock.observe(m)
            pbx.feed(m)
            scan = Counter(c.linkedid for c in pbx.channels.values() if not c.phantom)
            assert pbx._heard_in == dict(scan), (path.name, m)
    assert len(never_heard) == 3


def test_phantoms_outlive_the_caller_while_a_heard_channel_of_the_call_is_up() -> None:
    """A filtered log: A dials B and C, known only from A's DialBegin (phantoms).
    B then speaks for itself; when A hangs up, C stays while B is up, and is
    ended ("never heard from") when B hangs up."""
    pbx, _, clock, _ = build()
    ended: list[tuple[str, str]] = []

    class Hungup(PBXObserver):
        def channel_hungup(self, ch, cause, cause_txt) -> None:  # type: ignore[no-untyped-def]
            ended.append((ch.name, cause_txt))

    pbx.observers.append(Hungup())

    def dial(dest: str, uid: str) -> Message:
        return {"Event": "DialBegin", "Channel": "SIP/a-1", "Uniqueid": "1.1", "Linkedid": "1.1",
                "DestChannel": dest, "DestUniqueid": uid, "DestLinkedid": "1.1"}

    feed(pbx, clock, [
        {"Event": "Newchannel", "Channel": "SIP/a-1", "Uniqueid": "1.1", "Linkedid": "1.1", "ChannelState": "4"},
        dial("SIP/b-2", "1.2"),
        dial("SIP/c-3", "1.3"),
        {"Event": "Newstate", "Channel": "SIP/b-2", "Uniqueid": "1.2", "Linkedid": "1.1", "ChannelState": "6"},
        {"Event": "Hangup", "Channel": "SIP/a-1", "Uniqueid": "1.1", "Linkedid": "1.1", "Cause": "16"},
    ])
    assert ended == [("SIP/a-1", "")] and set(pbx.channels) == {"1.2", "1.3"}
    feed(pbx, clock, [{"Event": "Hangup", "Channel": "SIP/b-2", "Uniqueid": "1.2", "Linkedid": "1.1", "Cause": "16"}])
    assert ended[1:] == [("SIP/b-2", ""), ("SIP/c-3", "never heard from")]
    assert not pbx.channels and not pbx._heard_in


def test_hold_by_redirect_and_mute_are_seen() -> None:
    pbx, tracker, clock, _ = build()
    msgs = messages("hold_redirect_bridge")
    redirect = next(i for i, m in enumerate(msgs) if m.get("Message") == "Dual Redirect successful")
    moh = next(i for i, m in enumerate(msgs) if i > redirect and m.get("Event") == "MusicOnHoldStart")
    feed(pbx, clock, msgs[: moh + 1])
    (call,) = tracker.active_calls()
    assert int(call.state) == 5  # held
    bridged = next(i for i, m in enumerate(msgs) if m.get("Message") == "Channels have been bridged")
    enters = [i for i, m in enumerate(msgs) if i > bridged and m.get("Event") == "BridgeEnter"]
    stop = next(i for i, m in enumerate(msgs) if i > bridged and m.get("Event") == "MusicOnHoldStop")
    feed(pbx, clock, msgs[moh + 1: max(enters[1], stop) + 1])
    assert int(call.state) == 3  # talking again
    agent = next(ch for ch in pbx.channels.values() if ch.device == "SIP/1001")
    pbx.set_muted(agent.name, "in", True)
    assert call.connected_muted


def _list(msgs: list[Message], action_id: str) -> list[Message]:
    return [m for m in msgs if m.get("ActionID") == action_id and "Event" in m and m.get("EventList") != "Complete"]


def test_resync_rebuilds_from_snapshot_without_phantoms() -> None:
    """Connected mid-way: state is built from the lists; then a phantom is dropped."""
    msgs = messages("resync_snapshot")
    pbx, tracker, clock, rec = build()
    clock.observe({"Timestamp": "1795444861"})
    snap = Snapshot(
        channels=_list(msgs, "lab-17"), queues=_list(msgs, "lab-16"),
        device_states=_list(msgs, "lab-13"), sip_peers=_list(msgs, "lab-10"), pjsip_endpoints=None,
    )
    # a phantom channel of a call that ended while we were away
    pbx.feed({"Event": "Newchannel", "Channel": "SIP/1003-000000aa", "Uniqueid": "1795444000.1",
              "Linkedid": "1795444000.1", "ChannelState": "6", "CallerIDNum": "1003"})
    pbx.resync(snap)
    assert "1795444000.1" not in pbx.channels
    (phantom,) = rec.ended
    assert int(phantom.cause) == 0
    assert len(pbx.channels) == 3
    support = pbx.queues["support"]
    assert support.members["SIP/1001"].paused_reason == "Busy elsewhere"
    assert support.members["SIP/1002"].paused_reason == "Training"
    assert set(pbx.queues["sales"].members) == {"SIP/1002"}
    assert [c.caller_num for c in support.callers.values()] == ["420777123456"]
    assert pbx.devices["SIP/1001"].address == "127.0.0.11"
    calls = tracker.active_calls()
    assert len(calls) == 2
    answered = next(c for c in calls if c.connected is not None)
    assert answered.connected_number == "1001"
    # resync again with the same snapshot: nothing changes, nothing ends
    pbx.resync(snap)
    assert len(rec.ended) == 1 and len(tracker.active_calls()) == 2


def test_shutdown_ends_calls_and_forgets_members() -> None:
    pbx, tracker, clock, rec = build()
    msgs = messages("asterisk_restart")
    bridged = [i for i, m in enumerate(msgs) if m.get("Event") == "BridgeEnter"][-1]
    feed(pbx, clock, msgs[: bridged + 1])
    assert tracker.active_calls()
    pbx.feed({"Event": "Shutdown", "Shutdown": "Cleanly", "Restart": "True"})
    assert not pbx.channels and not tracker.active_calls()
    assert int(rec.ended[0].cause) == 0
    assert not pbx.queues["support"].members


def _show_channel(pbx: PBX, uid: str) -> Message:
    """What ``CoreShowChannels`` lists for one of the model's channels."""
    ch = pbx.channels[uid]
    return {"Event": "CoreShowChannel", "Channel": ch.name, "Uniqueid": ch.uniqueid, "Linkedid": ch.linkedid,
            "ChannelState": str(ch.state), "CallerIDNum": ch.caller_num, "CallerIDName": ch.caller_name,
            "BridgeId": ch.bridge or "", "Duration": "00:00:05"}


def test_call_that_survives_a_reconnect_keeps_who_hung_up() -> None:
    """Ringall: while UCS's link is down, the member that declines goes away unseen;
    the call goes on, is answered by the other member and the customer hangs up in
    sight: the cause is the customer's (3), not 'unknown' because one ringing leg
    ended unseen."""
    pbx, tracker, clock, rec = build()
    msgs = messages("sip_ringall_decline_then_answer")
    both_ring = [i for i, m in enumerate(msgs) if m.get("Event") == "DialBegin"][1]
    feed(pbx, clock, msgs[: both_ring + 1])
    decliner = next(ch for ch in pbx.channels.values() if ch.device == "SIP/1001")
    declined = next(i for i, m in enumerate(msgs) if m.get("Event") == "Hangup" and m.get("Uniqueid") == decliner.uniqueid)
    # the link drops; when it is back, CoreShowChannels no longer lists SIP/1001's channel
    survivors = [_show_channel(pbx, uid) for uid in pbx.channels if uid != decliner.uniqueid]
    pbx.resync(Snapshot(channels=survivors))
    assert decliner.uniqueid not in pbx.channels and not rec.ended
    feed(pbx, clock, msgs[declined + 1:])
    (call,) = rec.ended
    assert call.answered_by == "SIP/1002"
    assert int(call.cause) == 3
    assert not pbx.channels


def test_call_whose_both_sides_ended_unseen_has_unknown_cause() -> None:
    pbx, tracker, clock, rec = build()
    msgs = messages("sip_queue_answered_agent_hangs_up")
    bridged = [i for i, m in enumerate(msgs) if m.get("Event") == "BridgeEnter"][-1]
    feed(pbx, clock, msgs[: bridged + 1])
    pbx.resync(Snapshot(channels=[]))
    (call,) = rec.ended
    assert int(call.cause) == 0


def test_caller_gone_unseen_then_agent_hangs_up_is_the_caller() -> None:
    """The customer's leg vanished while the link was down; the agent's channel was
    still up at the resync and hangs up later: the customer left first (3)."""
    pbx, tracker, clock, rec = build()
    msgs = messages("sip_queue_answered_agent_hangs_up")
    bridged = [i for i, m in enumerate(msgs) if m.get("Event") == "BridgeEnter"][-1]
    feed(pbx, clock, msgs[: bridged + 1])
    (call,) = tracker.active_calls()
    agent = next(ch for ch in pbx.channels.values() if ch.device == "SIP/1001")
    pbx.resync(Snapshot(channels=[_show_channel(pbx, agent.uniqueid)]))
    assert not rec.ended
    pbx.feed({"Event": "Hangup", "Channel": agent.name, "Uniqueid": agent.uniqueid, "Linkedid": agent.linkedid,
              "Cause": "16"})
    assert rec.ended == [call] and int(call.cause) == 3


def test_pjsip_phone_registers_and_unregisters() -> None:
    """Asterisk 20 reports a PJSIP contact that registers as NonQualified (no
    qualify) and its removal as Removed: the line is Registered at its address,
    then Unregistered with no address (pairing by IP follows it)."""
    pbx, _, clock, _ = build()
    msgs = messages("pj_registers_and_resync")
    statuses = [i for i, m in enumerate(msgs) if m.get("Event") == "ContactStatus"]
    feed(pbx, clock, msgs[: statuses[0] + 1])
    phone = pbx.devices["PJSIP/2004"]
    assert (phone.registration, phone.address, phone.port) == ("Registered", "127.0.0.34", 5060)
    feed(pbx, clock, msgs[statuses[0] + 1: statuses[-1] + 1])
    assert (phone.registration, phone.address) == ("Unregistered", None)


def test_pjsip_resync_knows_where_phones_registered() -> None:
    """UCS started after the phones registered: the resync's ``PJSIPShowEndpoints``
    (``Contacts: 2004/sip:2004@127.0.0.34:5060,``) gives each phone's address, so
    pairing by IP works as it does after a ``ContactStatus``; an endpoint with no
    contact (the browser's ``webrtc1`` before it registers) is Unregistered, and a
    browser's contact (``….invalid;transport=ws``) has no address to pair by."""
    pbx, _, clock, _ = build()
    msgs = messages("pj_registers_and_resync")
    endpoints = [m for m in msgs if m.get("Event") == "EndpointList"]
    assert endpoints and all(m.get("ActionID") == endpoints[0].get("ActionID") for m in endpoints)
    pbx.resync(Snapshot(channels=[], queues=[], device_states=[], sip_peers=None, pjsip_endpoints=endpoints))
    phone = pbx.devices["PJSIP/2004"]
    assert (phone.registration, phone.address, phone.port) == ("Registered", "127.0.0.34", 5060)
    assert pbx.devices["PJSIP/2001"].address == "127.0.0.31"
    browser = pbx.devices["PJSIP/webrtc1"]
    assert (browser.registration, browser.address) == ("Unregistered", None)
    pbx.feed({"Event": "ContactStatus", "URI": "sip:k3q9v1@d2hx8c7u.invalid;transport=ws", "ContactStatus": "Reachable",
              "AOR": "webrtc1", "EndpointName": "webrtc1", "RoundtripUsec": "0"})
    assert (browser.registration, browser.address) == ("Registered", None)
