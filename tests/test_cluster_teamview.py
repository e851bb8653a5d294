"""A supervisor on a standby sees the owner's team view, figures and wallboard (issue 20).

Two whole ``UCSServer``s with ``[cluster]`` in one process (as test_cluster_bars),
the real PostgreSQL and NATS, one simulated Asterisk; real WebSocket bars on each
node.  The owner alone hears Asterisk (its ChanSpy events, its calls) and counts
the figures; what a bar on the standby shows came through the stream: who monitors
an agent (its envelopes' ``monitored``), the agent's figures (raw, counted up to now
by the standby; ``agent.quiet`` when a call changes them) and the queues' figures of
the day (``queue.figures``, also in the snapshot a late standby loads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import task, threads

from clusterkit import cluster_env
from serverkit import until, working_agent
from test_cluster_bars import Bar, bar_url, connect, give_phone, login_bar, start_node
from test_cluster_node import _terminate, ami_up
from ucs import demo
from ucs.agents.stats import QUEUE_FIGURES, USER_FIGURES, AgentStats, Days
from ucs.cluster.mirror import MirrorAgent
from ucs.directory.model import Line, User

#: The figures that do not grow while the agent is in AUX or ACW: the same on both nodes.
STILL = [f for f in USER_FIGURES if f not in ("auxtime", "acwtime")]
#: A queue's figures of the day on the wallboard (not its live part, nor the node's clock).
COUNTED = ("answered", "abandoned", "service_level", "average_handle", "average_wait")


def last(bar: Bar, event: str, test: Any = lambda d: True) -> Any:
    return next((m["data"] for m in reversed(bar.log) if m["event"] == event and test(m["data"])), None)


def support(board: dict[str, Any]) -> dict[str, Any]:
    return next(q for q in board["queues"] if q["asterisk_name"] == "support")


@pytest_twisted.ensureDeferred
async def test_a_supervisor_on_the_standby_sees_monitoring_figures_and_the_wallboard_as_on_the_owner(
        tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        sim = env.sim
        a, node_a = await start_node(tmp_path, "node-a", env.store, sim, env.domain, env.servers)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 10)
        await demo.seed(a.get_directory(), 2)
        await give_phone(a, "supervisor", 2)
        b, node_b = await start_node(tmp_path, "node-b", env.store, sim, env.domain, env.servers)
        await node_b.elector.when("standby")
        await until(lambda: node_b.health()["term"] == node_a.health()["term"], 10)

        # Agent 1 works on the owner; the supervisor too, at phone 2 (in no queue: to monitor from).
        await working_agent(a, 1)
        sup = a.get_sessions().create()
        await a.get_registry().call(sup, "login", ["supervisor", "supervisor-demo"])
        await a.get_registry().call(sup, "identifier", [demo.line_of(2)[1]])
        await a.get_registry().call(sup, "supervisor.start")
        agent = next(x for x in a.get_agents().all() if x.username == demo.user_of(1)[0])
        await until(lambda: b.get_mirror().get(agent.id) is not None, 10)

        # The supervisor's team view and wallboard open on each node; the agent's bar on the standby.
        sup_a, sup_b = await connect(bar_url(a)), await connect(bar_url(b))
        for view in (sup_a, sup_b):
            await view.call("login", ["supervisor", "supervisor-demo"])
        user, password = demo.user_of(1)
        bar_a, bar_b = await login_bar(a, user, password), await login_bar(b, user, password)
        env.clients += [sup_a, sup_b, bar_a, bar_b]
        await sup_a.call("supervisor.team")
        await sup_b.call("supervisor.team")
        board_a, board_b = await sup_a.call("wallboard.subscribe"), await sup_b.call("wallboard.subscribe")
        assert support(board_b) == support(board_a) and support(board_b)["ready"] == 1

        # A status change on the owner: the wallboard on the standby counts the agent not ready,
        # and the agent's figures there go on counting its time in AUX with no event at all.
        await a.get_agents().change_status(agent.id, "AUX", "Break")
        await sup_b.wait(lambda: last(sup_b, "wallboard", lambda d: support(d)["not_ready"] == 1), 10)
        await until(lambda: b.get_mirror().get(agent.id).status.name == "AUX", 10)
        told = len(bar_b.log)
        first = (await bar_b.call("state"))["user"]
        mirrored = b.get_mirror().get(agent.id)  # what ``state`` answers there: its ``to_dict()``
        await until(lambda: mirrored.to_dict()["auxtime"] >= first["auxtime"] + 2, 10)
        later = (await bar_b.call("state"))["user"]
        assert later["auxtime"] >= first["auxtime"] + 2 and later["auxtimes"]["Break"] >= 2
        assert len(bar_b.log) == told  # nothing was told meanwhile: the standby counted the time
        owner = (await bar_a.call("state"))["user"]
        assert {f: later[f] for f in STILL} == {f: owner[f] for f in STILL}

        # Back to READY; a customer calls the queue and the agent answers.
        await a.get_agents().change_status(agent.id, "READY")
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.2)
        sim.sim.caller_calls("5000", "420777000001", "Customer")
        await until(lambda: any(c.connected for c in a.get_call_tracker().active_calls()), 10)
        # The wallboard on the standby counts the agent on a call (its phone busy, as the owner said).
        await sup_b.wait(lambda: last(sup_b, "wallboard", lambda d: support(d)["on_call"] == 1), 10)

        # The supervisor (on the owner) listens in: the standby's team view says who listens.
        sup_a.log.clear()
        sup_b.log.clear()
        await a.get_registry().call(sup, "supervisor.monitor", [agent.id, "listen"])
        await until(lambda: any(c.name.startswith("SIP/1002-") for c in sim.sim.channels.values()), 10)
        sim.sim.phone("SIP/1002").answer()
        rows = [await view.wait(lambda v=view: last(v, "team.agent", lambda d: d["id"] == agent.id and d["monitored"]),
                                10) for view in (sup_a, sup_b)]
        assert rows[1]["monitored"] == rows[0]["monitored"]
        assert rows[1]["monitored"][0]["device"] == "SIP/1002" and rows[1]["monitored"][0]["mode"] == "listen"
        assert rows[1]["monitored"][0]["by"] == "supervisor"
        team_a, team_b = await sup_a.call("supervisor.team"), await sup_b.call("supervisor.team")
        row_a, row_b = ({r["id"]: r for r in t}[agent.id] for t in (team_a, team_b))
        assert row_b["monitored"] == row_a["monitored"] == rows[0]["monitored"]

        # The call ends: nobody listens any more, on both nodes' team views.
        sup_a.log.clear()
        sup_b.log.clear()
        sim.sim.phone("SIP/1001").hangup()
        for view in (sup_a, sup_b):
            await view.wait(lambda v=view: last(v, "team.agent", lambda d: d["id"] == agent.id
                                                and not d["monitored"] and d["call"] is None), 10)
        # The call was counted on the owner; the standby's figures say so (no agent event needed),
        # and its wallboard has the owner's figures of the day.
        await until(lambda: not a.get_call_tracker().active_calls(), 10)
        await until(lambda: agent.stats.in_calls_answered == 1, 10)
        board_b = await sup_b.wait(lambda: last(sup_b, "wallboard", lambda d: support(d)["answered"] == 1), 10)
        board_a = await sup_a.wait(lambda: last(sup_a, "wallboard", lambda d: support(d)["answered"] == 1), 10)
        assert {k: support(board_b)[k] for k in COUNTED} == {k: support(board_a)[k] for k in COUNTED}
        await a.get_agents().change_status(agent.id, "AUX", "Break")  # its figures stop moving but AUX time
        await until(lambda: b.get_mirror().get(agent.id).reason == "Break", 10)
        mine, owner = (await bar_b.call("state"))["user"], (await bar_a.call("state"))["user"]
        assert mine["in_calls_answered"] == 1
        assert {f: mine[f] for f in STILL} == {f: owner[f] for f in STILL}
        assert [{f: q[f] for f in QUEUE_FIGURES} for q in mine["queues"].values()] == \
            [{f: q[f] for f in QUEUE_FIGURES} for q in owner["queues"].values()]
        assert sum(q["answered"] for q in mine["queues"].values()) == 1
        # Its queues, paused for the break, as the owner's members say (what ``state`` shows there).
        await until(lambda: _json(mirrored.to_dict()["queues"]) == _json(agent.to_dict()["queues"]), 10)
        assert all(q["paused"] for q in _json(mirrored.to_dict()["queues"]).values())

        # A standby that starts now shows the owner's figures of the day too (the snapshot and the
        # stream since: the owner saves them to the store only every [supervisor] save_interval).
        # (A snapshot stored now has every envelope so far: node c replays none of them.)
        await until(lambda: node_a.stream.acked_seq >= node_b.replica().seq, 10)
        await node_a.feed.store_snapshot()
        c, node_c = await start_node(tmp_path, "node-c", env.store, sim, env.domain, env.servers)
        await node_c.elector.when("standby")
        await until(lambda: node_c.health()["term"] == node_a.health()["term"], 10)
        sup_c = await connect(bar_url(c))
        env.clients.append(sup_c)
        await sup_c.call("login", ["supervisor", "supervisor-demo"])
        await until(lambda: c.get_mirror().get(agent.id) is not None, 10)
        board_c = await sup_c.call("wallboard.subscribe")
        assert {k: support(board_c)[k] for k in COUNTED} == {k: support(board_a)[k] for k in COUNTED}
        assert support(board_c)["answered"] == 1

        # The owner's election session ends: node-b or node-c takes over.  Its term starts with
        # every queue's figures of the day (read from the store node-a saved as it stepped down),
        # so a standby that starts in that term has them from the snapshot, not only from the store.
        await threads.deferToThread(_terminate, node_a.elector.backend_pid)
        await until(lambda: node_b.elector.is_owner or node_c.elector.is_owner, 20)
        (new, other, other_sup) = (node_b, c, sup_c) if node_b.elector.is_owner else (node_c, b, sup_b)
        await until(lambda: new.feed is not None and "support" in new.feed.replica.figures, 20)
        assert new.feed.replica.figures["support"]["figures"]["answered"] == 1
        await until(lambda: other.get_cluster().health()["term"] == new.health()["term"], 20)
        board = await other_sup.call("wallboard.subscribe")
        assert support(board)["answered"] == 1


def _json(value: Any) -> Any:
    """``value`` as a bar gets it (JSON: the queues' keys are strings)."""
    return json.loads(json.dumps(value))


def test_a_mirrored_agents_figures_count_up_to_now_and_start_a_new_day_at_midnight() -> None:
    """What ``state().user`` says on a standby between two envelopes of the agent: the owner's
    raw figures plus the time since, in the status told -- and, past midnight (the owner resets
    its figures with no event), the new day's, counted from its start."""
    days = Days("Europe/Prague")
    clock = task.Clock()
    midnight = days.next_midnight(1796650000.0)
    told_at = midnight - 100.0
    clock.advance(told_at)
    raw = AgentStats(day=days.day(told_at), readytime=50.0, idletime=40.0, in_calls_answered=2)
    raw.queue(3).answered = 2
    d = {"id": 7, "username": "agent7", "status": "READY", "reason": "", "since": told_at - 50.0,
         "readytime": 50, "idletime": 40, "in_calls_answered": 2,
         "queues": {"3": {"queue_id": 3, "answered": 2, "suspendtime": 0}},
         "figures": {"stats": raw.to_doc(), "accrued_until": told_at, "busy": False}}
    agent = MirrorAgent(User(7, "agent7"), Line(1, "SIP/1007"), d, clock, days=days)
    assert (agent.to_dict()["readytime"], agent.to_dict()["idletime"]) == (50, 40)
    clock.advance(30.0)
    now = agent.to_dict()
    assert (now["readytime"], now["idletime"], now["in_calls_answered"]) == (80, 70, 2)
    assert now["queues"]["3"]["answered"] == 2 and "figures" not in now
    agent.update(dict(d, status="AUX", reason="Lunch", figures=dict(d["figures"], busy=True)))
    assert agent.busy and agent.to_dict()["auxtimes"] == {"Lunch": 30} and agent.to_dict()["readytime"] == 50
    clock.advance(100.0)  # 30 s past midnight
    after = agent.to_dict()
    assert (after["auxtime"], after["readytime"], after["in_calls_answered"]) == (30, 0, 0)
    assert after["queues"]["3"]["answered"] == 0
