"""After a reconnect the bar's ``state`` shows every call of its phone as that phone
sees it, and call events carry what this phone's timer counts from (issue 16,
points 2 and 7): over the real WebSocket, against the whole server in demo mode
with the simulated PBX (tests/test_web_api.py's harness).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_web_api import DID_1001, Client, call_on, connect, ready_agent, start, ws_url
from twisted.internet import defer

from ucs.server import UCSServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UCSServer]:
    srv = pytest_twisted.blockon(defer.ensureDeferred(start(tmp_path)))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


async def cut_and_resume(bar: Client, server: UCSServer) -> tuple[Client, dict[str, Any]]:
    """The network goes (no close frame); the bar comes back on a new socket, takes
    its session back and loads its state, as operator.js does."""
    sid = bar.hello["sid"]
    assert bar.proto is not None
    bar.proto.dropConnection(abort=True)
    await bar.closed
    again = await connect(ws_url(server))
    await again.call("session.resume", [sid])
    again.hello["sid"] = sid  # its session now (the one its hello named is gone)
    return again, await again.call("state")


async def customer_with_agent_1(server: UCSServer) -> tuple[Client, Client, dict[str, Any]]:
    """Agents 1 and 2 READY; a customer calls agent 1's direct number and agent 1
    answers: the bars and agent 1's ``call.connect``."""
    sim = server.get_demo_pbx().sim
    sim.dialplan.add("from-carrier", DID_1001, [("Dial", "SIP/1001,30,tT")])
    a1 = await ready_agent(server, 1)
    a2 = await ready_agent(server, 2)
    sim.caller_calls(DID_1001, "420777123456", "Customer")
    ring = (await a1.event("call.ringing"))["data"]
    assert ring["ringing_since"] is not None and ring["answered_at"] is None and ring["held_since"] is None
    await a1.call("call.answer")
    connect_ = (await a1.event("call.connect"))["data"]
    assert connect_["answered_at"] >= ring["ringing_since"]
    return a1, a2, connect_


@pytest_twisted.ensureDeferred
async def test_after_a_cut_the_consulted_agent_sees_itself_talking_and_the_holder_the_hold(server: UCSServer) -> None:
    a1, a2, first = await customer_with_agent_1(server)
    await a1.call("call.transfer", ["1002"])
    ring = (await a2.event("call.ringing"))["data"]
    assert ring["state"] == 2 and ring["ringing_since"] >= first["answered_at"] and ring["answered_at"] is None
    hold = (await a1.event("call.hold"))["data"]
    assert hold["state"] == 5 and hold["held_since"] >= first["answered_at"]
    assert hold["answered_at"] == first["answered_at"]  # agent 1's own answer
    await a2.call("call.answer")
    talk = (await a2.event("call.connect"))["data"]
    assert talk["state"] == 3 and talk["held_since"] is None
    assert talk["answered_at"] >= ring["ringing_since"] > first["answered_at"]  # its own answer, not the caller's first
    call = call_on(server, "SIP/1002")
    assert call.state == 5  # the call as a whole: the caller waits on hold

    # Agent 2's socket is cut: back, it still talks (not "On hold / Resume").
    b2, state2 = await cut_and_resume(a2, server)
    assert [c["uniqueid"] for c in state2["calls"]] == [call.uniqueid]
    mine = state2["calls"][0]
    assert mine["state"] == 3 and mine["number"] == "420777123456"
    assert mine["answered_at"] == talk["answered_at"] and mine["held_since"] is None
    assert mine["ringing_since"] == ring["ringing_since"] and mine["cause"] == -1
    assert state2["call"] == mine  # seed 002's call: the phone's active one

    # Agent 1's too: it holds the caller, since the hold began.
    b1, state1 = await cut_and_resume(a1, server)
    (held,) = state1["calls"]
    assert held["state"] == 5 and held["held_since"] == hold["held_since"]
    assert held["answered_at"] == first["answered_at"]
    assert state1["call"] == held

    # The transfer finishes: agent 2's call goes on, its timer still from its own answer.
    await b1.call("call.finishTransfer")
    await b1.event("call.hangup")
    b3, state3 = await cut_and_resume(b2, server)
    (after,) = state3["calls"]
    assert after["state"] == 3 and after["answered_at"] == talk["answered_at"]
    for c in (b1, b3):
        c.close()


@pytest_twisted.ensureDeferred
async def test_after_a_cut_a_phone_rung_by_a_blind_transfer_is_ringing(server: UCSServer) -> None:
    a1, a2, first = await customer_with_agent_1(server)
    await a1.call("call.blindTransfer", ["1002"])
    ring = (await a2.event("call.ringing"))["data"]
    assert ring["state"] == 2 and ring["ringing_since"] >= first["answered_at"]
    await a1.event("call.hangup")
    b2, state = await cut_and_resume(a2, server)
    (mine,) = state["calls"]
    assert mine["state"] == 2, mine["state"]  # not "Suspended"
    assert mine["ringing_since"] == ring["ringing_since"] and mine["answered_at"] is None
    assert state["call"] == mine
    # … and it can be answered from there.
    await b2.call("call.answer")
    talk = (await b2.event("call.connect"))["data"]
    assert talk["state"] == 3 and talk["answered_at"] >= ring["ringing_since"]
    b2.close()
    a1.close()


@pytest_twisted.ensureDeferred
async def test_state_without_a_call_has_an_empty_list(server: UCSServer) -> None:
    a1 = await ready_agent(server, 1)
    state = await a1.call("state")
    assert state["calls"] == [] and state["call"] is None
    a1.close()
