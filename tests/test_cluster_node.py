"""Two UCS containers with ``[cluster]`` in one process, on one simulated Asterisk (issue 20, point 4).

Each is a whole ``UCSServer`` on the real PostgreSQL (one schema for both) and
the real NATS; the simulated PBX listens on a port of its own.  The election
decides which one's AMI client runs: terminating the owner's election session
(``pg_terminate_backend``) makes it step down -- its AMI link stops -- and the
other take the link; terminating that one's gives the link back to the
first, whose AMI client starts again.  The standby follows the owner's term
and sees the owner's agents in its replica.  Without ``[cluster]`` nothing of
this is built (the rest of the suite runs that way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from clusterkit import ClusterEnv, cluster_env, give_phone
from pgkit import POSTGRES_URL
from serverkit import until, working_agent
from test_cluster_stream import NATS_URL
from ucs import demo
from ucs.calls.call import Call
from ucs.cluster.commands import CommandError
from ucs.config import Config
from ucs.server import UCSServer
from ucs.sim.service import SimService


def cluster_config(tmp_path: Path, name: str, store: str, sim: SimService, domain: str) -> Config:
    user, secret = sim.credentials
    return Config().replace(
        store={"url": store}, web={"port": 0}, plugins={"directory": str(tmp_path / name / "plugins")},
        ami={"host": "127.0.0.1", "port": sim.port, "username": user, "secret": secret},
        agents={"initial_status": "ready"},
        cluster={"enabled": True, "nats": [NATS_URL], "domain": domain, "node": name})


async def start_server(tmp_path: Path, name: str, store: str, sim: SimService, domain: str,
                       **sections: dict[str, Any]) -> UCSServer:
    """A started container of :func:`cluster_config`, with ``sections`` over it."""
    config = cluster_config(tmp_path, name, store, sim, domain)
    server = UCSServer(config.replace(**sections) if sections else config, reactor)
    server.service.startService()
    await server.service.whenStarted()
    return server


def _terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def ami_up(server: UCSServer) -> bool:
    return bool(server.get_ami_client().state == "up")


@pytest_twisted.ensureDeferred
async def test_the_election_moves_the_ami_link_between_two_containers_and_back(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        servers = env.servers
        a = UCSServer(cluster_config(tmp_path, "node-a", store, sim, domain), reactor)
        servers.append(a)
        a.service.startService()
        await a.service.whenStarted()
        node_a: Any = a.get_cluster()
        # Its Interaction Processor tells clients the cluster's domain (seed 003's instance-domain).
        assert a.get_iserver().instance_domain == domain
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await until(lambda: node_a.health()["term"] != "", 10)

        b = UCSServer(cluster_config(tmp_path, "node-b", store, sim, domain), reactor)
        servers.append(b)
        b.service.startService()
        await b.service.whenStarted()
        node_b: Any = b.get_cluster()
        await node_b.elector.when("standby")
        await until(lambda: node_b.health()["term"] == node_a.health()["term"], 10)
        assert not ami_up(b) and not b.get_ami_client().running

        # An agent logs in on the owner: the standby's replica has the agent as the owner tells it.
        await demo.seed(a.get_directory(), 2)  # the demo's users and lines, on the simulator's phones
        await working_agent(a, 1)
        agent = next(x for x in a.get_agents().all() if x.username == demo.user_of(1)[0])
        await until(lambda: node_b.replica().agents.get(str(agent.id), {}).get("status") == "READY", 10)
        assert agent.status.name == "READY"
        assert node_b.replica().agents[str(agent.id)]["username"] == agent.username

        # A command from the standby reaches the owner, which carries it out on Asterisk; the
        # change comes back to the standby through the stream.
        reply = await node_b.commands.request("agents.changeStatus", agent.id, "AUX", "Break")
        assert reply == {"id": agent.id, "status": "AUX", "reason": "Break"}
        assert agent.status.name == "AUX"
        member = next(m for q in a.get_pbx().queues.values() for m in q.members.values()
                      if m.interface == "SIP/1001")
        assert member.paused  # Asterisk was told (the simulator paused the queue member)
        await until(lambda: node_b.replica().agents[str(agent.id)]["status"] == "AUX", 10)
        with pytest.raises(CommandError, match="agents.changeStatus: .*not accepted|agents.changeStatus: .*reason"):
            await node_b.commands.request("agents.changeStatus", agent.id, "AUX", "No such reason")
        await a.get_agents().change_status(agent.id, "READY")

        # A customer calls and agent 1 answers: the standby's replica has the call.
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000001", "Customer")
        await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
        (call,) = a.get_call_tracker().active_calls()
        await until(lambda: node_b.replica().calls.get(call.uniqueid, {}).get("connected") is not None, 10)

        # The owner's session dies mid-call: it steps down (AMI link stopped), the standby
        # takes over, resyncs from Asterisk and publishes a new term with the call in it.
        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b), 10)
        assert not a.get_ami_client().running and not node_a.elector.is_owner
        assert a.get_web_service().health()["cluster"]["role"] != "owner"
        await node_a.elector.when("standby")
        await until(lambda: [c.uniqueid for c in b.get_call_tracker().active_calls()] == [call.uniqueid], 10)
        await until(lambda: node_a.health()["term"].startswith("node-b:")
                    and call.uniqueid in node_a.replica().calls, 10)
        moved = node_a.replica().calls[call.uniqueid]
        assert moved["caller_number"] == "420777000001" and moved["connected"] is not None
        assert set(node_a.replica().calls) == {call.uniqueid}
        # ... and the agent b restored from the store (its term starts once they are restored), as b has
        # it: the new term's followers start from its snapshot, not from the old term's events.
        await until(lambda: str(agent.id) in node_a.replica().agents
                    and node_a.replica().agents == node_b.replica().agents, 10)

        # And back: b's session dies, a's AMI client starts again.
        await threads.deferToThread(_terminate, node_b.elector.backend_pid)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await until(lambda: node_a.health()["term"].startswith("node-a:") and
                    node_b.health()["term"] == node_a.health()["term"], 10)
        assert not b.get_ami_client().running
        health = b.get_web_service().health()
        assert health["ami"] == "down" and health["cluster"]["role"] == "standby"
        assert health["cluster"]["nats"] == "up" and health["cluster"]["postgresql"] == "up"


def test_without_cluster_the_container_builds_no_node(tmp_path: Path) -> None:
    server = UCSServer(Config().replace(store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"}, web={"port": 0}), reactor)
    assert server.get_cluster() is None
    assert server.service.getServiceNamed("ami") is server.get_ami_client()


async def _queue_call_answered(env: ClusterEnv, tmp_path: Path) -> tuple[UCSServer, UCSServer, Call]:
    """Two nodes; a customer waits in the support queue and agent 1's phone rings and answers,
    on the owner (``a``); both phones answer whatever rings them."""
    a = await env.start_owner(tmp_path, "node-a", 2)
    b = await env.start_standby(tmp_path, "node-b", a)
    await working_agent(a, 1)
    for phone in ("SIP/1001", "SIP/1002"):
        env.sim.sim.phone(phone).set_behaviour(answer_after=0.1)
    env.sim.sim.caller_calls("5000", "420777000001", "Customer")
    await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
    (call,) = a.get_call_tracker().active_calls()
    steps = [(s.device, s.description) for s in call.journey]
    assert [d for d, _ in steps] == ["SIP/carrier", "Queue:support", "SIP/1001"], steps
    assert steps[1][1] == "Waited in queue support, answered by SIP/1001", steps
    assert steps[2][1].startswith("Rang ") and steps[2][1].endswith("(queue support), answered"), steps
    return a, b, call


async def _take_over(a: UCSServer, b: UCSServer, call: Call) -> Call:
    """Once ``b`` follows ``call``'s journey as ``a`` has it, ``a``'s session dies mid-call: ``b``
    takes the AMI link and resyncs.  ``b``'s live call."""
    node_a: Any = a.get_cluster()
    node_b: Any = b.get_cluster()
    told = [(s.device, s.description) for s in call.journey]
    await until(lambda: [(s[0], s[2]) for s in node_b.replica().calls.get(call.uniqueid, {}).get("journey", [])]
                == told, 10)
    await threads.deferToThread(_terminate, node_a.elector.backend_pid)
    await node_b.elector.when("owner")
    await until(lambda: ami_up(b), 10)
    await until(lambda: [c.uniqueid for c in b.get_call_tracker().active_calls()] == [call.uniqueid], 10)
    (live,) = b.get_call_tracker().active_calls()
    return live


@pytest_twisted.ensureDeferred
async def test_a_call_up_across_a_take_over_keeps_its_whole_journey_in_its_cdr(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        a, b, call = await _queue_call_answered(env, tmp_path)
        before = [(s.device, s.description) for s in call.journey]
        entered = next(s.start for s in call.journey if s.device == "Queue:support")
        live = await _take_over(a, b, call)
        # node-b's bars see the whole journey at once (told after the resync), and so do the
        # standbys of its term.
        await until(lambda: [(s.device, s.description) for s in live.journey] == before, 10)
        node_a: Any = a.get_cluster()
        await until(lambda: [(s[0], s[2]) for s in node_a.replica().calls.get(call.uniqueid, {}).get("journey", [])]
                    == before, 10)

        # On node-b: held, taken back, then blindly transferred to agent 2's phone, which answers.
        await b.get_call_control().hold("SIP/1001")
        await b.get_call_control().unhold("SIP/1001")
        await b.get_call_control().blind_transfer("SIP/1001", "1002")
        await until(lambda: any(leg.device == "SIP/1002" and leg.answered for leg in live.legs.values()), 10)
        env.sim.sim.phone("SIP/1002").hangup()
        await until(lambda: not b.get_call_tracker().active_calls(), 10)

        cdr = await b.get_call_control().stored_cdr(call.uniqueid)
        assert cdr is not None
        steps = [(s["Device"], s["Description"]) for s in cdr["journey"]]
        # The steps before the take-over first, once each; then what happened on node-b.
        assert steps[:3] == [before[0], before[1], ("SIP/1001", before[2][1] + ", transferred")], steps
        assert [d for d, _ in steps[3:]] == ["MusicOnHold", "SIP/1002"], steps  # the hold, the transfer
        assert steps[4][1].startswith("Rang ") and steps[4][1].endswith("(1002), answered"), steps
        # Its times are the real ones: the wait in the queue, the first ring, the answer.
        assert cdr["created"] == call.created and cdr["connected"] == call.connected
        legs = {leg["device"]: leg for leg in cdr["data"]["legs"]}
        assert legs["SIP/1001"]["created"] == next(leg.created for leg in call.legs.values()
                                                   if leg.device == "SIP/1001")
        assert next(s.start for s in live.journey if s.device == "Queue:support") == entered


@pytest_twisted.ensureDeferred
async def test_a_call_transferred_before_a_take_over_keeps_the_legs_that_left_it(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        a, b, call = await _queue_call_answered(env, tmp_path)
        # Agent 1 transfers the caller to agent 2's phone, which answers: still on node-a.
        await a.get_call_control().blind_transfer("SIP/1001", "1002")
        await until(lambda: any(leg.device == "SIP/1002" and leg.answered for leg in call.legs.values()), 10)
        before = [(s.device, s.description) for s in call.journey]
        assert [d for d, _ in before] == ["SIP/carrier", "Queue:support", "SIP/1001", "SIP/1002"], before
        first = next(leg for leg in call.legs.values() if leg.device == "SIP/1001")
        assert first.ended is not None
        await _take_over(a, b, call)

        # Agent 2 hangs up on node-b's watch.
        env.sim.sim.phone("SIP/1002").hangup()
        await until(lambda: not b.get_call_tracker().active_calls(), 10)
        cdr = await b.get_call_control().stored_cdr(call.uniqueid)
        assert cdr is not None
        # Agent 1's part, over before the take-over, is in it: its step, its leg, the transfer.
        assert [(s["Device"], s["Description"]) for s in cdr["journey"]] == before
        legs = {leg["device"]: leg for leg in cdr["data"]["legs"]}
        assert legs["SIP/1001"]["ended"] == first.ended and legs["SIP/1001"]["created"] == first.created
        assert [(t["kind"], t["to"]) for t in cdr["data"]["transfers"]] == [(t["kind"], t["to"]) for t in call.transfers]
        assert cdr["data"]["transfers"]


@pytest_twisted.ensureDeferred
async def test_a_monitoring_across_a_take_over_is_no_call_and_stays_on_the_monitored_calls_cdr(
        tmp_path: Path) -> None:
    """A supervisor listens to agent 1's call on node-a; node-a's session dies and the supervisor
    hangs up while no node owns the AMI link.  The new owner writes no CDR for the monitoring
    session it learns ended in the gap (it is no call), and the customer's CDR, written by the
    new owner when the call ends, says who monitored it."""
    async with cluster_env(phones=2) as env:
        a, b, call = await _queue_call_answered(env, tmp_path)
        await give_phone(a, "supervisor", 2)
        sup = a.get_sessions().create()
        await a.get_registry().call(sup, "login", ["supervisor", "supervisor-demo"])
        await a.get_registry().call(sup, "identifier", [demo.line_of(2)[1]])
        agent = next(x for x in a.get_agents().all() if x.username == demo.user_of(1)[0])
        await a.get_registry().call(sup, "supervisor.monitor", [agent.id, "listen"])
        await until(lambda: any(c.monitoring for c in a.get_call_tracker().active_calls()), 10)
        spy = next(c for c in a.get_call_tracker().active_calls() if c.monitoring)
        await until(lambda: bool(call.monitors), 10)  # ChanSpyStart heard: the call records it
        node_a: Any = a.get_cluster()
        node_b: Any = b.get_cluster()
        await until(lambda: spy.uniqueid in node_b.replica().calls
                    and node_b.replica().calls[call.uniqueid].get("monitors"), 10)

        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await until(lambda: not a.get_ami_client().running, 10)  # node-a stepped down: the gap
        env.sim.sim.phone("SIP/1002").hangup()  # the supervisor stops listening, unseen
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b), 10)
        await until(lambda: [c.uniqueid for c in b.get_call_tracker().active_calls()] == [call.uniqueid], 10)
        env.sim.sim.phone("SIP/1001").hangup()
        await until(lambda: not b.get_call_tracker().active_calls(), 10)

        cdr = await b.get_call_control().stored_cdr(call.uniqueid)
        assert cdr is not None
        (monitor,) = cdr["data"]["monitors"]
        assert (monitor["by"], monitor["mode"], monitor["spied"]) == ("supervisor", "listen", "SIP/1001")
        assert await b.get_call_control().stored_cdr(spy.uniqueid) is None  # no call of its own
