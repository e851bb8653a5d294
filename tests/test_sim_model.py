"""The simulated PBX without sockets: queue strategies, phones, callers, dialplan."""

from __future__ import annotations

import re

import pytest
from twisted.internet.task import Clock

from ucs.sim import Demo, SimError, lab
from ucs.sim.pbx import Sim
from ucs.sim.queues import QueueError


class Recorder:
    def __init__(self, sim: Sim) -> None:
        self.messages: list[dict[str, str]] = []
        sim.subscribe(lambda ev: self.messages.append(ev.message()))

    def names(self, *only: str) -> list[str]:
        return [m["Event"] for m in self.messages if not only or m["Event"] in only]

    def of(self, event: str) -> list[dict[str, str]]:
        return [m for m in self.messages if m["Event"] == event]


def make() -> tuple[Sim, Clock, Recorder]:
    clock = Clock()
    sim = lab(clock)
    return sim, clock, Recorder(sim)


def run(clock: Clock, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        clock.advance(0.1)


def test_identifiers_look_like_asterisks() -> None:
    sim, clock, rec = make()
    ch = sim.caller_calls("6000")
    assert re.fullmatch(r"SIP/carrier-[0-9a-f]{8}", ch.name)
    assert re.fullmatch(r"1\d{9}\.\d+", ch.uniqueid) and ch.linkedid == ch.uniqueid
    run(clock, 1)
    new = rec.of("Newchannel")[0]
    assert (new["CallerIDNum"], new["CallerIDName"], new["Exten"], new["Context"]) == (
        "420777123456",
        "Customer",
        "6000",
        "from-carrier",
    )
    # 6000: Answer, Wait(2), Hangup, which is the end of the call.
    run(clock, 3)
    assert rec.names("Newstate", "Hangup") == ["Newstate", "Newstate", "Hangup"]
    assert sim.channels == {}


def test_rrmemory_rings_members_in_turn_and_moves_on_after_the_member_timeout() -> None:
    sim, clock, rec = make()
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.queue_add("support", "SIP/1002", "Bob Agent")
    sim.caller_calls("5000")  # nobody answers: 1001 rings 8 s, then after the retry 1002
    run(clock, 8.5)
    called = [m["Interface"] for m in rec.of("AgentCalled")]
    assert called == ["SIP/1001"]
    rna = rec.of("AgentRingNoAnswer")
    assert [m["Interface"] for m in rna] == ["SIP/1001"]
    assert rec.of("DialEnd")[-1]["DialStatus"] == "NOANSWER"
    run(clock, 6)
    assert [m["Interface"] for m in rec.of("AgentCalled")] == ["SIP/1001", "SIP/1002"]
    sim.phone("SIP/1002").answer()
    assert rec.of("AgentConnect")[0]["Interface"] == "SIP/1002"
    # The next caller starts after the last member rung (rrmemory): 1001.
    sim.phone("SIP/1001").set_behaviour(answer_after=1)
    sim.caller_calls("5000")
    run(clock, 2)
    assert [m["Interface"] for m in rec.of("AgentConnect")] == ["SIP/1002", "SIP/1001"]


def test_ringall_rings_everyone_and_cancels_the_others_on_answer() -> None:
    sim, clock, rec = make()
    for dev, name in (("SIP/1001", "Alice Agent"), ("SIP/1002", "Bob Agent"), ("SIP/1003", "Carol Agent")):
        sim.queue_add("sales", dev, name)
    sim.phone("SIP/1002").set_behaviour(answer_after=2)
    sim.caller_calls("5001")
    run(clock, 3)
    assert sorted(m["Interface"] for m in rec.of("AgentCalled")) == ["SIP/1001", "SIP/1002", "SIP/1003"]
    assert rec.of("AgentConnect")[0]["Interface"] == "SIP/1002"
    cancelled = [m for m in rec.of("DialEnd") if m["DialStatus"] == "CANCEL"]
    assert sorted(m["DestChannel"].split("-")[0] for m in cancelled) == ["SIP/1001", "SIP/1003"]
    causes = {m["Channel"].split("-")[0]: m["Cause"] for m in rec.of("Hangup")}
    assert causes == {"SIP/1001": "26", "SIP/1003": "26"}
    assert sim.devices["SIP/1002"] == "INUSE" and sim.devices["SIP/1001"] == "NOT_INUSE"


def test_a_phone_that_rang_a_while_declines() -> None:
    """603 Decline after ringing: chan_sip shows the caller BUSY (cause 21), the
    queue moves on, the declined call is over for that phone."""
    sim, clock, rec = make()
    sim.queue_add("sales", "SIP/1001", "Alice Agent")
    sim.phone("SIP/1001").set_behaviour(answer_after=None)
    sim.caller_calls("5001")
    run(clock, 2)
    assert sim.phone("SIP/1001").ringing is not None
    sim.phone("SIP/1001").decline()
    run(clock, 0.5)
    assert sim.phone("SIP/1001").ringing is None
    (end,) = [m for m in rec.of("DialEnd") if m["DestChannel"].startswith("SIP/1001-")]
    assert end["DialStatus"] == "BUSY"
    (hangup,) = [m for m in rec.of("Hangup") if m["Channel"].startswith("SIP/1001-")]
    assert hangup["Cause"] == "21"
    assert rec.of("AgentRingNoAnswer")[0]["Interface"] == "SIP/1001"
    with pytest.raises(SimError, match="no ringing call to decline"):
        sim.phone("SIP/1001").decline()


def test_busy_phone_paused_member_and_unregistered_phone_are_skipped() -> None:
    sim, clock, rec = make()
    sim.queue_add("sales", "SIP/1001", "Alice Agent")
    sim.queue_add("sales", "SIP/1002", "Bob Agent", paused=True, reason="Lunch")
    sim.queue_add("sales", "SIP/1004", "Dave Agent")  # dynamic, not registered
    sim.phone("SIP/1001").set_behaviour(busy=True)
    sim.caller_calls("5001")
    run(clock, 1)
    assert [m["Interface"] for m in rec.of("AgentCalled")] == ["SIP/1001"]
    assert rec.of("DialEnd")[-1]["DialStatus"] == "BUSY"
    assert rec.of("Hangup")[-1]["Cause"] == "17"
    assert [m["Interface"] for m in rec.of("AgentRingNoAnswer")] == ["SIP/1001"]
    statuses = {m["Interface"]: m["Status"] for m in rec.of("QueueMemberAdded")}
    assert statuses["SIP/1004"] == "5"  # UNAVAILABLE
    # Dave registers: now he is rung (after the queue's retry).
    sim.register("SIP/1004", "127.0.0.14", 5064, useragent="Yealink")
    sim.phone("SIP/1004").set_behaviour(answer_after=1)
    run(clock, 8)
    assert rec.of("AgentConnect")[0]["Interface"] == "SIP/1004"


def test_caller_abandons_while_an_agent_rings() -> None:
    sim, clock, rec = make()
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.caller_calls("5000", abandon_after=3)
    run(clock, 4)
    names = rec.names("HangupRequest", "MusicOnHoldStop", "DialEnd", "QueueCallerAbandon", "QueueCallerLeave", "Hangup")
    # (Asterisk reports the cancelled dial twice, as in load_mixed.)
    assert names == [
        "HangupRequest",
        "MusicOnHoldStop",
        "DialEnd",
        "DialEnd",
        "Hangup",
        "QueueCallerAbandon",
        "QueueCallerLeave",
        "Hangup",
    ]
    assert rec.of("DialEnd")[0]["DialStatus"] == "CANCEL"
    assert rec.of("Hangup")[-1]["Cause"] == "0"
    assert sim.queues["support"].abandoned == 1 and sim.channels == {}


def test_agent_hangs_up_first() -> None:
    sim, clock, rec = make()
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.phone("SIP/1001").set_behaviour(answer_after=1, hangup_after=5)
    sim.caller_calls("5000")
    run(clock, 7)
    leaves = [m["Channel"].split("-")[0] for m in rec.of("BridgeLeave")]
    assert leaves == ["SIP/1001", "SIP/carrier"]
    assert rec.of("HangupRequest")[0]["Channel"].startswith("SIP/1001-")
    assert rec.of("AgentComplete")[0]["Reason"] == "agent"
    assert sim.channels == {}
    m = sim.queues["support"].members["SIP/1001"]
    assert (m.calls_taken, m.in_call, m.status) == (1, False, 1)


def test_queue_timeout_sends_the_caller_on_in_the_dialplan() -> None:
    sim, clock, rec = make()
    sim.caller_calls("5000")  # nobody in the queue: Queue(support,t,,,120) gives up after 120 s
    run(clock, 121)
    assert rec.names("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "Hangup") == [
        "QueueCallerJoin",
        "QueueCallerLeave",
        "Hangup",
    ]


def test_internal_call_outbound_call_and_busy_extension() -> None:
    sim, clock, rec = make()
    sim.phone("SIP/1002").set_behaviour(answer_after=1, hangup_after=3)
    a = sim.phone("SIP/1001").dial("1002")
    run(clock, 2)
    assert a.bridge is not None and len(a.bridge.channels) == 2
    assert rec.of("DialBegin")[0]["DialString"] == "1002"
    run(clock, 3)
    assert sim.channels == {}
    sim.phone("SIP/1003").set_behaviour(busy=True)
    sim.phone("SIP/1001").dial("1003")
    run(clock, 1)
    assert [m["DialStatus"] for m in rec.of("DialEnd")][-1] == "BUSY"
    assert sim.channels == {}
    sim.trunk().set_behaviour(answer_after=1, hangup_after=2)
    out = sim.phone("SIP/1001").dial("0420777987654")
    assert out is not None
    run(clock, 1.5)
    carrier = [c for c in sim.channels.values() if c.name.startswith("SIP/carrier-")]
    assert len(carrier) == 1 and carrier[0].cid_num == "0420777987654" and carrier[0].linkedid == out.uniqueid
    run(clock, 3)
    assert sim.channels == {}
    assert sim.phone("SIP/1001").dial("9999") is None  # no such extension: no channel at all
    assert rec.of("FailedACL")[-1]["ACLName"] == "no_extension_match"
    run(clock, 1)
    assert sim.channels == {}


def test_registration_expires() -> None:
    sim, clock, rec = make()
    sim.register("SIP/1004", "127.0.0.14", 5064, useragent="Yealink SIP-T46U", expires=60)
    assert rec.of("PeerStatus")[0]["Address"] == "127.0.0.14:5064"
    assert sim.devices["SIP/1004"] == "NOT_INUSE"
    run(clock, 61)
    assert [m["PeerStatus"] for m in rec.of("PeerStatus")] == ["Registered", "Unregistered"]
    assert sim.devices["SIP/1004"] == "UNAVAILABLE"
    with pytest.raises(SimError, match="static peer"):
        sim.register("SIP/1001", "10.0.0.1")


def test_queue_errors_and_pause_in_every_queue() -> None:
    sim, _, rec = make()
    sim.queue_add("support", "SIP/1002", "Bob Agent")
    sim.queue_add("sales", "SIP/1002", "Bob Agent")
    with pytest.raises(QueueError, match="Already there"):
        sim.queue_add("support", "SIP/1002")
    with pytest.raises(QueueError, match="Not there"):
        sim.queue_remove("support", "SIP/1003")
    sim.queue_pause("SIP/1002", True, reason="Coffee")
    assert [(m["Queue"], m["PausedReason"]) for m in rec.of("QueueMemberPause")] == [
        ("support", "Coffee"),
        ("sales", "Coffee"),
    ]


def test_text_from_outside_cannot_break_a_frame() -> None:
    sim, _, rec = make()
    sim.caller_calls("6000", "42077\r\n7123456", "Evil\r\nEvent: Fake")
    new = rec.of("Newchannel")[0]
    assert "\n" not in new["CallerIDName"] and "Fake" in new["CallerIDName"]
    assert not any(m["Event"] == "Fake" for m in rec.messages)


def test_restart_forgets_dynamic_members_and_channels() -> None:
    sim, clock, rec = make()
    states: list[str] = []
    sim.on_state(states.append)
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.phone("SIP/1001").set_behaviour(answer_after=1)
    sim.caller_calls("5000")
    run(clock, 2)
    sim.restart()
    assert states == ["shutdown", "booted"]
    assert rec.names()[-1] == "Shutdown"
    assert rec.of("AgentComplete")[0]["Reason"] == "agent"
    assert [m["Cause"] for m in rec.of("SoftHangupRequest")][:2] == ["4", "4"]
    assert sim.channels == {} and sim.queues["support"].members == {}
    assert sim.uptime() == 0
    # Uniqueids count from 0 again after a restart, as Asterisk's do.
    ch = sim.caller_calls("6000")
    assert ch.uniqueid.endswith(".0") and ch.name == "SIP/carrier-00000001"


def test_demo_keeps_a_contact_center_busy_and_cleans_up() -> None:
    clock = Clock()
    sim = lab(clock, seed=7)
    rec = Recorder(sim)
    demo = Demo(sim, rate=30, add_members=True, report_every=0)
    demo.start()
    run(clock, 600)
    demo.stop()
    assert demo.calls > 200
    assert len(rec.of("AgentConnect")) > 50
    assert rec.of("QueueCallerAbandon"), "some callers give up"
    run(clock, 300)
    assert sim.channels == {} and sim.bridges == {}
    assert all(not q.entries for q in sim.queues.values())
    # Through a restart the demo puts its members back.
    demo.start()
    sim.restart()
    assert {m for q in sim.queues.values() for m in q.members} == {"SIP/1001", "SIP/1002", "SIP/1003", "SIP/1004"}
    demo.stop()
