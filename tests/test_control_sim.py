"""What call control needs of the simulator, at the AMI level (raw actions over
TCP), and the pieces of call control that need no PBX: the per-line state
table and the confirmation waits."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from ucs.calls.confirm import Confirmations
from ucs.calls.control_state import CONSULTING, HELD, IDLE, PARKED, REFUSALS, TRANSITIONS, LineOp, next_state
from ucs.error import InvalidState, PBXError
from ucs.sim import lab
from ucs.sim.lab import CUSTOMER
from ucs.sim.testing import SimHarness


@pytest_twisted.ensureDeferred
async def test_sipnotify_talk_answers_a_phone_that_allows_it() -> None:
    h = await SimHarness.start(lab(Clock()))
    try:
        c = await h.client()
        await c.login()
        sim = h.sim
        sim.phone("SIP/1001").set_behaviour(answer_after=None, remote_answer=True)
        sim.phone("SIP/1002").set_behaviour(answer_after=None)
        sim.queue_add("sales", "SIP/1001", "Alice Agent")
        sim.queue_add("sales", "SIP/1002", "Bob Agent")
        sim.caller_calls("5001", CUSTOMER)
        h.advance(0.5)
        # A phone without remote answer ignores the NOTIFY; Asterisk still sent it.
        resp = await c.action("SIPnotify", Channel="1002", Variable="Event=talk")
        assert resp["Response"] == "Success" and resp["Message"] == "Notify Sent"
        resp = await c.action("SIPnotify", Channel="SIP/1001", Variable="Event=check-sync")
        assert resp["Message"] == "Notify Sent"
        h.advance(0.5)
        assert sim.phone("SIP/1001").ringing is not None and sim.phone("SIP/1002").ringing is not None
        await c.action("SIPnotify", Channel="1001", Variable="Event=talk")
        h.advance(0.5)
        await c.barrier()
        assert sim.phone("SIP/1001").ringing is None
        (alice,) = sim.phone("SIP/1001").channels
        assert alice.state == 6 and alice.bridge is not None
        assert any(e["Event"] == "AgentConnect" and e.get("Interface") == "SIP/1001" for e in c.events())
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_sipnotify_errors() -> None:
    h = await SimHarness.start(lab(Clock()))
    try:
        c = await h.client()
        await c.login()
        resp = await c.action("SIPnotify", Variable="Event=talk")
        assert resp == {"Response": "Error", "ActionID": resp["ActionID"], "Message": "SIPNotify requires a channel name"}
        for peer in ("1009", "SIP/1004"):  # no such peer; a dynamic peer that is not registered
            resp = await c.action("SIPnotify", Channel=peer, Variable="Event=talk")
            assert resp["Response"] == "Error" and resp["Message"] == "Could not create address"
        h.sim.register("SIP/1004", "127.0.0.14", 5064)
        resp = await c.action("SIPnotify", Channel="1004", Variable="Event=talk")
        assert resp["Response"] == "Success"
    finally:
        await h.stop()


def test_line_state_table() -> None:
    assert next_state("SIP/1001", IDLE, "hold") == HELD
    assert next_state("SIP/1001", HELD, "park") == PARKED
    assert next_state("SIP/1001", PARKED, "consult") == CONSULTING
    assert next_state("SIP/1001", CONSULTING, "finish") == IDLE
    # Every refusal names a pair the table does not have, and says which line.
    for state, input in REFUSALS:
        assert (state, input) not in TRANSITIONS
        with pytest.raises(InvalidState, match="SIP/1001"):
            next_state("SIP/1001", state, input)
    op = LineOp("SIP/1002", HELD, "a", "b", "c")
    with pytest.raises(InvalidState, match="the call on SIP/1002 is already on hold"):
        op.move("hold")
    assert op.state == HELD
    with pytest.raises(InvalidState, match="abort is not possible while the call on SIP/1002 is idle"):
        LineOp("SIP/1002", IDLE, "", "", "").move("abort")
    assert op.move("unhold") == IDLE


@pytest_twisted.ensureDeferred
async def test_confirmations() -> None:
    clock = Clock()
    confirm = Confirmations(clock)
    facts: dict[str, object] = {}
    seen = confirm.expect(lambda: facts.get("held"), "the call is held")
    assert len(confirm) == 1
    facts["held"] = "yes"
    confirm.poke()
    assert await seen.wait(5) == "yes" and len(confirm) == 0
    late = confirm.expect(lambda: None, "the phone answers")
    waiting = late.wait(5)
    clock.advance(5)
    with pytest.raises(PBXError, match="Asterisk accepted the request but the phone answers did not happen within 5 s"):
        await waiting

    def broken() -> None:
        raise PBXError("the call ended")

    with pytest.raises(PBXError, match="the call ended"):
        await confirm.expect(broken, "x").wait(5)
    gone = confirm.expect(lambda: None, "y")
    gone.cancel()
    assert len(confirm) == 0 and not clock.getDelayedCalls()
    restart = confirm.expect(lambda: None, "z")
    pending = restart.wait(5)
    confirm.fail_all(PBXError("Asterisk restarted"))
    with pytest.raises(PBXError, match="Asterisk restarted"):
        await pending
    assert not clock.getDelayedCalls()
