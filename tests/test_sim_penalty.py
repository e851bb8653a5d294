"""``QueuePenalty`` on the simulated Asterisk, as app_queue 20 does it
(``manager_queue_member_penalty``, ``set_member_value``), and penalties
choosing who rings (``calc_metric``, ``ring_one``)."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from test_sim_model import make, run
from twisted.internet.task import Clock

from ucs.ami.message import AMIParser
from ucs.sim.lab import lab
from ucs.sim.testing import SimHarness

CAPTURES = Path(__file__).parent / "data" / "ami-captures"


def captured_member_headers() -> list[str]:
    """The header names of a member event as real Asterisk 20 sends it (the
    QueueMemberPause of a capture: app_queue builds every member event from the
    same blob, ``queue_member_blob_create``)."""
    for message in AMIParser().feed((CAPTURES / "phone_registers_and_pauses.ami").read_bytes()):
        if message.get("Event") == "QueueMemberPause":
            return [k for k, _ in message.items() if k != "Event"]
    raise AssertionError("no QueueMemberPause in the capture")


@pytest_twisted.ensureDeferred
async def test_queue_penalty_answers_and_events_as_asterisk_20() -> None:
    h = await SimHarness.start(lab(Clock()))
    try:
        c = await h.client()
        await c.login()
        await c.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent", Penalty="1")
        await c.action("QueueAdd", Queue="sales", Interface="SIP/1001", MemberName="Alice Agent", Penalty="1")
        await c.barrier()
        c.messages.clear()

        for headers, message in [
            ({"Interface": "SIP/1001"}, "Need 'Interface' and 'Penalty' parameters."),
            ({"Penalty": "2"}, "Need 'Interface' and 'Penalty' parameters."),
            ({"Interface": "SIP/1002", "Penalty": "2", "Queue": "support"}, "Invalid interface, queuename or penalty"),
            ({"Interface": "SIP/1001", "Penalty": "2", "Queue": "nosuch"}, "Invalid interface, queuename or penalty"),
            ({"Interface": "SIP/1001", "Penalty": "-1", "Queue": "support"}, "Invalid interface, queuename or penalty"),
        ]:
            resp = await c.action("QueuePenalty", **headers)
            assert (resp["Response"], resp["Message"]) == ("Error", message), headers
        await c.barrier()
        assert c.events("QueueMemberPenalty") == []  # nothing changed

        resp = await c.action("QueuePenalty", Interface="SIP/1001", Penalty="4", Queue="support")
        assert (resp["Response"], resp["Message"]) == ("Success", "Interface penalty set successfully")
        await c.barrier()
        (event,) = c.events("QueueMemberPenalty")
        assert [k for k, _ in event.items() if k != "Event"] == captured_member_headers()
        assert (event["Privilege"], event["Queue"], event["Interface"], event["MemberName"], event["Penalty"]) == (
            "agent,all", "support", "SIP/1001", "Alice Agent", "4")
        await c.action("QueueStatus", Member="SIP/1001")
        await c.barrier()  # the list's events follow its response
        shown = {m["Queue"]: m["Penalty"] for m in c.events("QueueMember")}
        assert shown == {"support": "4", "sales": "1"}

        # no Queue: every queue the interface is in, one event each; the same value is an event too
        c.messages.clear()
        resp = await c.action("QueuePenalty", Interface="SIP/1001", Penalty="4")
        assert resp["Response"] == "Success"
        await c.barrier()
        assert sorted((m["Queue"], m["Penalty"]) for m in c.events("QueueMemberPenalty")) == [("sales", "4"), ("support", "4")]

        # the Penalty is read as C's atoi reads it
        c.messages.clear()
        resp = await c.action("QueuePenalty", Interface="SIP/1001", Penalty="abc", Queue="sales")
        assert resp["Response"] == "Success"
        resp = await c.action("QueuePenalty", Interface="SIP/1001", Penalty=" 7x", Queue="support")
        assert resp["Response"] == "Success"
        await c.barrier()
        assert [(m["Queue"], m["Penalty"]) for m in c.events("QueueMemberPenalty")] == [("sales", "0"), ("support", "7")]
    finally:
        await h.stop()


def test_ringall_rings_the_lowest_penalty_and_the_others_only_when_none_of_those_can() -> None:
    sim, clock, rec = make()
    sim.queue_add("sales", "SIP/1001", "Alice Agent", penalty=1)
    sim.queue_add("sales", "SIP/1002", "Bob Agent", penalty=0)
    sim.queue_add("sales", "SIP/1003", "Carol Agent", penalty=0)
    sim.caller_calls("5001")
    run(clock, 1)
    assert sorted(m["Interface"] for m in rec.of("AgentCalled")) == ["SIP/1002", "SIP/1003"]
    sim.phone("SIP/1002").answer()
    # Bob talks, Carol is paused: Alice (penalty 1) is the best that can ring now
    sim.queue_pause("SIP/1003", True, "sales", "Lunch")
    rec.messages.clear()
    sim.caller_calls("5001")
    run(clock, 1)
    assert [m["Interface"] for m in rec.of("AgentCalled")] == ["SIP/1001"]


def test_a_penalty_changed_on_the_fly_changes_who_rings_next() -> None:
    sim, clock, rec = make()
    for dev, name in (("SIP/1001", "Alice Agent"), ("SIP/1002", "Bob Agent"), ("SIP/1003", "Carol Agent")):
        sim.queue_add("support", dev, name)  # rrmemory
    sim.queue_penalty("SIP/1001", 3, "support")
    sim.queue_penalty("SIP/1002", 3, "support")
    sim.phone("SIP/1003").set_behaviour(answer_after=1)
    sim.caller_calls("5000")
    run(clock, 2)  # 1001 would be first in turn; Carol has the lowest penalty
    assert [m["Interface"] for m in rec.of("AgentCalled")] == ["SIP/1003"]
    # Carol is busy now; between Alice and Bob (same penalty) the turn goes on after Carol: 1001
    sim.phone("SIP/1001").set_behaviour(answer_after=1)
    sim.caller_calls("5000")
    run(clock, 2)
    assert [m["Interface"] for m in rec.of("AgentConnect")] == ["SIP/1003", "SIP/1001"]


@pytest_twisted.ensureDeferred
async def test_queue_add_reads_the_penalty_as_asterisk_20() -> None:
    """manager_add_queue_member: no number, or a negative one, is penalty 0 (never refused)."""
    h = await SimHarness.start(lab(Clock()))
    try:
        c = await h.client()
        await c.login()
        for iface, given in (("SIP/1001", "-3"), ("SIP/1002", "two"), ("SIP/1003", " 2")):
            resp = await c.action("QueueAdd", Queue="sales", Interface=iface, Penalty=given)
            assert (resp["Response"], resp["Message"]) == ("Success", "Added interface to queue")
        await c.barrier()
        assert {m["Interface"]: m["Penalty"] for m in c.events("QueueMemberAdded")} == {
            "SIP/1001": "0", "SIP/1002": "0", "SIP/1003": "2"}
    finally:
        await h.stop()
