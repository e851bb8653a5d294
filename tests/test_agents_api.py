"""The agents' API methods through the real registry with real sessions:
allowed and refused by session state and role, arguments checked."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_agents_harness import close, sqlite_url, stack_on

from ucs.agents import api as agents_api
from ucs.api.registry import Registry
from ucs.api.session import Session
from ucs.constants import SessionState
from ucs.error import InvalidDataInput, InvalidState, PermissionDenied


@pytest_twisted.ensureDeferred
async def test_agent_methods_by_state_and_role(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        registry = Registry()
        agents_api.register(registry, agents)
        alice_user, sue_user = s.user("alice"), s.user("sue")
        await agents.login(alice_user, s.line("SIP/1001"))
        await s.settle()
        alice = Session("sid-alice", user=alice_user, state=SessionState.READY, line=s.line("SIP/1001"))
        pairing = Session("sid-alice-2", user=alice_user, state=SessionState.IDENTIFY)
        sue = Session("sid-sue", user=sue_user, state=SessionState.IDENTIFY)
        nobody = Session("sid-anon")

        me = await registry.call(alice, "agent.changeStatus", ["AUX", "Lunch"])
        assert (me["status"], me["reason"], me["username"]) == ("AUX", "Lunch", "alice")
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        me = await registry.call(alice, "agent.changeStatus", {"status": "READY"})
        assert me["status"] == "READY"
        me = await registry.call(alice, "agent.suspend", {"queue": 2})
        assert me["queues"][2]["suspended"] is True and me["suspended"] == [2]
        me = await registry.call(alice, "agent.resume", [2])
        assert me["queues"][2]["suspended"] is False
        state = await registry.call(alice, "agent.state")
        assert state["status"] == "READY" and state["line"]["device"] == "SIP/1001"
        assert set(state["queues"][1]) >= {"answered", "priorities", "queue_id", "ringtime", "supervisor", "suspended",
                                           "suspendtime", "talktime", "team_id", "transferred",
                                           "transferred_external", "type", "unanswered"}
        assert state["queues"][2]["priorities"] == 2

        # session state: the agent's methods need a paired, confirmed phone (READY)
        for method, args in (("agent.changeStatus", ["READY"]), ("agent.suspend", [1]), ("agent.resume", [1]),
                             ("agent.state", None)):
            with pytest.raises(InvalidState, match="allowed in READY; this session is in IDENTIFY"):
                await registry.call(pairing, method, args)
        # role: supervisors only
        with pytest.raises(PermissionDenied, match="needs the supervisor role"):
            await registry.call(alice, "agents.list")
        with pytest.raises(PermissionDenied, match="needs the supervisor role"):
            await registry.call(alice, "agents.changeStatus", [alice_user.id, "AUX", "Lunch"])
        with pytest.raises(PermissionDenied):
            await registry.call(nobody, "agent.state")

        # arguments
        with pytest.raises(InvalidDataInput) as e:
            await registry.call(alice, "agent.changeStatus", ["SLEEPING"])
        assert "give OFFLINE, READY, AUX or ACW" in e.value.message["status"]
        with pytest.raises(InvalidDataInput, match="AUX needs a reason"):
            await registry.call(alice, "agent.changeStatus", ["AUX"])
        with pytest.raises(InvalidDataInput) as e:
            await registry.call(alice, "agent.suspend", ["sales"])
        assert "queue" in e.value.message
        with pytest.raises(InvalidDataInput, match="not one of alice's queues"):
            await registry.call(alice, "agent.suspend", [99])

        # a supervisor sees the agents of the queues they supervise, and changes one
        registry.scope.directory = s.directory
        listed = await registry.call(sue, "agents.list")
        assert listed == []  # sue supervises no queue yet
        with pytest.raises(PermissionDenied, match="user .* \\(alice\\) is in no queue or team you supervise"):
            await registry.call(sue, "agents.changeStatus", [alice_user.id, "AUX", "Meeting"])
        await s.directory.edit("users", sue_user.id, {"queues": {"2": {"supervisor": True}}})  # sales
        listed = await registry.call(sue, "agents.list")
        assert [a["username"] for a in listed] == ["alice"]
        changed = await registry.call(sue, "agents.changeStatus", {"user_id": alice_user.id, "status": "AUX",
                                                                   "reason": "Meeting"})
        assert (changed["status"], changed["reason"]) == ("AUX", "Meeting")
        assert s.status("alice")[1] == "Meeting"
        with pytest.raises(InvalidState, match="is not logged in as an agent"):
            await registry.call(sue, "agents.changeStatus", [sue_user.id, "READY"])

        # a user whose session is READY but who is not an agent (the agent logged out elsewhere)
        await agents.logout(alice_user.id)
        with pytest.raises(InvalidState, match="not logged in as an agent"):
            await registry.call(alice, "agent.state")
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_plugins_read_agents_both_ways(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        (agent,) = agents.all()
        assert agents.get(agent.id) is agent
        for key in ("status", "reason", "id", "username", "displayname", "line", "queues", "readytime", "auxtimes"):
            assert key in agent
        assert agent["id"] == agent.id and agent["username"] == "alice" and agent["line"] is agent.line
        assert agent["displayname"] == "Alice Agent" and agent.get("nothing", 5) == 5
        d = agent.to_dict()
        assert d["status"] == "READY" and d["id"] == agent.id and "password_hash" not in d
        assert set(d) >= {"acwtime", "auxtime", "auxtimes", "data", "displayname", "email", "external_id",
                          "firstname", "group_id", "id", "idletime", "in_calls_answered", "in_calls_unanswered",
                          "in_ringtime", "in_talktime", "lastname", "lines", "locale", "number",
                          "out_calls_answered", "out_calls_unanswered", "out_ringtime", "out_talktime", "queues",
                          "readytime", "ringtime", "status", "superuser", "talktime", "transferred",
                          "transferred_external"}
        assert set(agent["queues"]) == {1, 2} and agent.queues[2]["priorities"] == 2
    finally:
        await close(s)
