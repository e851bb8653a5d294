"""Agent bars and Interaction Processor sessions on a standby see the owner's truth (issue 20).

Two whole ``UCSServer``s with ``[cluster]`` in one process (as test_cluster_node),
the real PostgreSQL and NATS, one simulated Asterisk; real WebSocket clients on
each node's agent bar endpoint and Interaction Processor.  The owner's AMI link
is the only one; everything a bar on the standby sees came through the stream
and the standby's mirror (:mod:`ucs.cluster.mirror`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import reactor, task, threads
from twisted.internet.endpoints import TCP4ClientEndpoint

from clusterkit import cdr_rows, cluster_env, give_phone
from serverkit import until, working_agent
from test_cluster_node import _terminate, ami_up, start_server
from test_iserver import Client as IPClient
from test_iserver import prepare
from natsserver import NatsServer, nats_server  # noqa: F401 - the fixture
from serverkit import open_websocket
from test_web_api import Client, ClientProtocol
from ucs import demo
from ucs.server import UCSServer
from ucs.sim.service import SimService

#: Per node by design: the node's clock (``now``) and what is computed from it.
PER_NODE = {"now"}


def bar_url(server: UCSServer) -> str:
    return str(server.get_web_service().ws_url)


class Bar(Client):
    """A bar that also keeps every event it got, in order (``event()`` takes from ``inbox``)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[dict[str, Any]] = []

    def _message(self, payload: bytes, is_binary: bool) -> None:
        msg = json.loads(payload)
        if "event" in msg and msg["event"] != "hello":
            self.log.append(msg)
        super()._message(payload, is_binary)


async def connect(url: str) -> Bar:
    bar = Bar()
    await open_websocket(url, ClientProtocol, bar)
    return bar


def call_events(client: Bar) -> list[tuple[str, dict[str, Any]]]:
    """The call events a bar got, in order, without what is per node."""
    out = []
    for m in client.log:
        if m["event"].startswith("call."):
            data = {k: v for k, v in m["data"].items() if k not in PER_NODE}
            data["journey"] = [{k: v for k, v in s.items() if k != "Duration"} for s in data.get("journey", [])]
            out.append((m["event"], data))
    return out


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A team view row without what the node's clock computes."""
    out = {k: v for k, v in row.items() if k != "in_status"}
    if out.get("call"):
        out["call"] = {k: v for k, v in out["call"].items() if k != "duration"}
    return out


def cluster_notices(client: Bar) -> list[dict[str, Any]]:
    """The ``cluster`` notices a bar got (issue 20: its node's link to the others)."""
    return [m["data"] for m in client.log if m["event"] == "cluster"]


async def until_rows(store: str, uniqueids: list[str]) -> None:
    """The store has exactly one CDR for each of ``uniqueids`` (and no other), within 20 s."""
    rows: list[str] = []
    for _ in range(200):
        rows = sorted(r["uniqueid"] for r in await threads.deferToThread(cdr_rows, store))
        if rows == sorted(uniqueids):
            return
        await task.deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"CDRs {rows}, not one each of {uniqueids}")


def agent_events(client: Bar) -> list[dict[str, Any]]:
    return [m["data"] for m in client.log if m["event"] == "agent.status"]


async def ip_connect(server: UCSServer) -> IPClient:
    web = server.get_web_service()
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{web.port}/iserver")
    factory.protocol = IPClient
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", web.port)
    proto: IPClient = await endpoint.connect(factory)  # type: ignore[assignment]
    await proto.opened
    return proto


async def start_node(tmp_path: Path, name: str, store: str, sim: SimService, domain: str,
                     servers: list[UCSServer], nats: str = "") -> tuple[UCSServer, Any]:
    server = await start_server(tmp_path, name, store, sim, domain, **({"cluster": {"nats": [nats]}} if nats else {}))
    servers.append(server)
    return server, server.get_cluster()


async def login_bar(server: UCSServer, username: str, password: str) -> Bar:
    bar = await connect(bar_url(server))
    result = await bar.call("login", [username, password])
    assert result["state"] == "READY", result  # the agent works on the owner: its phone is known here
    return bar


@pytest_twisted.ensureDeferred
async def test_a_bar_and_an_ip_session_on_the_standby_see_what_the_owner_shows(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        servers = env.servers
        clients = env.clients
        a, node_a = await start_node(tmp_path, "node-a", store, sim, domain, servers)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)
        await give_phone(a, "supervisor", 2)
        b, node_b = await start_node(tmp_path, "node-b", store, sim, domain, servers)
        await node_b.elector.when("standby")
        await until(lambda: node_b.health()["term"] == node_a.health()["term"], 10)
        assert not b.get_ami_client().running

        # Agent 1 works on the owner; so does the supervisor, at phone 2.
        await working_agent(a, 1)
        sup = a.get_sessions().create()
        await a.get_registry().call(sup, "login", ["supervisor", "supervisor-demo"])
        await a.get_registry().call(sup, "identifier", [demo.line_of(2)[1]])
        await a.get_registry().call(sup, "provision")
        agent = next(x for x in a.get_agents().all() if x.username == demo.user_of(1)[0])
        await until(lambda: b.get_mirror().get(agent.id) is not None
                    and b.get_mirror().get(agent.id).status.name == "READY", 10)

        # The same agent's bars, one on each node; the supervisor's bar on the standby.
        user, password = demo.user_of(1)
        bar_a = await login_bar(a, user, password)
        bar_b = await login_bar(b, user, password)
        sup_b = await login_bar(b, "supervisor", "supervisor-demo")
        clients += [bar_a, bar_b, sup_b]
        state_a, state_b = await bar_a.call("state"), await bar_b.call("state")
        assert state_b["status"] == state_a["status"] == "READY"
        assert state_b["device"]["device"] == "SIP/1001" and state_b["calls"] == [] == state_a["calls"]
        assert state_b["device"] == state_a["device"]  # its line and Asterisk's device state, registration
        assert state_b["device"]["state"] == "NOT_INUSE" and state_b["device"]["address"]  # what Asterisk says
        assert {x["id"]: x["status"] for x in state_b["agents"]} == {x["id"]: x["status"] for x in state_a["agents"]}
        # An Interaction Processor session on the standby, for the same agent.
        ip_b = await ip_connect(b)
        clients.append(ip_b)
        prepared = await prepare(ip_b, user, password)
        assert prepared["result"] == "success" and prepared["resource"]["device"] == "SIP/1001", prepared

        # The supervisor's team view (issue 17) open on each node.
        sup_a = await login_bar(a, "supervisor", "supervisor-demo")
        clients.append(sup_a)
        team_a, team_b = await sup_a.call("supervisor.team"), await sup_b.call("supervisor.team")
        assert [_row(r) for r in team_b] == [_row(r) for r in team_a]
        assert any(r["id"] == agent.id and r["logged_in"] and r["status"] == "READY" for r in team_b)

        # A customer calls; agent 1's phone rings, the agent answers, then hangs up.
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=1.0)
        sim.sim.caller_calls("5000", "420777000001", "Customer")
        ringing_b = await bar_b.event("call.ringing", timeout=10)
        assert ringing_b["data"]["caller_number"] == "420777000001" and ringing_b["data"]["state"] == 2
        (live,) = a.get_call_tracker().active_calls()
        assert ringing_b["data"]["uniqueid"] == live.uniqueid
        # ``state`` on the standby after a reload lists the live call, as the owner's does.
        reloaded = await connect(bar_url(b))
        clients.append(reloaded)
        await reloaded.call("login", [user, password])
        state_b = await reloaded.call("state")
        assert [c["uniqueid"] for c in state_b["calls"]] == [live.uniqueid]
        assert state_b["call"]["caller_number"] == "420777000001"
        connect_b = await bar_b.event("call.connect", timeout=10)
        assert connect_b["data"]["state"] == 3 and connect_b["data"]["connected"] is not None
        state_a, state_b = await bar_a.call("state"), await reloaded.call("state")
        assert {k: v for k, v in state_b["call"].items() if k not in PER_NODE | {"journey"}} == \
            {k: v for k, v in state_a["call"].items() if k not in PER_NODE | {"journey"}}
        # Both team views were pushed the agent's row with the call, connected.
        rows = []
        for view in (sup_a, sup_b):
            rows.append(await view.wait(lambda v=view: next(
                (m["data"] for m in v.log if m["event"] == "team.agent" and m["data"]["id"] == agent.id
                 and (m["data"]["call"] or {}).get("state") == 3), None), 10))
        assert _row(rows[1]) == _row(rows[0]) and rows[1]["call"]["uniqueid"] == live.uniqueid
        # The IP session got the call's events.
        ip_ringing = await ip_b.event("call.ringing")
        assert ip_ringing["data"]["caller_number"] == "420777000001"
        await ip_b.event("call.connect")

        # Held and taken back on the owner (its call control, on Asterisk).
        await a.get_call_control().hold("SIP/1001")
        held = await bar_b.event("call.hold", timeout=10)
        assert held["data"]["state"] == 5 and held["data"]["held_since"] is not None
        assert [c["state"] for c in (await reloaded.call("state"))["calls"]] == [5]
        await a.get_call_control().unhold("SIP/1001")
        assert (await bar_b.event("call.resume", timeout=10))["data"]["state"] == 3

        sim.sim.phone("SIP/1001").hangup()
        hangup_b = await bar_b.event("call.hangup", timeout=10)
        assert hangup_b["data"]["uniqueid"] == live.uniqueid and hangup_b["data"]["disconnected"] is not None
        await bar_a.wait(lambda: "call.hangup" in bar_a.events() or None, 10)
        await ip_b.event("call.hangup")
        assert (await reloaded.call("state"))["calls"] == []

        # The caller waited in the queue, then was answered: both nodes' bars were told so.
        def waiting(bar: Bar) -> list[int]:
            return [m["data"]["waitingCallers"] for m in bar.log if m["event"] == "waitingCallers"]

        await until(lambda: 1 in waiting(bar_a) and 1 in waiting(bar_b) and waiting(bar_a)[-1] == 0
                    and waiting(bar_b)[-1] == 0, 10)
        # The same frames on both nodes, in the same order (but the per-node clock).
        await until(lambda: len(call_events(bar_b)) == len(call_events(bar_a)), 10)
        told = [n for n, _ in call_events(bar_a) if n != "call.change"]
        assert told == ["call.ringing", "call.connect", "call.hold", "call.resume", "call.hangup"]
        assert call_events(bar_b) == call_events(bar_a)

        # A status change made on the owner: the supervisor's bar on the standby is told,
        # and its state's agents list has it.
        # The team views again: the same rows, then the same ``team.agent`` push when the
        # owner changes the agent's status.
        await until(lambda: b.get_mirror().get(agent.id).status is agent.status, 10)
        team_a, team_b = await sup_a.call("supervisor.team"), await sup_b.call("supervisor.team")
        assert [_row(r) for r in team_b] == [_row(r) for r in team_a]
        sup_a.inbox.clear()
        sup_b.inbox.clear()
        await a.get_agents().change_status(agent.id, "AUX", "Break")
        pushes = []
        for view in (sup_a, sup_b):
            pushes.append(await view.wait(lambda v=view: next((m for m in v.inbox if m["event"] == "team.agent"
                                                               and m["data"]["status"] == "AUX"), None), 10))
        assert _row(pushes[1]["data"]) == _row(pushes[0]["data"])
        assert pushes[1]["data"]["id"] == agent.id and pushes[1]["data"]["reason"] == "Break"
        await until(lambda: b.get_mirror().get(agent.id).status.name == "AUX", 10)
        change = await sup_b.wait(lambda: next((m for m in sup_b.inbox if m["event"] == "agents.change"
                                                and m["data"]["status"] == "AUX"), None), 10)
        assert change["data"]["id"] == agent.id and change["data"]["reason"] == "Break"
        await bar_b.wait(lambda: next((m for m in bar_b.inbox if m["event"] == "agent.status"
                                       and m["data"]["status"] == "AUX"), None), 10)
        listed = {x["id"]: x for x in (await sup_b.call("state"))["agents"]}
        assert listed[agent.id]["status"] == "AUX" and listed[agent.id]["reason"] == "Break"
        # The agent's own bars got the same status frames on both nodes (ACW, then AUX).
        await until(lambda: len(agent_events(bar_a)) == len(agent_events(bar_b)) >= 2, 10)
        assert agent_events(bar_b) == agent_events(bar_a)
        assert [d["status"] for d in agent_events(bar_a)][-1] == "AUX"


@pytest_twisted.ensureDeferred
async def test_a_late_standby_shows_the_call_and_a_snapshot_brings_its_bars_back_to_the_truth(
        tmp_path: Path, nats_server: NatsServer) -> None:  # noqa: F811 - the fixture
    """A standby that starts after the call began shows it (snapshot); when NATS goes away
    and comes back, the owner's new term makes the standby's bars consistent again: the
    call that ended meanwhile ends on them, the one that began appears, the status changed."""
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        servers = env.servers
        clients = env.clients
        a, node_a = await start_node(tmp_path, "node-a", store, sim, domain, servers, nats_server.url)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)
        await working_agent(a, 1)
        await working_agent(a, 2)
        one = next(x for x in a.get_agents().all() if x.device == "SIP/1001")
        await a.get_agents().change_status(next(x for x in a.get_agents().all() if x.device == "SIP/1002").id,
                                           "AUX", "Break")  # the first call goes to agent 1
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000001", "First")
        await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
        (first,) = a.get_call_tracker().active_calls()

        # The standby starts now: the call is in the snapshot, and its bar shows it.
        b, node_b = await start_node(tmp_path, "node-b", store, sim, domain, servers, nats_server.url)
        await node_b.elector.when("standby")
        await until(lambda: node_b.health()["term"] == node_a.health()["term"]
                    and first.uniqueid in b.get_mirror().calls, 10)
        bar_1 = await login_bar(b, *demo.user_of(1))
        bar_2 = await login_bar(b, *demo.user_of(2))
        clients += [bar_1, bar_2]
        state = await bar_1.call("state")
        assert [c["uniqueid"] for c in state["calls"]] == [first.uniqueid]
        assert state["call"]["state"] == 3 and state["call"]["caller_number"] == "420777000001"
        assert (await bar_2.call("state"))["calls"] == []

        # NATS goes away.  On the owner meanwhile: the first call ends, agent 1 goes AUX,
        # agent 2 READY and a second call reaches agent 2.  The standby hears none of it.
        bar_a = await login_bar(a, *demo.user_of(2))  # a bar on the owner
        clients.append(bar_a)
        await threads.deferToThread(nats_server.stop)
        await until(lambda: node_a.link.state == "down" and node_b.link.state == "down", 10)
        # Every bar is told: on the standby what it shows may be stale, on the owner that
        # other nodes cannot follow; a bar that connects meanwhile is told at once.
        for bar in (bar_1, bar_2, bar_a):
            # (the owner's may first be told its events do not reach the others: its feed broke
            # before its link was seen down)
            told = await bar.wait(lambda b_=bar: next((n for n in cluster_notices(b_) if n["nats"] == "down"), None), 10)
            assert told["ok"] is False
            assert all(n["ok"] is False for n in cluster_notices(bar))
        assert "out of date" in cluster_notices(bar_1)[-1]["message"]
        assert "calls and states here go on" in cluster_notices(bar_a)[-1]["message"]
        late = await connect(bar_url(b))
        clients.append(late)
        await late.wait(lambda: cluster_notices(late) or None, 10)
        assert [n["ok"] for n in cluster_notices(late)] == [False]
        sim.sim.phone("SIP/1001").hangup()
        await until(lambda: not a.get_call_tracker().active_calls(), 10)
        # The owner wrote the first call's CDR meanwhile (the store is not NATS).
        await until_rows(store, [first.uniqueid])
        await a.get_agents().change_status(one.id, "AUX", "Lunch")
        await a.get_agents().change_status(next(x for x in a.get_agents().all() if x.device == "SIP/1002").id,
                                           "READY")
        sim.sim.phone("SIP/1002").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000002", "Second")
        await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
        (second,) = a.get_call_tracker().active_calls()
        assert [e for e in bar_1.log if e["event"] == "call.hangup"] == []  # nothing heard yet

        # NATS is back: a new term, the standby reloads, its bars are told the difference.
        await threads.deferToThread(nats_server.start)
        ended = await bar_1.event("call.hangup", timeout=30)
        assert ended["data"]["uniqueid"] == first.uniqueid
        began = await bar_2.event("call.connect", timeout=10)
        assert began["data"]["uniqueid"] == second.uniqueid and began["data"]["caller_number"] == "420777000002"
        status = await bar_1.wait(lambda: next((m for m in bar_1.inbox if m["event"] == "agent.status"
                                                and m["data"]["status"] == "AUX"), None), 10)
        assert status["data"]["reason"] == "Lunch"
        assert (await bar_1.call("state"))["calls"] == []
        assert [c["uniqueid"] for c in (await bar_2.call("state"))["calls"]] == [second.uniqueid]
        # ... and it goes on following: the second call ends on the standby's bar.
        sim.sim.phone("SIP/1002").hangup()
        assert (await bar_2.event("call.hangup", timeout=10))["data"]["uniqueid"] == second.uniqueid
        # The notice is cleared on every bar, and each call's CDR is in the store once.
        for bar in (bar_1, bar_2, bar_a, late):
            await bar.wait(lambda b_=bar: (cluster_notices(b_) or [{}])[-1].get("ok") or None, 10)
            assert [n["ok"] for n in cluster_notices(bar)][-2:] == [False, True]
        await until_rows(store, [first.uniqueid, second.uniqueid])


@pytest_twisted.ensureDeferred
async def test_a_call_that_ends_while_no_node_listens_ends_on_the_new_owners_bars(tmp_path: Path) -> None:
    """The owner's session dies mid-call; the call ends while the standby claims the link
    (no AMI link anywhere).  The standby becomes the owner and resyncs: Asterisk has no
    such call any more, so the bar on that node is told it ended; its own model answers."""
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        servers = env.servers
        clients = env.clients
        a, node_a = await start_node(tmp_path, "node-a", store, sim, domain, servers)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)
        b, node_b = await start_node(tmp_path, "node-b", store, sim, domain, servers)
        await node_b.elector.when("standby")
        await working_agent(a, 1)
        agent = next(x for x in a.get_agents().all() if x.device == "SIP/1001")
        await until(lambda: b.get_mirror().get(agent.id) is not None, 10)
        bar = await login_bar(b, *demo.user_of(1))
        clients.append(bar)
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000001", "Customer")
        connected = await bar.event("call.connect", timeout=10)
        uid = connected["data"]["uniqueid"]
        # A second tab opened mid-call (a reload, a bar resumed here): it knows the call from
        # ``state`` alone, and must be told its end too (found by bench/cluster_failover.py).
        late = await login_bar(b, *demo.user_of(1))
        clients.append(late)
        assert [c["uniqueid"] for c in (await late.call("state"))["calls"]] == [uid]

        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await until(lambda: not a.get_ami_client().running, 10)
        assert not node_b.elector.is_owner  # claiming at most: nobody hears Asterisk now
        sim.sim.phone("SIP/1001").hangup()
        assert [m for m in bar.log if m["event"] == "call.hangup"] == []
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b), 10)
        ended = await bar.event("call.hangup", timeout=10)
        assert ended["data"]["uniqueid"] == uid and ended["data"]["disconnected"] is not None
        assert (await late.event("call.hangup", timeout=10))["data"]["uniqueid"] == uid
        assert (await bar.call("state"))["calls"] == []
        assert b.get_call_tracker().active_calls() == []
