"""Issue 20: a user's sessions across the nodes -- logouts, ``ops.sessions``, metrics.

Three whole ``UCSServer``s with ``[cluster]`` in one process (real PostgreSQL,
real NATS, the simulated Asterisk over AMI TCP), real WebSocket clients: node A
owns the AMI link, B and C are standbys.  An agent with a bar on A and a bar on
B logs out on A: B's bar gets the "logged out in another window" a second tab
on one UCS gets, its session is back to the login form and its row is gone from
the store.  An administrator on C logs the agent out: both bars get "You were
logged out by an administrator.".  A supervisor on C logs another agent out:
its bars on A and B go back to choosing a phone.  A tab on B with ``autologout``
is logged out by its user's login on A.  ``ops.sessions`` on C lists
the sessions of all three nodes, each saying its node, with the owner's agent
statuses; a node that stops answering is named in ``missing``, and its users'
sessions are not listed.  ``/metrics`` of each node names it, its role and the
stream position.

A node cut off from NATS misses the logout's notice: node B, alone cut off, reads
it from the store at its next sessions heartbeat -- its bar logged in before the
logout gets "logged out in another window", its tab logged in after stays, and
nothing more happens when its link comes back; a supervisor's logout heard on B
is not carried out again when B reads it from the store (the bar that chose its
phone again keeps it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest_twisted
import treq
from twisted.internet import reactor

from clusterkit import cluster_env
from cutproxy import CutProxy
from pgkit import POSTGRES_URL
from serverkit import until
from test_cluster_stream import NATS_URL
from test_metrics import samples
from test_web_api import connect
from ucs.cluster.sessync import subjects
from ucs import demo
from ucs.constants import SessionState
from ucs.server import UCSServer

ADMIN = "admin-secret-1"


def user_rows(schema: str, user_id: int) -> list[tuple[Any, ...]]:
    """The stored agent-bar sessions of a user (every node's)."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        return list(conn.execute(f'SELECT node, state FROM "{schema}".sessions WHERE user_id = %s',
                                 (user_id,)).fetchall())


def states(server: UCSServer, user_id: int) -> list[SessionState]:
    return [s.state for s in server.get_sessions() if s.kind == "ws" and s.user_id == user_id]


async def bar_of(server: UCSServer, n: int, *, phone: bool) -> Any:
    """Demo agent ``n``'s bar on ``server``, logged in (and working on its phone)."""
    bar = await connect(server.get_web_service().ws_url)
    await bar.call("login", list(demo.user_of(n)))
    if phone:
        await bar.call("identifier", [demo.line_of(n)[1]])
        await bar.call("provision")
    return bar


async def working_on_a_with_a_bar_on_b(a: UCSServer, b: UCSServer, user_id: int, bars: list[Any]) -> tuple[Any, Any]:
    """Demo agent 1 works through a bar on ``a`` (its phone paired) and has a second bar on ``b``,
    READY there too (the owner's agent, as ``b`` follows it)."""
    bar_a = await bar_of(a, 1, phone=True)
    bars.append(bar_a)
    await until(lambda: b.get_agents().get(user_id) is not None, 10)
    bar_b = await bar_of(b, 1, phone=False)
    bars.append(bar_b)
    assert states(b, user_id) == [SessionState.READY]
    return bar_a, bar_b


async def metrics(server: UCSServer) -> str:
    text: str = await (await treq.get(f"http://127.0.0.1:{server.get_web_service().port}/metrics")).text()
    return text


@pytest_twisted.ensureDeferred
async def test_logouts_reach_every_node_and_ops_sessions_lists_them_all(tmp_path: Path) -> None:
    async with cluster_env(phones=3) as env:
        schema, bars = env.schema, env.clients
        timeout = {"request_timeout": 2.0}
        a = await env.start_owner(tmp_path, "node-a", 3, auth={"admin_password": ADMIN}, cluster=timeout)
        b = await env.start_standby(tmp_path, "node-b", a, cluster=timeout)
        c = await env.start_standby(tmp_path, "node-c", a, cluster=timeout)
        uid = {n: a.get_directory().user_by_username(demo.user_of(n)[0]).id for n in (1, 2, 3)}  # type: ignore[union-attr]

        # /metrics of each node: which node, its role, its links, the stream's position.
        await until(lambda: b.get_cluster().health()["seq"] > 0, 10)
        for server, name, role in ((a, "node-a", "owner"), (b, "node-b", "standby"), (c, "node-c", "standby")):
            text = await metrics(server)
            roles = samples(text, "ucs_cluster_role")
            assert roles[f'{{node="{name}",role="{role}"}}'] == 1.0
            assert sum(roles.values()) == 1.0 and len(roles) == 4
            assert samples(text, "ucs_cluster_nats_up") == {f'{{node="{name}"}}': 1.0}
            assert samples(text, "ucs_cluster_postgresql_up") == {f'{{node="{name}"}}': 1.0}
            assert samples(text, "ucs_cluster_lost_events_total") == {f'{{node="{name}"}}': 0.0}
            assert samples(text, "ucs_cluster_seq")[f'{{node="{name}"}}'] > 0
        assert 'ucs_ami_link_up{state="up"} 1.0' in (await metrics(a)).splitlines()

        # Agent 1 works through a bar on A and has a second bar on B (READY there too).
        bar_a, bar_b = await working_on_a_with_a_bar_on_b(a, b, uid[1], bars)
        await until(lambda: {r[0] for r in user_rows(schema, uid[1])} == {"node-a", "node-b"}, 10)

        # ops.sessions on C: every node's sessions, each with its node; the agent's status from the owner.
        root = await connect(c.get_web_service().ws_url)
        bars.append(root)
        await root.call("login", ["admin", ADMIN])
        reply = await root.call("ops.sessions")
        assert reply["missing"] == []
        assert reply["nodes"] == [{"node": "node-c", "role": "standby"}, {"node": "node-a", "role": "owner"},
                                  {"node": "node-b", "role": "standby"}]
        rows = {r["username"]: r for r in reply["users"]}
        assert set(rows) == {"admin", "agent1"}
        one = rows["agent1"]
        assert (one["status"], one["line"]["device"], one["you"]) == ("READY", "SIP/1001", False)
        assert [(s["node"], s["kind"], s["state"]) for s in one["sessions"]] == [
            ("node-a", "ws", "READY"), ("node-b", "ws", "READY")]
        assert rows["admin"]["you"] and [s["node"] for s in rows["admin"]["sessions"]] == ["node-c"]

        # Notices nobody could have meant are ignored (logged): nothing ends, every node answers.
        link, applied = a.get_cluster().link, b.get_cluster().sessync.applied
        ended, who = subjects(a.get_cluster().names)
        for subject, data in ((ended, b"not json"), (ended, b'{"v": 2, "user_id": 2, "how": "logout"}'),
                              (ended, b'{"v": 1, "user_id": "2", "how": "logout"}'),
                              (ended, b'{"v": 1, "user_id": 2, "how": "everything"}'), (who, b"[1]"),
                              (who, b'{"v": 1, "me": "admin"}')):
            await link.bridge.run(link.nc.publish, subject, data)
        assert (await root.call("ops.sessions"))["missing"] == []
        assert states(b, uid[1]) == [SessionState.READY] and states(a, uid[1]) == [SessionState.READY]
        assert b.get_cluster().sessync.applied == applied

        # The agent logs out on A: B's bar is told as a second tab on one UCS is, its row is gone.
        await bar_a.call("logout")
        told = await bar_b.event("logout", timeout=5)
        assert told["data"] == {"reason": "logged out in another window"}
        assert b.get_sessions().get(bar_b.hello["sid"]).state is SessionState.CREDENTIALS
        assert states(b, uid[1]) == []
        await until(lambda: user_rows(schema, uid[1]) == [], 10)
        await until(lambda: b.get_agents().get(uid[1]) is None, 10)
        assert "agent1" not in {r["username"] for r in (await root.call("ops.sessions"))["users"]}

        # Back to work on both; the administrator on C logs the agent out: both bars are closed with why.
        await bar_a.call("login", list(demo.user_of(1)))
        await bar_a.call("identifier", [demo.line_of(1)[1]])
        await bar_a.call("provision")
        await until(lambda: b.get_agents().get(uid[1]) is not None, 10)
        await bar_b.call("login", list(demo.user_of(1)))
        await until(lambda: len(user_rows(schema, uid[1])) == 2, 10)
        done = await root.call("ops.logout", [uid[1]])
        assert (done["username"], done["agent"]) == ("agent1", True)
        for bar in (bar_a, bar_b):
            closed = (await bar.event("session.closed", timeout=5))["data"]
            assert closed["message"] == "You were logged out by an administrator."
        assert states(a, uid[1]) == [] and states(b, uid[1]) == []
        await until(lambda: user_rows(schema, uid[1]) == [] and a.get_agents().get(uid[1]) is None, 10)

        # A supervisor on C logs agent 2 out (the owner does it): its bars on A and B choose a phone again.
        bars += [await bar_of(a, 2, phone=True)]
        await until(lambda: b.get_agents().get(uid[2]) is not None, 10)
        bars += [await bar_of(b, 2, phone=False)]
        assert states(a, uid[2]) == [SessionState.READY] and states(b, uid[2]) == [SessionState.READY]
        boss = await connect(c.get_web_service().ws_url)
        bars.append(boss)
        await boss.call("login", ["supervisor", "supervisor-demo"])
        await boss.call("supervisor.start")
        await boss.call("agents.logout", [uid[2]])
        await until(lambda: states(a, uid[2]) == [SessionState.IDENTIFY]
                    and states(b, uid[2]) == [SessionState.IDENTIFY], 5)
        assert a.get_agents().get(uid[2]) is None

        # Agent 3's tab on B asks to be logged out when they log in elsewhere: a login on A does it.
        tab = await bar_of(b, 3, phone=False)
        bars.append(tab)
        await tab.call("session.options", {"autologout": True})
        on_a = await bar_of(a, 3, phone=False)
        bars.append(on_a)
        closed = (await tab.event("session.closed", timeout=5))["data"]
        assert closed["message"] == "You were logged out: you logged in on another computer or window."
        # Agent 3 is logged in on A only, with no phone (no agent): C asks the others before refusing.
        done = await root.call("ops.logout", [uid[3]])
        assert (done["username"], done["sessions"], done["agent"]) == ("agent3", 0, False)
        closed = (await on_a.event("session.closed", timeout=5))["data"]
        assert closed["message"] == "You were logged out by an administrator."

        # B stops answering (its part of NATS for sessions gone; its heartbeat goes on): named, not listed.
        await b.get_cluster().sessync.stop()
        started = reactor.seconds()  # type: ignore[attr-defined]
        reply = await root.call("ops.sessions")
        assert reply["missing"] == ["node-b"]
        assert [n["node"] for n in reply["nodes"]] == ["node-c", "node-a"]
        assert reactor.seconds() - started >= 2.0  # type: ignore[attr-defined]  # waited its request_timeout
        two = {r["username"]: r for r in reply["users"]}["agent2"]
        assert [s["node"] for s in two["sessions"]] == ["node-a"]  # B's bar of agent 2 is not known


@pytest_twisted.ensureDeferred
async def test_a_node_cut_off_from_nats_carries_out_the_logout_it_missed_once(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        nats = CutProxy(reactor, urlsplit(NATS_URL).port or 4222)  # node B's way to NATS
        nats.start()
        env.proxies.append(nats)
        fast = {"resume_window": 4.0}  # a sessions heartbeat a second
        a = await env.start_owner(tmp_path, "node-a", 2, web=fast)
        b = await env.start_standby(tmp_path, "node-b", a, web=fast,
                                    cluster={"nats": [f"nats://127.0.0.1:{nats.port}"]})
        node_b, bars = b.get_cluster(), env.clients
        stored = node_b.sessions.logouts
        uid = {n: a.get_directory().user_by_username(demo.user_of(n)[0]).id for n in (1, 2)}  # type: ignore[union-attr]

        def logouts_told(bar: Any) -> list[dict[str, Any]]:
            return [m["data"] for m in bar.inbox if m["event"] == "logout"]

        async def reads(n: int) -> None:
            """B has read the store ``n`` more times from now."""
            first = stored.reads
            await until(lambda: stored.reads >= first + n, 10)

        # Agent 1 works through a bar on A and has a bar on B; then B is cut off from NATS.
        bar_a, bar_b = await working_on_a_with_a_bar_on_b(a, b, uid[1], bars)
        await nats.refuse()
        await until(lambda: node_b.link.state != "up", 20)

        # The agent logs out on A; B does not hear it.  A tab logs in on B after the logout.
        await bar_a.call("logout")
        tab = await connect(b.get_web_service().ws_url)
        bars.append(tab)
        await tab.call("login", list(demo.user_of(1)))
        # B's heartbeat reads it: the bar logged in before is told as a second tab is; the tab stays.
        told = await bar_b.event("logout", timeout=10)
        assert told["data"] == {"reason": "logged out in another window"}
        assert b.get_sessions().get(bar_b.hello["sid"]).state is SessionState.CREDENTIALS
        await reads(2)  # a read after the tab's login
        assert b.get_sessions().get(tab.hello["sid"]).user_id == uid[1] and logouts_told(tab) == []
        assert stored.caught_up == 1

        # B's link comes back (a read at once, then its heartbeats): nothing more.
        nats.restore()
        await until(lambda: node_b.link.state == "up", 30)
        await reads(2)
        assert b.get_sessions().get(tab.hello["sid"]).user_id == uid[1] and len(states(b, uid[1])) == 1
        assert logouts_told(tab) == [] and logouts_told(bar_b) == [] and stored.caught_up == 1

        # A supervisor on A logs agent 2 out; B hears it: its bar chooses a phone again, and keeps it
        # when B reads that logout from the store afterwards.
        bars.append(await bar_of(a, 2, phone=True))
        await until(lambda: b.get_agents().get(uid[2]) is not None, 10)
        bar_b2 = await bar_of(b, 2, phone=False)
        bars.append(bar_b2)
        assert states(b, uid[2]) == [SessionState.READY]
        boss = await connect(a.get_web_service().ws_url)
        bars.append(boss)
        await boss.call("login", ["supervisor", "supervisor-demo"])
        await boss.call("supervisor.start")
        await boss.call("agents.logout", [uid[2]])
        await until(lambda: states(b, uid[2]) == [SessionState.IDENTIFY], 5)
        caught = stored.caught_up  # heard (or, were the notice slow, read first)
        await bar_b2.call("identifier", [demo.line_of(2)[1]])
        await bar_b2.call("provision")
        assert states(b, uid[2]) == [SessionState.READY]
        await reads(2)
        assert states(b, uid[2]) == [SessionState.READY] and stored.caught_up == caught
