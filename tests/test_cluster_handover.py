"""The agents across a take-over, when the old owner's last saves never reached the store (issue 20).

Three real ``twistd --reactor=asyncio ucs`` nodes, the real PostgreSQL and NATS, the simulated
Asterisk in this process.  node-a, the owner, reaches PostgreSQL through a TCP forwarder
(:class:`cutproxy.CutProxy`) the test freezes: its agents' changes after that are carried out
on Asterisk and told on NATS, but never written to the store.  Then node-a is killed
(``kill -9``) -- or, in the second test, left cut off until it steps down by itself.  The node
that takes over must bring every agent back as it was: AUX with its reason, ACW with its
wrap-up deadline, READY with one queue suspended (paused there), each since the moment it
changed -- on its own API and on a bar on the other standby -- and Asterisk's queue members
must stay paused as they were.  Restoring from the store alone brought back the statuses
of before the freeze (the store's), with new ``since`` times, and, when the reconciliation came
first, READY with the queues unpaused.  So must its figures of the day: agent 1 answers a call
while the store is frozen, then goes AUX -- the call is counted, and the READY time before the
change is READY time, not AUX (restored from the store alone the call was gone and the time
since the last save counted as AUX).

Below, with two whole ``UCSServer``s in this process: a node that took over and steps down
again saves its own agents' figures (it failed on the views of the owner's agents it
followed), and a new owner's term begins only once its agents are restored (the order
forced), so its followers have them from its first snapshot.  Last, the rule itself (:func:`ucs.cluster.handover.newest`).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_twisted
from twisted.internet import reactor, threads

from clusterkit import DEADLINE, ClusterEnv, cluster_env, pause, seed, until_health, wait_line
from cutproxy import CutProxy
from pgkit import POSTGRES_URL
from test_cluster_partition import via
from test_web_api import connect
from ucs import demo
from ucs.sim.service import SimService

#: agent n -> what it does while node-a's store is frozen.
AUX, ACW, SUSPENDED = 1, 2, 3


def members(sim: SimService) -> dict[tuple[str, str], tuple[bool, str]]:
    """Asterisk's queue members: (queue, phone) -> (paused, reason)."""
    return {(q.name, m.iface): (m.paused, m.reason) for q in sim.sim.queues.values() for m in q.members.values()}


def seen(state: dict[str, Any]) -> dict[str, Any]:
    """What a supervisor and the agent notice of an agent in a bar's ``state``."""
    user = state["user"]
    wrapup = user.get("wrapup") or {}
    return {"status": state["status"], "reason": state["reason"], "since": user["since"],
            "suspended": user["suspended"], "acw_until": wrapup.get("until"),
            "queues": {str(k): (q["member"], q["paused"], q["paused_reason"], q["suspended"])
                       for k, q in user["queues"].items()}}


def figures(state: dict[str, Any]) -> dict[str, int]:
    """An agent's figures of the day in a bar's ``state`` that the test follows."""
    user = state["user"]
    return {"in_calls_answered": user["in_calls_answered"], "readytime": user["readytime"],
            "auxtime": user["auxtime"], "Lunch": user["auxtimes"].get("Lunch", 0)}


async def until_state(bar: Any, test: Any, what: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _ in range(int(DEADLINE / 0.2)):
        state = await bar.call("state")
        if test(state):
            return state
        await pause()
    raise AssertionError(f"the bar never showed {what}: {seen(state) if state else state}")


async def _run(tmp_path: Path, kill: bool) -> None:
    async with cluster_env(phones=3) as env:
        store, sim = env.store, env.sim
        pg = CutProxy(reactor, urlsplit(POSTGRES_URL).port or 5432)
        pg.start()
        env.proxies.append(pg)
        env.closing.append(pg.restore)  # a node whose store is frozen would not stop
        bars = env.clients
        await seed(store, 3)
        nodes = env.processes(tmp_path, extra='[agents]\ninitial_status = "ready"\nacw_seconds = 300\n',
                              stores={"node-a": via(store, pg)})  # READY at login; a requested wrap-up lasts 300 s
        ports, procs = nodes.ports, nodes.procs
        await nodes.start_all()

        # Each agent works through a bar on node-b and one on node-c (the standbys).
        agent_bars: dict[int, dict[str, Any]] = {}
        for i in (AUX, ACW, SUSPENDED):
            agent_bars[i] = {}
            for n in ("node-b", "node-c"):
                bar = await connect(f"ws://127.0.0.1:{ports[n]}/ws")
                bars.append(bar)
                await bar.call("login", list(demo.user_of(i)))
                if n == "node-b":  # on node-c the agent is working already: READY at once with its phone
                    await bar.call("identifier", [demo.line_of(i)[1]])
                    await bar.call("provision")
                await until_state(bar, lambda s: s["status"] == "READY", "READY")
                agent_bars[i][n] = bar
        support = next(k for k, q in (await agent_bars[SUSPENDED]["node-b"].call("state"))["user"]["queues"].items()
                       if q["name"] == "Support")
        # Agent 3 is AUX in the store: then READY with Support suspended, unsaved.
        await agent_bars[SUSPENDED]["node-b"].call("agent.changeStatus", ["AUX", "Break"])
        await until_state(agent_bars[SUSPENDED]["node-c"], lambda s: s["reason"] == "Break", "AUX (Break)")

        pg.freeze()  # node-a's store: nothing it writes from now on arrives
        # Agent 1 answers a customer's call (counted on node-a, told on NATS only), then goes AUX.
        sim.sim.dialplan.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},30"), ("Hangup", "")])
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("1001", "420777000001", "Customer", hangup_after=1.0)
        await until_state(agent_bars[AUX]["node-c"], lambda s: s["user"]["in_calls_answered"] == 1 and not s["calls"],
                          "the call counted")
        await agent_bars[AUX]["node-b"].call("agent.changeStatus", ["AUX", "Lunch"])
        await agent_bars[ACW]["node-b"].call("agent.changeStatus", ["ACW"])
        await agent_bars[SUSPENDED]["node-b"].call("agent.changeStatus", ["READY"])
        await agent_bars[SUSPENDED]["node-b"].call("agent.suspend", [int(support)])
        wanted = {
            AUX: lambda s: s["reason"] == "Lunch",
            ACW: lambda s: s["status"] == "ACW",
            SUSPENDED: lambda s: s["status"] == "READY" and int(support) in s["user"]["suspended"],
        }
        told = {i: await until_state(agent_bars[i]["node-c"], wanted[i], "the change") for i in wanted}
        before = {i: seen(told[i]) for i in wanted}
        counted = figures(told[AUX])
        assert counted["in_calls_answered"] == 1 and counted["readytime"] >= 1, counted  # the call was READY time
        paused = members(sim)
        assert paused[("support", "SIP/1001")] == (True, "Lunch") and paused[("sales", "SIP/1002")] == (True, "ACW")
        assert paused[("support", "SIP/1003")] == (True, "suspended") and not paused[("sales", "SIP/1003")][0]
        assert before[ACW]["acw_until"] is not None and before[SUSPENDED]["queues"][support][1:] == (True, "suspended",
                                                                                                    True)

        if kill:
            procs["node-a"].proc.send_signal(signal.SIGKILL)
            procs["node-a"].proc.wait(DEADLINE)
        else:  # cut off: it steps down at its failed check; the others elect a new owner
            await wait_line(procs["node-a"], "this node steps down")
        owner = await nodes.owner(["node-b", "node-c"])
        await until_health(ports[owner], lambda h: h["cluster"]["term"].startswith(f"{owner}:"))
        await wait_line(procs[owner], "PBX model resynchronised")
        standby = "node-c" if owner == "node-b" else "node-b"
        await until_health(ports[standby], lambda h: h["cluster"]["term"].startswith(f"{owner}:"))

        # Every agent as it was, on the new owner (its own model) and on the standby (the mirror),
        # and Asterisk's members still paused as they were (the reconciliation agreed).
        for _ in range(10):  # what follows the resync has had its chance to move something
            await pause()
        for i in wanted:
            for n in (owner, standby):
                state = await agent_bars[i][n].call("state")
                now = seen(state)
                assert now == before[i], (i, n, now, before[i])
                if i == AUX:  # the call still counted, the READY time before the change still READY time
                    later = figures(state)
                    assert later["in_calls_answered"] == 1, (n, later, counted)
                    assert later["readytime"] >= counted["readytime"], (n, later, counted)
                    assert later["Lunch"] >= counted["Lunch"], (n, later, counted)
        assert members(sim) == paused
        assert "status follows" not in procs[owner].output  # nothing had to be put right from the phone
        if not kill:
            assert "stepping down failed" not in procs["node-a"].output


@pytest_twisted.ensureDeferred
async def test_an_owner_killed_before_its_last_saves_hands_every_agent_over_as_it_was(tmp_path: Path) -> None:
    await _run(tmp_path, kill=True)


@pytest_twisted.ensureDeferred
async def test_an_owner_cut_off_from_postgresql_hands_every_agent_over_as_it_was(tmp_path: Path) -> None:
    await _run(tmp_path, kill=False)


# -- (b) a node that took over and steps down again saves its own agents' figures ------------------


async def _agent_1_on_an_owner_and_a_standby(tmp_path: Path, env: ClusterEnv) -> tuple[Any, Any, Any, Any, Any]:
    """node-a the owner, node-b following its term, both quick to step down and take over, and
    demo agent 1 working on node-a: (a, its node, b, its node, the agent)."""
    from serverkit import until, working_agent
    from test_cluster_node import ami_up

    quick = {"check_interval": 0.5, "step_down_after": 2.0, "release_after": 4}
    a = await env.start(tmp_path, "node-a", cluster=quick)
    node_a: Any = a.get_cluster()
    await node_a.elector.when("owner")
    await until(lambda: ami_up(a), 10)
    b = await env.start(tmp_path, "node-b", cluster=quick)
    node_b: Any = b.get_cluster()
    await until(lambda: node_b.health()["term"] == node_a.health()["term"] != "", 10)
    await demo.seed(a.get_directory(), 2)
    await working_agent(a, 1)
    (agent,) = a.get_agents().all()
    return a, node_a, b, node_b, agent


@pytest_twisted.ensureDeferred
async def test_a_new_owner_stepping_down_saves_its_agents_figures_and_the_next_owner_goes_on_counting(
        tmp_path: Path) -> None:
    """node-b took the AMI link over from node-a (so it had followed node-a's agents, and its
    agents' service answers from what it followed once it is a standby again); stepping down,
    it saves the figures of *its own* agents -- the AUX time counted up to that moment -- and
    node-a, owner again, goes on from them.  It used to fail while saving (``'AgentView' object
    has no attribute 'accrued_until'``): the figures counted since the agent's last change were
    lost and the agents were never forgotten."""
    from twisted.logger import globalLogPublisher

    from serverkit import until
    from test_cluster_node import _terminate, ami_up

    failures: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        async with cluster_env(phones=2) as env:
            a, node_a, b, node_b, agent = await _agent_1_on_an_owner_and_a_standby(tmp_path, env)
            await until(lambda: str(agent.id) in node_b.replica().agents, 10)

            await threads.deferToThread(_terminate, node_a.elector.backend_pid)  # node-b takes over
            await until(lambda: ami_up(b) and b.get_agents().local(agent.id) is not None, 20)
            await b.get_agents().change_status(agent.id, "AUX", "Break")
            mine = b.get_agents().local(agent.id)
            assert mine is not None
            changed = mine.since
            await until(lambda: reactor.seconds() > changed + 2, 5)

            stepped = reactor.seconds()
            await threads.deferToThread(_terminate, node_b.elector.backend_pid)  # node-b steps down
            await until(lambda: ami_up(a) and a.get_agents().local(agent.id) is not None, 20)
            await until(lambda: b.get_agents().all() == [], 10)  # forgotten: they are node-a's now

            stats = await a.get_store().kv_get("agents.stats", str(agent.id))
            assert stats["accrued_until"] >= stepped - 0.5  # counted up to node-b's step-down
            assert stats["auxtime"] >= 1.5 and stats["auxtimes"]["Break"] == stats["auxtime"]
            restored = a.get_agents().local(agent.id)
            assert restored is not None and (restored.status.name, restored.reason) == ("AUX", "Break")
            assert restored.stats_now().auxtime >= stats["auxtime"]  # node-a goes on from them
            assert not [f for f in failures if "cluster" in str(f.get("log_namespace", ""))], failures
    finally:
        globalLogPublisher.removeObserver(observe)


# -- (c) the agents a new owner restores after its term began reach the followers -----------------


@pytest_twisted.ensureDeferred
async def test_a_new_owners_term_begins_only_with_its_agents_restored(tmp_path: Path) -> None:
    """The order is forced: node-b's take-over waits (before restoring its agents).  Meanwhile
    it publishes no term -- a term begun without the agents would show them logged out on every
    standby's bars.  Once they are restored its term begins with them: node-a, a standby now,
    has the agent as node-b has it (AUX, Lunch), in its replica and on its bars' model."""
    from twisted.internet.defer import Deferred

    from serverkit import until
    from test_cluster_node import _terminate, ami_up

    async with cluster_env(phones=2) as env:
        a, node_a, b, node_b, agent = await _agent_1_on_an_owner_and_a_standby(tmp_path, env)
        await a.get_agents().change_status(agent.id, "AUX", "Lunch")
        await until(lambda: node_b.replica().agents.get(str(agent.id), {}).get("reason") == "Lunch", 10)

        held: Deferred[None] = Deferred()
        node_b._domain = held  # its take-over waits here, before restoring the agents
        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await node_b.elector.when("owner")
        await node_a.elector.when("standby")
        await until(lambda: node_a.follower is not None, 20)  # node-a follows again, and waits
        assert node_b.feed is None and not b.get_agents().all()  # no term without the agents

        held.callback(None)  # the agents are restored now, then the term begins
        await until(lambda: node_b.feed is not None and node_b.feed.replica.term.startswith("node-b:"), 20)
        assert node_b.feed.replica.agents.get(str(agent.id), {}).get("reason") == "Lunch"
        await until(lambda: node_a.health()["term"] == node_b.feed.replica.term, 20)
        await until(lambda: ami_up(b) and len(b.get_agents().all()) == 1, 20)
        await until(lambda: node_a.replica().agents.get(str(agent.id), {}).get("reason") == "Lunch", 10)
        assert node_a.replica().agents[str(agent.id)]["status"] == "AUX"
        mirrored = a.get_mirror().get(agent.id)
        assert mirrored is not None and (mirrored.status.name, mirrored.reason) == ("AUX", "Lunch")
        await until(lambda: node_a.replica().agents == node_b.feed.replica.agents, 10)


# -- the rule itself -------------------------------------------------------------------------------


def test_the_newer_of_the_stored_and_the_told_state_is_restored_and_a_logout_heard_later_stays() -> None:
    from ucs.cluster.handover import newest

    def doc(status: str, as_of: float) -> dict[str, Any]:
        return {"user_id": 1, "line_id": 1, "status": status, "reason": "", "as_of": as_of}

    stored = {"1": doc("READY", 10.0), "2": doc("AUX", 30.0), "3": doc("READY", 10.0), "4": doc("READY", 50.0),
              "5": doc("READY", 10.0), "orphans": [["support", "SIP/1009"]]}
    told = {"1": {"status": "AUX", "stored": doc("AUX", 20.0)},  # its save never arrived: the replica's
            "2": {"status": "READY", "stored": doc("READY", 20.0)},  # its event never arrived: the store's
            "5": {"status": "READY"},  # an owner of an older UCS sends no document: the store's
            "6": {"status": "ACW", "stored": doc("ACW", 20.0)}}  # logged in, never saved
    gone = {"3": 20.0,  # logged out after its last save: not brought back
            "4": 40.0}  # logged out, then logged in again and saved (told before this node followed): kept
    docs = newest(dict(stored), told, gone)
    assert {k: d["status"] for k, d in docs.items() if k != "orphans"} == {
        "1": "AUX", "2": "AUX", "4": "READY", "5": "READY", "6": "ACW"}
    assert docs["1"] is told["1"]["stored"] and docs["2"] is stored["2"] and docs["orphans"] == stored["orphans"]
    same = {"1": {"stored": dict(stored["1"], as_of=11.0)}}  # the same state told a moment later: the store's
    assert newest(dict(stored), same, {})["1"] is stored["1"]


def test_the_newer_of_the_stored_and_the_told_figures_are_restored() -> None:
    from ucs.cluster.handover import newest_figures

    def stats(calls: int, ready: float) -> dict[str, Any]:
        return {"day": "2026-12-07", "in_calls_answered": calls, "readytime": ready, "auxtimes": {}, "queues": {}}

    def told(calls: int, ready: float, until: float, as_of: float | None) -> dict[str, Any]:
        figures: dict[str, Any] = {"stats": stats(calls, ready), "accrued_until": until, "busy": False}
        if as_of is not None:
            figures["as_of"] = as_of
        return {"status": "READY", "stored": {"as_of": 99.0}, "figures": figures}

    stored = {"1": dict(stats(0, 5.0), accrued_until=10.0, as_of=10.0),
              "2": dict(stats(3, 50.0), accrued_until=60.0, as_of=60.0),
              "3": dict(stats(1, 5.0), accrued_until=10.0),  # saved by an older UCS: no as_of
              "4": dict(stats(0, 5.0), accrued_until=10.0, as_of=10.0)}
    docs = newest_figures(dict(stored), {
        "1": told(1, 8.0, 20.0, 20.0),  # a call counted after the last save: the told figures
        "2": told(2, 40.0, 50.0, 50.0),  # saved after it was last told: the store's
        "3": told(2, 9.0, 30.0, None),  # told with no as_of: the state's (99)
        "5": {"status": "READY"},  # an owner of an older UCS tells no figures: nothing
        "6": told(1, 2.0, 20.0, 20.0),  # never saved
    }, {"4": told(4, 9.0, 30.0, 30.0)})  # logged out after its last save: as the logout told
    assert {k: d["in_calls_answered"] for k, d in docs.items()} == {"1": 1, "2": 3, "3": 2, "4": 4, "6": 1}
    assert docs["2"] is stored["2"] and (docs["1"]["accrued_until"], docs["1"]["as_of"]) == (20.0, 20.0)
    assert docs["3"]["as_of"] == 99.0
    same = {"1": told(0, 5.0, 10.0, 15.0)}  # the same figures told a moment later: the store's
    assert newest_figures(dict(stored), same, {})["1"] is stored["1"]
