"""Attended and blind transfers against the simulated PBX over TCP."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_control_stack import ALICE, CAROL, Stack, started

from ucs.calls.call import Call, CallState, Cause
from ucs.error import InvalidDataInput, InvalidState, PBXError


def journey(call: Call) -> list[str]:
    return [step.device for step in call.journey]


async def transferred_to_carol_then_caller_hangs_up(s: Stack, call: Call) -> Call:
    """The caller talks to SIP/1003 and hangs up; the finished call."""
    carol = s.leg(call, "SIP/1003")
    assert call.state == CallState.CONNECTED and call.connected_channel == carol.channel
    assert call.answered_by == "SIP/1001"
    sim_customer, sim_carol = s.sim_channel(call.origin), s.sim_channel(carol.uniqueid)
    assert sim_customer is not None and sim_carol is not None and not sim_customer.moh
    assert not s.sim_device("SIP/1001") and not s.tracker.calls_of_device("SIP/1001")
    await s.advance(1)
    s.sim.trunk().hangup()
    await s.advance(0.5)
    done = s.ended.calls[call.uniqueid]
    assert done.cause == Cause.CALLER_HUNG_UP
    assert s.leg(done, "SIP/1001").cause == Cause.TRANSFER
    assert s.leg(done, "SIP/carrier").cause == Cause.CALLER_HUNG_UP
    assert journey(done)[:3] == ["SIP/carrier", "Queue:support", "SIP/1001"] and journey(done)[-1] == "SIP/1003"
    assert "SIP/1001" not in s.control.ops
    return done


@pytest_twisted.ensureDeferred
async def test_attended_transfer_with_a_number() -> None:
    s = await started()
    try:
        call = await s.incoming()
        agent = s.leg(call, "SIP/1001").uniqueid
        assert await s.settle(s.control.transfer(ALICE, "1003")) is call
        # Consulting: the caller hears music, the agent talks to the target through a Local channel.
        assert call.state == CallState.HELD and s.control.ops["SIP/1001"].state == "consulting"
        sim_customer, sim_agent = s.sim_channel(call.origin), s.sim_channel(agent)
        assert sim_customer is not None and sim_agent is not None
        assert sim_customer.moh and sim_agent.bridge is not None and sim_agent.bridge is not sim_customer.bridge
        assert sim_agent.vars.get("TRANSFER_EXTEN") == "1003"
        await s.advance(1.5)
        assert s.sim_device("SIP/1003") and s.sim_device("SIP/1003")[0].state == 6
        with pytest.raises(InvalidState, match="a transfer is in progress on SIP/1001"):
            await s.control.hold(ALICE)
        with pytest.raises(InvalidState, match="a transfer is in progress on SIP/1001"):
            await s.control.transfer(ALICE, "1002")
        assert await s.settle(s.control.finish_transfer(ALICE)) is call
        assert "call.transfer" in s.event_names()
        await transferred_to_carol_then_caller_hangs_up(s, call)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_consulted_leg_knows_the_caller_hung_up() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.transfer(ALICE, "1003"))
        await s.advance(1.5)
        await s.settle(s.control.finish_transfer(ALICE))
        s.sim.trunk().hangup()
        await s.advance(0.5)
        assert s.leg(s.ended.calls[call.uniqueid], "SIP/1003").cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_transfer_mode_then_dial_then_finish() -> None:
    s = await started()
    try:
        call = await s.incoming()
        assert await s.settle(s.control.transfer(ALICE)) is call
        assert call.state == CallState.HELD and s.control.ops["SIP/1001"].state == "parked"
        with pytest.raises(InvalidState, match="already in transfer mode: dial the number"):
            await s.control.transfer(ALICE)
        with pytest.raises(InvalidState, match="there is no consultation call on SIP/1001 yet"):
            await s.control.finish_transfer(ALICE)
        await s.advance(2)
        # In transfer mode, dial makes the consultation call of the same call.
        assert await s.settle(s.control.dial(ALICE, "1003")) is call
        assert s.control.ops["SIP/1001"].state == "consulting" and call.state == CallState.HELD
        await s.advance(1.5)
        await s.settle(s.control.finish_transfer(ALICE))
        await transferred_to_carol_then_caller_hangs_up(s, call)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_hold_then_transfer_mode_then_unhold_leaves_it() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        await s.settle(s.control.transfer(ALICE))
        assert s.control.ops["SIP/1001"].state == "parked"
        await s.settle(s.control.unhold(ALICE))
        assert call.state == CallState.CONNECTED and "SIP/1001" not in s.control.ops
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_hangup_during_the_consultation_goes_back_to_the_caller() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.transfer(ALICE, "1003"))
        await s.advance(1.5)
        assert await s.settle(s.control.hangup(ALICE)) is call
        await s.advance(0.5)
        assert not s.sim_device("SIP/1003") and "SIP/1001" not in s.control.ops
        assert call.state == CallState.CONNECTED and call.connected_channel == s.leg(call, "SIP/1001").channel
        with pytest.raises(InvalidState, match="there is no transfer in progress on SIP/1001"):
            await s.control.finish_transfer(ALICE)
        s.sim.trunk().hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLER_HUNG_UP and s.leg(done, "SIP/1001").cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_busy_transfer_target_gives_the_call_back() -> None:
    s = await started()
    try:
        s.sim.phone("SIP/1003").set_behaviour(busy=True)
        call = await s.incoming()
        await s.settle(s.control.transfer(ALICE, "1003"))
        await s.advance(1)
        assert call.state == CallState.CONNECTED and "SIP/1001" not in s.control.ops
        with pytest.raises(InvalidState, match="there is no transfer in progress"):
            await s.control.finish_transfer(ALICE)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_transfer_to_a_number_that_does_not_exist() -> None:
    s = await started()
    try:
        call = await s.incoming()
        with pytest.raises(PBXError, match="the consultation call from SIP/1001 to 5999 starts .* did not happen within 5 s"):
            await s.settle(s.control.transfer(ALICE, "5999"))
        assert call.state == CallState.CONNECTED and "SIP/1001" not in s.control.ops
        with pytest.raises(InvalidDataInput, match="is not a phone number"):
            await s.control.transfer(ALICE, "carol")
    finally:
        await s.stop()


async def blind_transferred_to_bob(s: Stack, call: Call, held: bool = False) -> None:
    assert not s.sim_device("SIP/1001")
    await s.advance(1.5)
    bob = s.leg(call, "SIP/1002")
    assert call.state == CallState.CONNECTED and call.connected_channel == bob.channel
    s.sim.trunk().hangup()
    await s.advance(0.5)
    done = s.ended.calls[call.uniqueid]
    assert done.cause == Cause.CALLER_HUNG_UP
    assert s.leg(done, "SIP/1001").cause == Cause.TRANSFER
    assert s.leg(done, "SIP/1002").cause == Cause.CALLER_HUNG_UP
    hold = ["MusicOnHold"] if held else []
    assert journey(done) == ["SIP/carrier", "Queue:support", "SIP/1001", *hold, "SIP/1002"]
    assert done.transfers and done.transfers[-1]["to"] == "1002"


@pytest_twisted.ensureDeferred
async def test_blind_transfer() -> None:
    s = await started()
    try:
        call = await s.incoming()
        assert await s.settle(s.control.blind_transfer(ALICE, "1002")) is call
        assert [t["kind"] for t in call.transfers] == ["blind"]
        await blind_transferred_to_bob(s, call)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_blind_transfer_falls_back_to_redirect() -> None:
    s = await started()
    try:
        # An Asterisk without the BlindTransfer action (before 12) refuses it.
        del s.server.actions._handlers["blindtransfer"]
        call = await s.incoming()
        assert await s.settle(s.control.blind_transfer(ALICE, "1002")) is call
        await blind_transferred_to_bob(s, call)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_blind_transfer_of_a_held_call() -> None:
    s = await started()
    try:
        call = await s.incoming()
        await s.settle(s.control.hold(ALICE))
        assert await s.settle(s.control.blind_transfer(ALICE, "1002")) is call
        assert "SIP/1001" not in s.control.ops
        await blind_transferred_to_bob(s, call, held=True)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_refused_transfers() -> None:
    s = await started()
    try:
        for method, args in ((s.control.transfer, ("1003",)), (s.control.blind_transfer, ("1003",)),
                             (s.control.finish_transfer, ())):
            fn: Any = method
            with pytest.raises(InvalidState):
                await fn(CAROL, *args)
        with pytest.raises(InvalidState, match="there is no transfer in progress on SIP/1003"):
            await s.control.finish_transfer(CAROL)
        with pytest.raises(InvalidState, match="there is no call on SIP/1003"):
            await s.control.blind_transfer(CAROL, "1002")
        with pytest.raises(InvalidDataInput):
            await s.control.blind_transfer(CAROL, "")
    finally:
        await s.stop()
