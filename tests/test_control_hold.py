"""Hold (``tribute``), unhold, mute and answer against the simulated PBX over TCP."""

from __future__ import annotations

import pytest
import pytest_twisted
from test_control_stack import ALICE, BOB, DAVE, Stack, started

from ucs.calls.call import CallState, Cause
from ucs.error import InvalidState, PBXError
from ucs.sim.lab import CUSTOMER


def held_in_sim(s: Stack, customer_uid: str, agent_uid: str) -> bool:
    customer, agent = s.sim_channel(customer_uid), s.sim_channel(agent_uid)
    assert customer is not None and agent is not None
    return (
        customer.moh and customer.context == "ucs-hold" and customer.bridge is None
        and agent.context == "ucs-wait" and agent.bridge is None and not agent.moh
    )


@pytest_twisted.ensureDeferred
async def test_hold_then_unhold_then_the_caller_hangs_up() -> None:
    s = await started()
    try:
        call = await s.incoming()
        customer, agent = call.origin, s.leg(call, "SIP/1001").uniqueid
        assert await s.settle(s.control.hold(ALICE)) is call
        assert call.state == CallState.HELD and held_in_sim(s, customer, agent)
        assert s.pbx.channels[customer].on_hold and "call.hold" in s.event_names()
        await s.advance(3)
        assert await s.settle(s.control.unhold(ALICE)) is call
        assert call.state == CallState.CONNECTED and not s.pbx.channels[customer].on_hold
        sim_customer, sim_agent = s.sim_channel(customer), s.sim_channel(agent)
        assert sim_customer is not None and sim_agent is not None
        assert sim_customer.bridge is not None and sim_customer.bridge is sim_agent.bridge and not sim_customer.moh
        assert "call.resume" in s.event_names()
        assert "SIP/1001" not in s.control.ops
        s.sim.trunk().hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLER_HUNG_UP
        assert s.leg(done, "SIP/1001").cause == Cause.CALLER_HUNG_UP
        assert s.leg(done, "SIP/carrier").cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_hold_twice_and_unhold_without_hold_are_refused() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await s.control.hold(ALICE)
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None)
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        s.sim.caller_calls("5000", CUSTOMER)
        await s.advance(0.5)
        with pytest.raises(InvalidState, match="the call on SIP/1001 is not answered yet"):
            await s.control.hold(ALICE)
        s.sim.phone("SIP/1001").answer()
        await s.advance(0.5)
        with pytest.raises(InvalidState, match="the call on SIP/1001 is not on hold"):
            await s.control.unhold(ALICE)
        await s.settle(s.control.hold(ALICE))
        with pytest.raises(InvalidState, match="the call on SIP/1001 is already on hold"):
            await s.control.hold(ALICE)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_caller_hangs_up_while_on_hold() -> None:
    s = await started()
    try:
        call = await s.incoming()
        agent = s.leg(call, "SIP/1001").uniqueid
        await s.settle(s.control.hold(ALICE))
        s.sim.trunk().hangup()
        await s.advance(0.5)
        # Nobody could take the call off hold: the agent's waiting channel is hung up too.
        assert agent not in s.pbx.channels and not s.sim_device("SIP/1001")
        assert "SIP/1001" not in s.control.ops
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLER_HUNG_UP
        assert s.leg(done, "SIP/1001").cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_agent_hangs_up_a_held_call() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        assert not s.sim.channels and not s.pbx.channels
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLED_HUNG_UP
        assert s.leg(done, "SIP/1001").cause == Cause.CALLED_HUNG_UP
        assert s.leg(done, "SIP/carrier").cause == Cause.CALLED_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_hold_a_click_to_dial_call() -> None:
    s = await started()
    try:
        call = await s.settle(s.control.dial(BOB, "0420777987654"))
        await s.advance(1.5)
        await s.settle(s.control.hold(BOB))
        trunk = s.leg(call, "SIP/carrier").uniqueid
        assert call.state == CallState.HELD and held_in_sim(s, trunk, call.origin)
        await s.settle(s.control.unhold(BOB))
        assert call.state == CallState.CONNECTED
        s.sim.trunk().hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLED_HUNG_UP
        assert s.leg(done, "SIP/1002").cause == Cause.CALLED_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_second_call_while_one_is_held() -> None:
    s = await started()
    try:
        first = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        second = await s.settle(s.control.dial(ALICE, "1003"))
        assert second is not first
        await s.advance(1.5)
        assert second.state == CallState.CONNECTED and first.state == CallState.HELD
        # Hang-up ends the call the agent is in, not the held one.
        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        assert second.uniqueid in s.ended.calls and first.uniqueid not in s.ended.calls
        await s.settle(s.control.unhold(ALICE))
        assert first.state == CallState.CONNECTED
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_mute_toggles_the_agents_microphone() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await s.control.mute(ALICE)
        call = await s.incoming()
        agent = s.leg(call, "SIP/1001").uniqueid
        await s.settle(s.control.mute(ALICE))
        # The agent is the connected party of an incoming call.
        assert call.connected_muted and not call.caller_muted
        assert s.sim_channel(agent).muted == {"in"}  # type: ignore[union-attr]
        assert s.pbx.channels[agent].muted_in and "call.mute" in s.event_names()
        await s.settle(s.control.mute(ALICE))
        assert not call.connected_muted and s.sim_channel(agent).muted == set()  # type: ignore[union-attr]
        assert "call.unmute" in s.event_names()
        outgoing = await s.settle(s.control.dial(BOB, "0420777987654"))
        await s.settle(s.control.mute(BOB))
        assert outgoing.caller_muted and not outgoing.connected_muted
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_answer_with_sip_notify() -> None:
    s = await started()
    try:
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None, remote_answer=True)
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        s.sim.caller_calls("5000", CUSTOMER)
        await s.advance(0.5)
        call = await s.settle(s.control.answer(ALICE))
        assert call.state == CallState.CONNECTED and call.answered_by == "SIP/1001"
        with pytest.raises(InvalidState, match="the call on SIP/1001 is not ringing"):
            await s.control.answer(ALICE)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_answer_refused_or_not_done() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await s.control.answer(ALICE)
        for device in ("SIP/1001", "SIP/1002"):
            s.sim.phone(device).set_behaviour(answer_after=None)
            s.sim.queue_add("sales", device, device)
        s.sim.caller_calls("5001", CUSTOMER)
        await s.advance(0.5)
        with pytest.raises(InvalidState, match="SIP/1002 cannot be answered remotely: its line's auto_answer is 'none'"):
            await s.control.answer(BOB)
        # The line says the phone can, the phone does not: nothing happens, and UCS says so.
        with pytest.raises(PBXError, match="SIP/1001 answers when told to by a SIP NOTIFY .* did not happen within 5 s"):
            await s.settle(s.control.answer(ALICE))
        assert s.sim.phone("SIP/1001").ringing is not None
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_asterisk_refuses_the_notify() -> None:
    s = await started()
    try:
        s.sim.register("SIP/1004", "127.0.0.14", 5064)
        s.sim.phone("SIP/1004").set_behaviour(answer_after=None, remote_answer=True)
        s.sim.queue_add("support", "SIP/1004", "Dave Agent")
        s.sim.caller_calls("5000", CUSTOMER)
        await s.advance(0.5)
        s.sim.line("SIP/1004").ip = None  # the phone's address is gone; the call still rings
        with pytest.raises(PBXError, match="Asterisk refused SIPnotify: Could not create address"):
            await s.control.answer(DAVE)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_agents_phone_hangs_up_while_the_call_is_held() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        s.sim.phone("SIP/1001").hangup()
        await s.advance(0.5)
        # Nobody could take the caller off hold: UCS hangs the caller up too.
        assert not s.sim.channels and not s.pbx.channels and "SIP/1001" not in s.control.ops
        assert call.uniqueid in s.ended.calls
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_agents_phone_hanging_up_a_held_call_is_cause_4() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        s.sim.phone("SIP/1001").hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert (done.cause, s.leg(done, "SIP/1001").cause) == (Cause.CALLED_HUNG_UP, Cause.CALLED_HUNG_UP)
    finally:
        await s.stop()
