"""A restart of UCS loses nothing: logged-in agents come back with their paired
line, status, suspensions, wrap-up and today's figures (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest_twisted
from test_agents_harness import close, stack_on

from ucs.constants import AgentStatus
from ucs.events import EVENT_AGENT_STATUS

READY, AUX, ACW = AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW


@pytest_twisted.ensureDeferred
async def test_ucs_restart_brings_agents_states_and_figures_back(store_url: str) -> None:
    s = await stack_on(store_url)
    try:
        agents = await s.start(acw_seconds=20)
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        bob = await agents.login(s.user("bob"), s.line("SIP/1002"))
        await s.settle()
        await agents.change_status(bob.id, "AUX", "Lunch")
        await agents.suspend(alice.id, 2)
        s.sim.phone("SIP/1001").set_behaviour(answer_after=4)
        s.sim.caller_calls("5000", "420777000001", hangup_after=50)
        await s.advance(60)  # alice rang 4 s, talked 50, is 6 s into wrap-up
        assert alice.status == ACW
        before = {a.username: a.to_dict() for a in agents.all()}
        assert before["alice"]["talktime"] == 50 and before["alice"]["acwtime"] == 6
        members = s.sim_members()
        published = len(s.named(EVENT_AGENT_STATUS))

        agents = await s.restart_ucs(acw_seconds=20)
        assert [a.username for a in agents.all()] == ["alice", "bob"]
        alice, bob = agents.all()
        assert (alice.status, alice.line.device, alice.suspended) == (ACW, "SIP/1001", {2})
        assert (bob.status, bob.reason, bob.line.device) == (AUX, "Lunch", "SIP/1002")
        assert {a.username: a.to_dict() for a in agents.all()} == before
        assert s.sim_members() == members == s.ucs_members()
        assert len(s.named(EVENT_AGENT_STATUS)) == published

        # the wrap-up goes on where it was: 14 s left
        await s.advance(13.5)
        assert alice.status == ACW
        await s.advance(0.5)
        assert alice.status == READY and alice.to_dict()["acwtime"] == 20
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", True, "suspended")}

        # logged out agents do not come back; their figures of the day stay
        await agents.logout(bob.id)
        await s.advance(10)
        agents = await s.restart_ucs()
        assert [a.username for a in agents.all()] == ["alice"]
        assert agents.stats_of(s.user("bob").id).to_dict()["auxtimes"] == {"Lunch": 74}
        figures = agents.all()[0].to_dict()
        assert (figures["readytime"], figures["idletime"]) == (54 + 10, 10)  # ringing and talking are READY, not idle
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_logout_while_asterisk_is_away_removes_memberships_later(store_url: str) -> None:
    s = await stack_on(store_url)
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        await s.client.stopService()
        await agents.logout(alice.id)  # nobody can tell Asterisk now
        assert agents.get(alice.id) is None
        assert s.sim_members("SIP/1001") == {("support", "SIP/1001", False, ""), ("sales", "SIP/1001", False, "")}
        agents = await s.restart_ucs()  # UCS restarts too, before Asterisk is reachable again
        await s.settle()
        assert s.sim_members("SIP/1001") == set() and s.ucs_members() == set()
    finally:
        await close(s)
