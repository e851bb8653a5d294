"""Wrap-up (ACW) follows the agent's own customer calls, not a colleague's consultation.

Agent 1 answers a queue caller and consults agent 2 (``call.transfer``, an attended
transfer): the caller waits on hold while the two talk.  Agent 2 only took an internal
call from a colleague: whatever happens to the caller, agent 2 gets no wrap-up for it,
and its queues are not paused "ACW" while it is consulted.  Once the transfer completes
the caller is agent 2's call: paused ahead of its wrap-up, ACW when it ends.  Agent 1
keeps its wrap-up as configured.

The whole server on a ``Clock`` (:func:`test_agents_wrapup.whole_server`), the simulated
Asterisk over AMI TCP, the agents' bars over WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_twisted
from test_agents_wrapup import Whole, whole_server
from test_web_api import Client, ready_agent

from ucs.agents import Agent
from ucs.constants import AgentStatus

READY, ACW = AgentStatus.READY, AgentStatus.ACW
PAUSED_ACW = {("support", True, "ACW"), ("sales", True, "ACW")}
FREE = {("support", False, ""), ("sales", False, "")}
#: Agent 2's queues: Support suspended by the test, so that the queue rings agent 1 only.
TWO_FREE = {("support", True, "suspended"), ("sales", False, "")}
TWO_PAUSED_ACW = {("support", True, "suspended"), ("sales", True, "ACW")}


def members(w: Whole, device: str) -> set[tuple[str, bool, str]]:
    """The agent's memberships as the simulated Asterisk has them: (queue, paused, reason)."""
    return {(q.name, m.paused, m.reason if m.paused else "")
            for q in w.sim.queues.values() for m in q.members.values() if m.iface == device}


def agent(w: Whole, device: str) -> Agent:
    return next(a for a in w.server.get_agents().all() if a.device == device)


async def statuses(bar: Client) -> list[str]:
    """Every status the bar was told, in order (the pushes so far have all arrived)."""
    await bar.call("session.info")
    return [m["data"]["status"] for m in bar.inbox if m["event"] == "agent.status"]


async def consulting(w: Whole) -> tuple[Client, Client, Agent, Agent]:
    """Agent 1 talks to a customer of queue Support and consults agent 2, who answered."""
    bar1 = await ready_agent(w.server, 1)
    bar2 = await ready_agent(w.server, 2)
    one, two = agent(w, "SIP/1001"), agent(w, "SIP/1002")
    w.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    await bar2.call("agent.suspend", [support_id(w)])
    w.sim.caller_calls("5000", "420777000001", "Jana Novak")
    await w.advance(2)
    assert one.busy and not two.busy
    w.sim.phone("SIP/1002").set_behaviour(answer_after=1)
    await bar1.call("call.transfer", ["1002"])
    await w.advance(2)
    assert w.server.get_call_control().ops["SIP/1001"].state == "consulting"
    assert two.busy
    return bar1, bar2, one, two


@asynccontextmanager
async def consultation(tmp_path: Path) -> AsyncIterator[tuple[Whole, Client, Client, Agent, Agent]]:
    """The whole server (wrap-up of 10 s), agent 1 consulting agent 2 about a customer's queue
    call (:func:`consulting`); the bars closed and the server stopped at the end."""
    w = await whole_server(tmp_path, agents={"acw_seconds": 10})
    try:
        bar1, bar2, one, two = await consulting(w)
        try:
            yield w, bar1, bar2, one, two
        finally:
            bar1.close()
            bar2.close()
    finally:
        await w.server.service.stopService()


def support_id(w: Whole) -> int:
    queue = w.server.get_directory().queue_by_asterisk_name("support")
    assert queue is not None
    return queue.id


@pytest_twisted.ensureDeferred
async def test_the_consulted_agent_gets_no_wrap_up_when_the_caller_hangs_up(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, one, two):
        # consulted: an internal call, so agent 2's queues are not paused ahead of a wrap-up
        assert (two.status, members(w, "SIP/1002")) == (READY, TWO_FREE)
        assert members(w, "SIP/1001") == PAUSED_ACW  # agent 1's call: paused ahead of its wrap-up

        w.sim.trunk().hangup()  # the customer gives up while the agents talk
        await w.advance(1)
        assert (one.status, members(w, "SIP/1001")) == (ACW, PAUSED_ACW)
        assert (two.status, members(w, "SIP/1002")) == (READY, TWO_FREE)
        assert w.sim.phone("SIP/1001").channels and w.sim.phone("SIP/1002").channels  # they talk on

        await w.advance(5)
        w.sim.phone("SIP/1002").hangup()  # the consultation ends: still no wrap-up for agent 2
        await w.advance(1)
        assert (two.status, members(w, "SIP/1002"), two.held) == (READY, TWO_FREE, set())
        await w.advance(5)  # agent 1's wrap-up runs its 10 s from the customer's hang-up
        assert (one.status, members(w, "SIP/1001")) == (READY, FREE)
        assert await statuses(bar1) == ["ACW", "READY"]
        assert await statuses(bar2) == []


@pytest_twisted.ensureDeferred
async def test_a_consultation_that_ends_without_a_transfer_is_no_wrap_up_for_the_consulted(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, one, two):
        await w.advance(3)
        await bar1.call("call.hangup")  # agent 1 ends the consultation: back with the customer
        await w.advance(1)
        assert not w.sim.phone("SIP/1002").channels and w.sim.phone("SIP/1001").channels
        assert (two.status, members(w, "SIP/1002"), two.held) == (READY, TWO_FREE, set())
        assert one.status == READY and members(w, "SIP/1001") == PAUSED_ACW

        await w.advance(5)
        w.sim.trunk().hangup()  # the customer's call ends: agent 1's wrap-up, as configured
        await w.advance(1)
        assert (one.status, two.status) == (ACW, READY)
        await w.advance(10)
        assert (one.status, members(w, "SIP/1001")) == (READY, FREE)
        assert await statuses(bar1) == ["ACW", "READY"]
        assert await statuses(bar2) == []


@pytest_twisted.ensureDeferred
async def test_a_completed_transfer_makes_the_call_the_consulted_agents_own(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, one, two):
        assert (two.status, members(w, "SIP/1002")) == (READY, TWO_FREE)
        await bar1.call("call.finishTransfer")
        await w.advance(1)
        # agent 1 handed the call over: its wrap-up; agent 2 talks with the customer now,
        # paused ahead of a wrap-up of its own, its status READY while it talks
        assert not w.sim.phone("SIP/1001").channels and w.sim.phone("SIP/1002").channels
        assert (one.status, members(w, "SIP/1001")) == (ACW, PAUSED_ACW)
        assert (two.status, members(w, "SIP/1002")) == (READY, TWO_PAUSED_ACW)

        await w.advance(5)
        w.sim.trunk().hangup()
        await w.advance(1)
        assert (two.status, members(w, "SIP/1002")) == (ACW, TWO_PAUSED_ACW)
        wrapup = (await bar2.call("state"))["user"]["wrapup"]
        assert wrapup["queue_id"] == support_id(w)  # the customer's queue call
        await w.advance(10)
        assert (one.status, two.status) == (READY, READY)
        assert members(w, "SIP/1002") == TWO_FREE
        assert await statuses(bar1) == ["ACW", "READY"]
        assert await statuses(bar2) == ["ACW", "READY"]


@pytest_twisted.ensureDeferred
async def test_an_agent_who_joins_a_conference_with_the_customer_gets_wrap_up(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, one, two):
        await bar1.call("call.conference")
        await w.advance(1)
        # all three talk: agent 2 talks with the customer, the call is agent 2's too
        assert (two.status, members(w, "SIP/1002")) == (READY, TWO_PAUSED_ACW)
        await bar1.call("call.hangup")  # agent 1 leaves the conference
        await w.advance(1)
        assert one.status == ACW and two.status == READY
        await w.advance(3)
        w.sim.trunk().hangup()
        await w.advance(1)
        assert two.status == ACW
        assert await statuses(bar2) == ["ACW"]


@pytest_twisted.ensureDeferred
async def test_an_agent_who_calls_a_queue_is_its_customer_and_gets_no_wrap_up(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 10})
    try:
        bar1 = await ready_agent(w.server, 1)
        bar2 = await ready_agent(w.server, 2)
        one, two = agent(w, "SIP/1001"), agent(w, "SIP/1002")
        await bar2.call("agent.suspend", [support_id(w)])
        w.sim.dialplan.add("internal", "5000", [("Goto", "from-carrier,5000,1")])  # phones reach the queue
        w.sim.phone("SIP/1001").set_behaviour(answer_after=1)
        w.sim.phone("SIP/1002").dial("5000")  # agent 2 calls queue Support; agent 1 answers
        await w.advance(3)
        assert one.busy and two.busy
        assert members(w, "SIP/1001") == PAUSED_ACW and members(w, "SIP/1002") == TWO_FREE
        w.sim.phone("SIP/1002").hangup()
        await w.advance(1)
        assert (one.status, two.status) == (ACW, READY)
        assert await statuses(bar2) == []
        bar1.close()
        bar2.close()
    finally:
        await w.server.service.stopService()
