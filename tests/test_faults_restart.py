"""UCS restarted under a running PBX (issue 8): the whole server stopped and a
new one started on the same store and the same simulated Asterisk.

Agents, their statuses, today's statistics, the paired phones and the calls
in progress (whose CDRs are still to be written) come back; an agent bar
that reconnects gets the truth from ``state``.  Also the graceful shutdown:
plugins stopped, CDRs flushed, WebSocket sessions closed with a reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from faultkit import Faults, until
from serverkit import working_agent
from test_web_api import CallError, Client, connect

from ucs import demo
from ucs.constants import AgentStatus


async def bar(url: str, n: int, **options: Any) -> Client:
    """Demo agent ``n``'s agent bar: logged in and working (joins an agent who works already)."""
    c = await connect(url)
    if options:
        await c.call("session.options", options)
    joined = await c.call("login", list(demo.user_of(n)))
    if joined["state"] != "READY":
        await c.call("identifier", [demo.line_of(n)[1]])
        await c.call("provision")
    return c


def agents_now(f: Faults) -> dict[str, tuple[AgentStatus, str, str]]:
    return {a.username: (a.status, a.reason, a.device) for a in f.ucs.get_agents().all()}


@pytest_twisted.ensureDeferred
async def test_ucs_restarted_agents_calls_and_bars_come_back(tmp_path: Path) -> None:
    f = Faults(tmp_path)
    try:
        await f.start()
        ws_port = f.ucs.get_web_service().port
        f.sections["web"] = {"port": ws_port}  # the next UCS listens where the bars reconnect
        url = f.ucs.get_web_service().ws_url

        # agent1 READY in a bar that logs out when its tab closes (SSO style),
        # agent2 AUX (Lunch) in a bar, agent3 READY through the API only.
        bar1 = await bar(url, 1, logoutOnClose=True)
        bar2 = await bar(url, 2)
        await bar2.call("agent.changeStatus", ["AUX", "Lunch"])
        await working_agent(f.ucs, 3)
        await f.settle()

        # one call done (statistics), one in progress on agent1's phone
        f.sim.caller_calls("5000", "420777000001", hangup_after=2)
        await f.advance(5)
        ongoing = f.sim.caller_calls("5000", "420777000002", hangup_after=120)
        await f.advance(3)
        (call,) = f.ucs.get_call_tracker().active_calls()
        assert call.uniqueid == ongoing.linkedid
        first_answerer = call.answered_by
        f.assert_in_step()
        await f.ucs.get_cdr_writer().flushed()
        before = agents_now(f)
        assert before["agent2"][:2] == (AgentStatus.AUX, "Lunch")
        stats_before = {a.username: f.ucs.get_agents().stats_of(a.user.id).to_dict()
                        for a in f.ucs.get_agents().all()}
        assert sum(s["in_calls_answered"] for s in stats_before.values()) == 1
        sid1 = bar1.hello["sid"]

        # UCS stops: every bar sees its socket closed with a reason
        await f.stop()
        for b in (bar1, bar2):
            _clean, code, reason = await b.closed
            assert code == 1001 and reason == "UCS is shutting down"
        # the PBX goes on meanwhile
        await f.advance(10, settle=False)
        assert not ongoing.gone

        await f.start()
        f.assert_in_step()
        assert agents_now(f) == before
        for a in f.ucs.get_agents().all():
            after = f.ucs.get_agents().stats_of(a.user.id).to_dict()
            was = stats_before[a.username]
            assert after["in_calls_answered"] == was["in_calls_answered"], a.username
            assert after["readytime"] >= was["readytime"] and after["auxtime"] >= was["auxtime"]
        (again,) = f.ucs.get_call_tracker().active_calls()
        assert again.uniqueid == ongoing.linkedid and again.answered_by == first_answerer

        # The bar reconnects: its session did not survive the restart, it logs in
        # again, joins the agent who works already, and `state` is the truth.
        re1 = await connect(url)
        try:
            await re1.call("session.resume", [sid1])
            raise AssertionError("a session survived the restart")
        except CallError as e:
            assert e.error["code"] == 404
        await re1.call("login", list(demo.user_of(1)))
        truth = await re1.call("state")
        assert truth["status"] == "READY" and truth["device"]["device"] == "SIP/1001"
        re2 = await bar(url, 2)
        truth2 = await re2.call("state")
        assert (truth2["status"], truth2["reason"]) == ("AUX", "Lunch")
        in_call = truth if first_answerer == "SIP/1001" else await (await bar(url, 3)).call("state")
        assert in_call["call"]["uniqueid"] == ongoing.linkedid and in_call["call"]["state"] == 3

        # The call in progress still gets its CDR when it ends.
        await f.advance(120)
        assert ongoing.gone
        writer = f.ucs.get_cdr_writer()
        await writer.flushed()
        cdr = await (await f.ucs.when_store_open()).get_cdr(ongoing.linkedid)
        assert cdr is not None and cdr["cause"] == 3 and cdr["answered_by"] == first_answerer
        agents = f.ucs.get_agents()
        await until(lambda: sum(agents.stats_of(a.user.id).to_dict()["in_calls_answered"] for a in agents.all()) == 2)
        f.assert_in_step()
        re1.close()
        re2.close()
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_after_a_restart_an_agent_whose_bar_never_comes_back_stops_taking_calls(tmp_path: Path) -> None:
    """The restored agents' bars had their sessions in the stopped process: one that comes back
    and logs in keeps working; one that never does is logged out of its queues after
    ``[web] resume_window``, as a bar gone for good is (``[agents] session_expiry``) -- not left
    READY with queue calls ringing a phone nobody watches."""
    f = Faults(tmp_path)
    try:
        await f.start()
        f.sections["web"] = {"port": f.ucs.get_web_service().port, "resume_window": 1.0}
        url = f.ucs.get_web_service().ws_url
        bars = [await bar(url, 1), await bar(url, 2)]
        await f.settle()
        assert {a.username for a in f.ucs.get_agents().all()} == {"agent1", "agent2"}
        await f.stop()
        for b in bars:
            await b.closed

        await f.start()
        assert {a.username: a.status for a in f.ucs.get_agents().all()} == {
            "agent1": AgentStatus.READY, "agent2": AgentStatus.READY}
        back = await bar(url, 1)  # agent1's bar comes back; agent2's never does
        agents = f.ucs.get_agents()
        await until(lambda: agents.get(demo_user_id(f, 2)) is None, 10)
        assert agents.get(demo_user_id(f, 1)) is not None and agents.get(demo_user_id(f, 1)).status == AgentStatus.READY
        await f.settle()
        members = {iface for q in f.sim.queues.values() for iface in q.members}
        assert "SIP/1001" in members and "SIP/1002" not in members  # out of every queue on Asterisk
        back.close()
    finally:
        await f.stop()
        f.close_clock()


def demo_user_id(f: Faults, n: int) -> int:
    user = f.ucs.get_directory().user_by_username(demo.user_of(n)[0])
    assert user is not None
    return user.id
