"""Swap and conference during an attended transfer, and the keypad (DTMF),
against the simulated PBX over TCP (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_control_stack import ALICE, Stack, started

from ucs.calls.call import Call, CallState, Cause
from ucs.error import InvalidDataInput, InvalidState


async def consulting_carol(s: Stack) -> tuple[Call, str]:
    """A customer talks to SIP/1001, who consults SIP/1003 (answered)."""
    call = await s.incoming()
    agent = s.leg(call, "SIP/1001").uniqueid
    await s.settle(s.control.transfer(ALICE, "1003"))
    await s.advance(1.5)
    assert s.sim_device("SIP/1003")[0].state == 6
    return call, agent


def together(s: Stack, *uids: str) -> bool:
    chans = [s.sim_channel(u) for u in uids]
    return all(c is not None and c.bridge is not None for c in chans) and len({id(c.bridge) for c in chans if c}) == 1


@pytest_twisted.ensureDeferred
async def test_swap_to_the_caller_and_back_then_finish() -> None:
    s = await started()
    try:
        call, agent = await consulting_carol(s)
        carol = s.sim_device("SIP/1003")[0]
        await s.settle(s.control.swap(ALICE))
        # Back with the caller; the consulted party waits with music (Asterisk's DOUBLECHECKING).
        assert s.control.ops["SIP/1001"].state == "swapped"
        assert together(s, agent, call.origin) and not s.sim_channel(call.origin).moh
        local = [c for c in carol.bridge.channels if c is not carol][0].local_peer  # Local;1, with the agent before
        assert local.moh and local.bridge is not s.sim_channel(agent).bridge
        assert call.state != CallState.HELD and not s.pbx.channels[agent].on_hold
        await s.settle(s.control.swap(ALICE))
        assert s.control.ops["SIP/1001"].state == "consulting"
        assert s.sim_channel(call.origin).moh and not local.moh
        await s.settle(s.control.swap(ALICE))
        # Finishing from the caller's side completes the transfer too.
        assert await s.settle(s.control.finish_transfer(ALICE)) is call
        await s.advance(0.5)
        assert "SIP/1001" not in s.control.ops
        assert s.leg(call, "SIP/1003").channel == call.connected_channel
        assert not s.sim_channel(call.origin).moh
        await s.advance(1)
        s.sim.trunk().hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLER_HUNG_UP and s.leg(done, "SIP/1001").cause == Cause.TRANSFER
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_hangup_while_swapped_ends_the_consultation() -> None:
    s = await started()
    try:
        call, agent = await consulting_carol(s)
        await s.settle(s.control.swap(ALICE))
        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        assert "SIP/1001" not in s.control.ops
        assert not s.sim_device("SIP/1003")
        assert together(s, agent, call.origin) and call.state == CallState.CONNECTED
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_conference_then_the_agent_leaves() -> None:
    s = await started()
    try:
        call, agent = await consulting_carol(s)
        carol = s.sim_device("SIP/1003")[0]
        assert await s.settle(s.control.conference(ALICE)) is call
        # All three in the caller's bridge, nobody hears music; Asterisk says Threeway.
        assert s.control.ops["SIP/1001"].state == "conference"
        bridge = s.sim_channel(call.origin).bridge
        assert bridge is not None and s.sim_channel(agent).bridge is bridge and len(bridge.channels) == 3
        assert not s.sim_channel(call.origin).moh and not any(c.moh for c in bridge.channels)
        assert call.transfers[-1]["kind"] == "conference"
        assert not s.leg(call, "SIP/1001").transferred
        with pytest.raises(InvalidState, match="three-way conference"):
            await s.control.swap(ALICE)
        with pytest.raises(InvalidState, match="three-way conference"):
            await s.control.hold(ALICE)
        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        assert "SIP/1001" not in s.control.ops and not s.sim_device("SIP/1001")
        # The caller and the consulted party go on talking.
        assert s.sim_channel(call.origin) is not None and s.sim_device("SIP/1003")
        assert s.sim_channel(call.origin).bridge is not None
        # Leaving a conference hands the call over: the agent's leg is transferred (8),
        # and the caller hanging up later decides the call's cause.
        await s.advance(1)
        s.sim.trunk().hangup()
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert s.leg(done, "SIP/1001").cause == Cause.TRANSFER
        assert done.cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_conference_from_the_callers_side() -> None:
    s = await started()
    try:
        call, agent = await consulting_carol(s)
        await s.settle(s.control.swap(ALICE))
        await s.settle(s.control.conference(ALICE))
        bridge = s.sim_channel(call.origin).bridge
        assert len(bridge.channels) == 3 and not any(c.moh for c in bridge.channels)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_swap_and_conference_refused_without_a_consultation() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="no consultation on SIP/1001"):
            await s.control.swap(ALICE)
        await s.incoming()
        with pytest.raises(InvalidState, match="no consultation on SIP/1001.*transfer\\(number\\)"):
            await s.control.conference(ALICE)
        await s.settle(s.control.transfer(ALICE, "1003"))
        # Carol's phone still rings.
        with pytest.raises(InvalidState, match="not answered yet"):
            await s.control.swap(ALICE)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_keypad_sends_digits_to_the_other_party() -> None:
    s = await started()
    try:
        call = await s.incoming()
        assert await s.settle(s.control.send_dtmf(ALICE, "12*#a")) is call
        assert s.sim_channel(call.origin).dtmf == list("12*#A")
        # Nothing reached the agent's own phone, and no transfer started.
        assert s.sim_channel(s.leg(call, "SIP/1001").uniqueid).dtmf == []
        assert "SIP/1001" not in s.control.ops
        with pytest.raises(InvalidDataInput, match="0-9, \\*, # or A-D"):
            await s.control.send_dtmf(ALICE, "12x")
        await s.settle(s.control.hold(ALICE))
        with pytest.raises(InvalidState, match="nobody to send the keys to"):
            await s.control.send_dtmf(ALICE, "1")
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_keypad_refused_without_a_call() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await s.control.send_dtmf(ALICE, "1")
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_playdtmf_answers_as_asterisk() -> None:
    s = await started()
    try:
        call = await s.incoming()
        name = s.sim_channel(call.origin).name
        for headers, answer in (
            ({"Channel": "SIP/nope-1", "Digit": "1"}, "Channel not found"),
            ({"Channel": name}, "No digit specified"),
            ({"Channel": name, "Digit": "1", "Duration": "x"}, "Could not convert Duration parameter"),
        ):
            with pytest.raises(Exception, match=answer):
                await s.client.sendAction("PlayDTMF", headers)
        reply = await s.client.sendAction("PlayDTMF", {"Channel": name, "Digit": "5"})
        assert reply.get("Message") == "DTMF successfully queued"
        assert call.cause is None or call.cause != Cause.TRANSFER
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_swap_conference_and_keypad_through_the_api() -> None:
    from test_control_api import api_stack, session

    s, api = await api_stack()
    try:
        me = session()
        for name in ("call.swap", "call.conference", "call.dtmf"):
            described = api.get(name).describe()
            assert described["role"] == "agent" and described["states"] == ["READY"], name
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "call.dtmf", ["1x"])
        assert list(e.value.message) == ["digits"] and "0-9, *, # or A-D" in e.value.message["digits"]
        with pytest.raises(InvalidDataInput):
            await api.call(me, "call.dtmf", {"digits": "1" * 33})
        call = await s.incoming()
        out = await s.settle(api.call(me, "call.dtmf", {"digits": "4 2"}))
        assert out["uniqueid"] == call.uniqueid and s.sim_channel(call.origin).dtmf == ["4", "2"]
        with pytest.raises(InvalidState, match="no consultation on SIP/1001"):
            await api.call(me, "call.swap")
        await s.settle(api.call(me, "call.transfer", ["1003"]))
        await s.advance(1.5)
        assert (await s.settle(api.call(me, "call.swap")))["uniqueid"] == call.uniqueid
        assert s.control.ops["SIP/1001"].state == "swapped"
        await s.settle(api.call(me, "call.conference"))
        assert s.control.ops["SIP/1001"].state == "conference"
        assert len(s.sim_channel(call.origin).bridge.channels) == 3
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_feature_keys_come_from_the_config(tmp_path: Any) -> None:
    from serverkit import start_demo

    from ucs.config import Config, ConfigError

    with pytest.raises(ConfigError, match="atxfer_swap.*1 to 8 DTMF keys"):
        Config().replace(calls={"atxfer_swap": "*x"})
    server = await start_demo(tmp_path, calls={"atxfer_swap": "#9", "atxfer_threeway": "#8"})
    try:
        keys = server.get_call_control().keys
        assert (keys.swap, keys.threeway) == ("#9", "#8")
    finally:
        await server.service.stopService()
