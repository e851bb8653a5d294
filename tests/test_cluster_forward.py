"""Issue 20: API calls made on a standby are carried out by the AMI owner.

Two whole ``UCSServer``s with ``[cluster]`` in one process (real PostgreSQL,
real NATS, the simulated Asterisk over real AMI TCP), an agent bar on the
*standby* over a real WebSocket: logging in, status changes, a queue
suspension, answering and holding a call all reach the simulator through the
owner; the standby's own agents service does nothing (no agent, no AMI);
rights are still refused on the standby; the owner's errors come back with
their code and message; a request made while no node serves commands waits
and is carried out once one does (the 503 after ``takeover_wait``:
test_cluster_takeover_wait); after the owner's election session dies, the other node restores the
agents from the store and Asterisk still has their memberships and pauses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import threads

from clusterkit import cluster_env
from serverkit import until, working_agent
from test_cluster_node import _terminate, ami_up
from test_web_api import CallError, connect
from ucs import demo
from ucs.constants import SessionState
from ucs.server import UCSServer
from ucs.sim.service import SimService


def sim_member(sim: SimService, queue: str, interface: str) -> Any:
    """The queue member as the simulated Asterisk has it (``None``: not a member)."""
    return sim.sim.queues[queue].members.get(interface)


@pytest_twisted.ensureDeferred
async def test_a_bar_on_the_standby_works_through_the_owner_and_keeps_its_agent_across_failover(
        tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, sim = env.store, env.sim
        bars = env.clients
        a = await env.start(tmp_path, "node-a")
        node_a: Any = a.get_cluster()
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)  # in the store before b loads its directory
        b = await env.start(tmp_path, "node-b")
        node_b: Any = b.get_cluster()
        await node_b.elector.when("standby")
        await until(lambda: node_b.health()["term"] == node_a.health()["term"], 10)

        # Agent 1 logs in through a bar on the standby: the owner's agents log them in, and the
        # simulated Asterisk has their phone in the queue; the standby's agents did nothing.
        username, password = demo.user_of(1)
        _, identifier, _ = demo.line_of(1)
        bar = await connect(b.get_web_service().ws_url)
        bars.append(bar)
        await bar.call("login", [username, password])
        await bar.call("identifier", [identifier])
        await bar.call("provision")
        user = b.get_directory().user_by_username(username)
        assert user is not None
        await until(lambda: a.get_agents().get(user.id) is not None
                    and a.get_agents().get(user.id).status.name == "READY", 10)
        queues = {q.asterisk_name for q, _ in a.get_directory().queues_of(user)}
        assert queues and all(sim_member(sim, q, "SIP/1001") is not None for q in queues)
        assert b.get_agents().all() == [] and not b.get_agents().running and not ami_up(b)

        # A status change from the standby's bar: carried out on Asterisk by the owner.
        agent = await bar.call("agent.changeStatus", ["AUX", "Break"])
        assert agent["status"] in ("AUX", 2) and agent["id"] == user.id
        assert a.get_agents().get(user.id).status.name == "AUX"
        assert all(sim_member(sim, q, "SIP/1001").paused for q in queues)

        # The owner's refusal comes back as the owner words it (same code and message).
        with pytest.raises(CallError) as refused:
            await bar.call("agent.changeStatus", ["AUX", "No such reason"])
        local = a.get_sessions().create()
        local.user, local.line, local.state = user, a.get_directory().lines_of(user)[0], SessionState.READY
        with pytest.raises(Exception) as on_owner:
            await a.get_registry().call(local, "agent.changeStatus", ["AUX", "No such reason"])
        assert refused.value.error["code"] == on_owner.value.code == 400  # type: ignore[attr-defined]
        assert refused.value.error["message"] == str(on_owner.value)

        # Suspending one queue from the standby: that queue's member is paused "suspended".
        await bar.call("agent.changeStatus", ["READY"])
        assert not any(sim_member(sim, q, "SIP/1001").paused for q in queues)
        (queue_id, queue_name) = next((q.id, q.asterisk_name) for q, _ in a.get_directory().queues_of(user))
        agent = await bar.call("agent.suspend", [queue_id])
        assert queue_id in a.get_agents().get(user.id).suspended
        assert sim_member(sim, queue_name, "SIP/1001").paused
        await bar.call("agent.resume", [queue_id])
        assert not sim_member(sim, queue_name, "SIP/1001").paused

        # Rights are checked on the standby, which never asks the owner: an agent is not a supervisor.
        with pytest.raises(CallError) as denied:
            await bar.call("agents.changeStatus", [user.id, "AUX", "Break"])
        assert denied.value.error["code"] == 403
        assert a.get_agents().get(user.id).status.name == "READY"

        # A customer calls the queue; the agent answers and holds from the standby's bar.
        sim.sim.phone("SIP/1001").set_behaviour(remote_answer=True)
        sim.sim.caller_calls("5000", "420777000001", "Customer")
        await until(lambda: sim.sim.phone("SIP/1001").ringing is not None, 10)
        await until(lambda: any(not c.connected for c in a.get_call_tracker().active_calls()), 10)
        call = await bar.call("call.answer")
        await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
        assert call["uniqueid"] in {c.uniqueid for c in a.get_call_tracker().active_calls()}
        held = await bar.call("call.tribute")
        assert held["uniqueid"] == call["uniqueid"]
        # the caller hears music on hold: Asterisk said so to the owner's model
        assert any(ch.on_hold for ch in a.get_pbx().channels.values())
        await bar.call("call.unhold")
        await bar.call("call.hangup")
        await until(lambda: not a.get_call_tracker().active_calls(), 10)

        # Click-to-dial from the standby's bar: the owner has Asterisk ring the agent's phone,
        # which answers, and then the number (the other phone) rings.
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        dialled = await bar.call("call.dial", ["1002"])
        assert dialled["uniqueid"]
        await until(lambda: sim.sim.phone("SIP/1002").ringing is not None, 10)
        await bar.call("call.hangup")
        await until(lambda: not a.get_call_tracker().active_calls(), 10)

        # No node answering commands (as while a take-over is in progress): the bar's request
        # waits on the standby, and is carried out once an owner serves commands again.
        assert node_a.serving and not node_b.serving
        server = node_a._command_server
        await server.stop()
        assert not node_a.serving
        asked = bar.request("agent.changeStatus", ["AUX", "Break"])
        await until(lambda: node_b.forwarder.waiting == 1, 10)  # NATS said "no responders"
        assert a.get_agents().get(user.id).status.name != "AUX"  # nothing carried out meanwhile
        await server.serve()
        reply = await bar.wait(lambda: bar.replies.pop(asked, None), 10)
        assert reply["result"]["status"] in ("AUX", 2) and a.get_agents().get(user.id).status.name == "AUX"
        assert all(sim_member(sim, q, "SIP/1001").paused for q in queues)
        assert node_b.forwarder.waiting == 0
        await bar.call("agent.changeStatus", ["READY"])

        # The agent goes AUX, then the owner's election session dies: b takes over, restores
        # the agent from the store (status kept) and Asterisk keeps the membership and pause.
        await bar.call("agent.changeStatus", ["AUX", "Break"])
        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b) and b.get_agents().get(user.id) is not None, 15)
        restored = b.get_agents().get(user.id)
        assert (restored.status.name, restored.reason, restored.device) == ("AUX", "Break", "SIP/1001")
        await until(lambda: not a.get_agents().running and a.get_agents().all() == [], 10)
        assert all(sim_member(sim, q, "SIP/1001") is not None and sim_member(sim, q, "SIP/1001").paused
                   for q in queues)
        # The bar (now on the owner) and the new standby both still work.
        await bar.call("agent.changeStatus", ["READY"])
        assert not any(sim_member(sim, q, "SIP/1001").paused for q in queues)
        await node_a.elector.when("standby")
        await until(lambda: node_a.commands is not None, 5)
        # The new owner answers commands once its term has begun (after its agents' restore).
        await node_b.whenServing()
        assert node_b.serving and not node_a.serving
        other = a.get_sessions().create()
        other.user, other.line, other.state = user, a.get_directory().lines_of(user)[0], SessionState.READY
        done = await a.get_registry().call(other, "agent.changeStatus", ["AUX", "Break"])
        assert done["status"] in ("AUX", 2)
        assert b.get_agents().get(user.id).status.name == "AUX"
        assert all(sim_member(sim, q, "SIP/1001").paused for q in queues)

        # A second tab on the new standby: the agent is working (the replica says so), so the
        # login goes straight to READY on that phone; logging out there logs the agent out on
        # the owner, and Asterisk loses the queue members.
        await until(lambda: a.get_agents().get(user.id) is not None
                    and a.get_agents().get(user.id).status.name == "AUX", 10)
        tab = await connect(a.get_web_service().ws_url)
        bars.append(tab)
        logged = await tab.call("login", [username, password])
        assert logged["state"] == "READY" and logged["device"]["device"] == "SIP/1001"
        # A supervisor's team view on the standby shows the owner's agent as the replica has it.
        supervisor = a.get_sessions().create()
        await a.get_registry().call(supervisor, "login", ["supervisor", "supervisor-demo"])
        await a.get_registry().call(supervisor, "supervisor.start")
        team = await a.get_registry().call(supervisor, "supervisor.team")
        row = next(r for r in (team["agents"] if isinstance(team, dict) else team) if r.get("id") == user.id)
        assert (row["status"], row["reason"], row["device"]) == ("AUX", "Break", "SIP/1001")
        await tab.call("logout")
        assert b.get_agents().get(user.id) is None
        assert all(sim_member(sim, q, "SIP/1001") is None for q in queues)


@pytest_twisted.ensureDeferred
async def test_a_directory_change_on_one_node_reaches_the_other_and_the_owners_agents(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        sim = env.sim
        a = await env.start(tmp_path, "node-a")
        node_a: Any = a.get_cluster()
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)
        b = await env.start(tmp_path, "node-b")
        node_b: Any = b.get_cluster()
        await node_b.elector.when("standby")
        await until(lambda: node_b.dirsync is not None and node_a.dirsync is not None, 10)
        await working_agent(a, 1)  # on the owner, in every demo queue
        username, _ = demo.user_of(1)
        user = a.get_directory().user_by_username(username)
        assert user is not None
        sales = next(q for q, _ in a.get_directory().queues_of(user) if q.asterisk_name == "sales")
        assert sim_member(sim, "sales", "SIP/1001") is not None

        admin = b.get_sessions().create()
        admin.user = next(u for u in b.get_directory().users.values() if u.superuser)

        # An administrator on the standby takes agent 1 out of "sales": the owner's directory
        # follows and its agents take the phone out of the queue on Asterisk.
        others = [{"user_id": u.id, "penalty": 0} for u in b.get_directory().users.values()
                  if sales.id in u.queues and u.id != user.id]
        await b.get_registry().call(admin, "config.queues.setMembers", [sales.id, others])
        await until(lambda: sales.id not in a.get_directory().users[user.id].queues, 10)
        await until(lambda: sim_member(sim, "sales", "SIP/1001") is None, 10)
        # ... and back in.
        await b.get_registry().call(admin, "config.queues.setMembers",
                                    [sales.id, [*others, {"user_id": user.id, "penalty": 0}]])
        await until(lambda: sim_member(sim, "sales", "SIP/1001") is not None, 10)

        # A user created on the standby logs in on the owner with the password given there.
        created = await b.get_registry().call(admin, "config.users.add", [{
            "username": "newcomer", "password": "new-secret-1", "displayname": "New Comer"}])
        await until(lambda: a.get_directory().user_by_username("newcomer") is not None, 10)
        session = a.get_sessions().create()
        logged = await a.get_registry().call(session, "login", ["newcomer", "new-secret-1"])
        assert logged["user"]["id"] == created["id"]

        # A change on the owner reaches the standby the same way; a deletion too.
        owner_admin = a.get_sessions().create()
        owner_admin.user = next(u for u in a.get_directory().users.values() if u.superuser)
        await a.get_registry().call(owner_admin, "config.users.edit",
                                    [{"id": created["id"], "displayname": "Renamed"}])
        await until(lambda: b.get_directory().users[created["id"]].displayname == "Renamed", 10)
        await a.get_registry().call(owner_admin, "config.users.delete", [created["id"]])
        await until(lambda: created["id"] not in b.get_directory().users, 10)
        assert b.get_directory().user_by_username("newcomer") is None
