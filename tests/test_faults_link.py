"""Faults of the AMI link and of Asterisk, on the whole server (issue 8).

The simulated PBX runs on a clock the test advances (see :mod:`faultkit`), so
an outage of 5 s or 60 s of PBX time, with calls ending and starting while
UCS is away, costs the test a few milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from faultkit import Faults, until, wait_event
from serverkit import working_agent
from test_web_api import connect

from ucs import demo
from ucs.api.session import Session
from ucs.constants import AgentStatus
from ucs.events import EVENT_PBX_RESTARTED


async def three_agents(f: Faults) -> dict[int, Session]:
    """agent1 and agent3 READY, agent2 AUX (Lunch)."""
    reg = f.ucs.get_registry()
    sessions = {}
    for n in (1, 2, 3):
        sessions[n] = session = await working_agent(f.ucs, n)
        if n == 2:
            await reg.call(session, "agent.changeStatus", ["AUX", "Lunch"])
    await f.settle()
    return sessions


def status_of(f: Faults, username: str) -> tuple[AgentStatus, str]:
    (agent,) = [a for a in f.ucs.get_agents().all() if a.username == username]
    return agent.status, agent.reason


@pytest.mark.parametrize("outage", [5, 60])
@pytest_twisted.ensureDeferred
async def test_ami_link_dropped_mid_call(tmp_path: Path, outage: int) -> None:
    f = Faults(tmp_path)
    try:
        await f.start()
        sessions = await three_agents(f)
        f.assert_in_step()
        tracker, writer = f.ucs.get_call_tracker(), f.ucs.get_cdr_writer()

        long_call = f.sim.caller_calls("5000", "420777000001", hangup_after=outage + 60)
        await f.advance(3)
        short_call = f.sim.caller_calls("5000", "420777000002", hangup_after=min(3, outage - 1))
        await f.advance(2)
        assert len(tracker.active_calls()) == 2
        assert {c.answered_by for c in tracker.active_calls()} == {"SIP/1001", "SIP/1003"}
        f.assert_in_step()

        await f.cut_link()
        # While UCS is away: the short call ends, agent3 pauses on the phone,
        # a customer starts waiting (nobody is free), another gives up.
        await f.advance(outage - 2)
        f.sim.queue_pause("SIP/1003", True, "", "Coffee")
        waiting = f.sim.caller_calls("5000", "420777000003", hangup_after=5)
        gave_up = f.sim.caller_calls("5000", "420777000004", abandon_after=1)
        await f.advance(2)
        assert short_call.gone and gave_up.gone and not long_call.gone and not waiting.gone
        assert writer.written == 0  # nothing ended as far as UCS knows

        await f.restore_link()
        f.assert_in_step()
        # The call that ended unseen is closed with cause 0, and so is the
        # one that came and went while UCS was away (it never saw it: no CDR).
        assert short_call.linkedid not in {c.uniqueid for c in tracker.active_calls()}
        assert waiting.uniqueid in f.ucs.get_pbx().queues["support"].callers
        # agent3's pause on the phone is followed: AUX with the phone's reason
        assert status_of(f, "agent3") == (AgentStatus.AUX, "Coffee")
        assert status_of(f, "agent1") == (AgentStatus.READY, "")
        assert status_of(f, "agent2") == (AgentStatus.AUX, "Lunch")
        await writer.flushed()
        store = await f.ucs.when_store_open()
        cdr = await store.get_cdr(short_call.linkedid)
        assert cdr is not None and cdr["cause"] == 0 and cdr["disconnected"] is not None
        assert cdr["answered_by"] == "SIP/1003"

        # Life goes on: agent3 back to READY takes the waiting customer.
        reg = f.ucs.get_registry()
        await reg.call(sessions[3], "agent.changeStatus", ["READY"])
        await f.advance(10)
        await f.advance(outage + 60)
        f.assert_in_step()
        assert not tracker.active_calls() and not f.ucs.get_pbx().channels
        await writer.flushed()
        taken = await store.get_cdr(waiting.linkedid)
        assert taken is not None and taken["answered_by"] == "SIP/1003" and taken["cause"] == 3
        assert (await store.get_cdr(long_call.linkedid))["cause"] == 3  # type: ignore[index]
        assert not writer.pending
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_asterisk_restarted_with_agents_ready_and_aux(tmp_path: Path) -> None:
    f = Faults(tmp_path)
    try:
        await f.start()
        await three_agents(f)
        call = f.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await f.advance(3)
        (active,) = f.ucs.get_call_tracker().active_calls()
        assert active.answered_by == "SIP/1001"
        f.assert_in_step()

        # agent2 also works in a WebSocket agent bar (the same agent: it joins, AUX)
        bar = await connect(f.ucs.get_web_service().ws_url)
        joined = await bar.call("login", list(demo.user_of(2)))
        assert joined["state"] == "READY"  # working already: the bar joins at once
        assert (await bar.call("state"))["status"] == "AUX"
        await bar.call("agent.changeStatus", ["READY"])
        await bar.event("agent.status")
        await bar.call("agent.changeStatus", ["AUX", "Lunch"])
        await bar.event("agent.status")
        bar.inbox.clear()

        bus = f.ucs.get_bus()
        restarted = wait_event(bus, EVENT_PBX_RESTARTED)
        ended = wait_event(bus, "call.hangup", lambda call_, args: call_.uniqueid == call.linkedid)
        link = f.ucs.get_pbx_link()
        synced = link.whenSynced()
        f.sim.restart()  # channels hung up, Shutdown, links closed, dynamic members forgotten
        await synced
        await f.settle()
        await until(lambda: f.ucs_members() == f.expected_members())
        f.assert_in_step()
        # memberships back per agent state: READY unpaused, AUX paused with its reason
        assert ("support", "SIP/1001", False, "") in f.sim_members()
        assert ("support", "SIP/1002", True, "Lunch") in f.sim_members()
        assert ("sales", "SIP/1003", False, "") in f.sim_members()
        await restarted
        gone, _ = await ended
        # the bar is told to reload, and its state is the truth: still AUX, no call
        await bar.event("resync")
        truth = await bar.call("state")
        assert (truth["status"], truth["reason"]) == ("AUX", "Lunch")
        assert not truth.get("call") and not truth.get("calls")
        assert gone.disconnected is not None
        assert not f.ucs.get_call_tracker().active_calls()
        await f.ucs.get_cdr_writer().flushed()
        cdr = await (await f.ucs.when_store_open()).get_cdr(call.linkedid)
        assert cdr is not None and cdr["cause"] == gone.cause
        assert status_of(f, "agent1") == (AgentStatus.READY, "")
        assert status_of(f, "agent2") == (AgentStatus.AUX, "Lunch")

        # The agents are back in service: a new call is answered by a READY agent.
        again = f.sim.caller_calls("5000", "420777000002", hangup_after=10)
        await f.advance(3)
        (active,) = f.ucs.get_call_tracker().active_calls()
        assert active.uniqueid == again.linkedid and active.answered_by in {"SIP/1001", "SIP/1003"}
        await f.advance(12)
        f.assert_in_step()
        bar.close()
    finally:
        await f.stop()
        f.close_clock()
