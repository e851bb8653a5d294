"""A NATS *cluster* split in two mid-call (issue 20: "NATS down or partitioned").

Three ``nats-server -js`` in one NATS cluster (``tests/natsserver.py``:
:class:`~natsserver.NatsCluster`), every route through a
:class:`~cutproxy.CutProxy`; three whole ``UCSServer``s in one process, each on a
NATS server of its own: the owner A on server 1, the standbys B and C on servers 2
and 3; the real PostgreSQL and one simulated Asterisk.  Server 1's routes are cut
while a call is up: server 1 is alone (a minority), servers 2 and 3 keep
JetStream's quorum -- the stream, bucket and object store have three replicas
(``EventStream.ensure`` in a NATS cluster), so they live on with B and C.

A, still the owner (PostgreSQL is untouched), keeps the AMI truth and writes its
CDRs; it cannot publish (no quorum on its side) and says so on ``/health``
(``lost``).  B and C hear no beat from A: ``/health`` says ``owner: "unheard"`` and
B's bar gets the ``cluster`` notice.  Routes mended, the cluster converges: A's new
term reaches B and C, their replicas are A's, B's bar shows the call that began
meanwhile and not the one that ended, and every CDR is stored once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher

from clusterkit import cluster_env, pause
from natsserver import NatsCluster, NatsServer, nats_cluster  # noqa: F401 - the fixture
from serverkit import until, working_agent
from test_cluster_bars import cluster_notices, login_bar, until_rows
from test_cluster_node import ami_up
from test_cluster_partition import AmiWatch
from ucs import demo
from ucs.server import UCSServer

#: What the nodes run with: the defaults but a shorter snapshot interval, the broken
#: owner's feed trying a new term that often (the default 10 s would only make it slower).
TIMINGS = {"snapshot_interval": 2.0}
#: Seconds B and C get to converge once the routes are mended: 2.3-14.6 s in most runs here; a
#: snapshot body read just after the mend may hang until its limit (``stream.BODY_TIMEOUT``, 8 s
#: for these), then the next check reads it again: 21-23 s (with the 30 s it had: 37, 43, >60 s).
CONVERGE = 60.0


async def monitor(server: NatsServer, what: str) -> dict[str, Any]:
    """A NATS server's monitoring page (``routez``, ``jsz?...``)."""
    response = await treq.get(f"http://127.0.0.1:{server.monitor_port}/{what}", timeout=5)
    body: dict[str, Any] = json.loads(await response.content())
    return body


async def until_monitor(server: NatsServer, what: str, test: Any, timeout: float = 30) -> dict[str, Any]:
    """The monitoring page once ``test`` accepts it."""
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    seen: dict[str, Any] = {}
    while reactor.seconds() < deadline:  # type: ignore[attr-defined]
        try:
            seen = await monitor(server, what)
        except Exception:  # noqa: S110 - starting
            seen = {}
        if seen and test(seen):
            return seen
        await pause()
    raise AssertionError(f"{what} of {server.name} never became what the test waits for; last: {seen}")


def routes(n: int) -> Any:
    return lambda page: page.get("num_routes") == n


async def formed(cluster: NatsCluster) -> None:
    """Every server routed to the two others, and JetStream's meta group with a leader."""
    for server in cluster.servers:
        await until_monitor(server, "routez", routes(len(cluster.servers) - 1))
    for server in cluster.servers:
        await until_monitor(server, "jsz", lambda page: (page.get("meta_cluster") or {}).get("leader"))


async def start(env: Any, tmp_path: Path, name: str, server: NatsServer, owner: UCSServer | None) -> UCSServer:
    cluster = {"nats": [server.url], **TIMINGS}
    if owner is None:
        return await env.start_owner(tmp_path, name, 2, cluster=cluster)
    return await env.start_standby(tmp_path, name, owner, cluster=cluster)


async def snapshot_term(node: Any, timeout: float = 30) -> str:
    """The term of the snapshot manifest ``node`` reads from the bucket, once it can read it
    (after a split the majority's side elects the bucket's new leader first)."""
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while True:
        try:
            manifest = await node.stream.get_manifest()
            if manifest is not None:
                return str(manifest.term)
        except Exception:  # noqa: S110 - no leader yet: a timeout
            pass
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise AssertionError(f"{node.node} could not read the snapshot's manifest within {timeout} s")
        await pause()


def calls_of(bar: Any, event: str, uniqueid: str) -> list[dict[str, Any]]:
    return [m for m in bar.log if m["event"] == event and m["data"]["uniqueid"] == uniqueid]


@pytest_twisted.ensureDeferred
async def test_a_nats_cluster_split_mid_call_the_owner_goes_on_alone_and_the_cluster_converges_when_mended(
        tmp_path: Path, nats_cluster: NatsCluster) -> None:  # noqa: F811 - the fixture
    await formed(nats_cluster)
    s1, s2, s3 = nats_cluster.servers
    async with cluster_env(phones=2) as env:
        store, sim = env.store, env.sim
        a = await start(env, tmp_path, "node-a", s1, None)
        b = await start(env, tmp_path, "node-b", s2, a)
        c = await start(env, tmp_path, "node-c", s3, a)
        node_a, node_b, node_c = a.get_cluster(), b.get_cluster(), c.get_cluster()
        logged: list[str] = []  # what the nodes log about the cluster: printed if they do not converge

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "ucs.cluster":
                logged.append(f"{event.get('log_time', 0):.1f} {event['log_level'].name} {formatEvent(event)}")

        globalLogPublisher.addObserver(observe)
        env.closing.append(lambda: globalLogPublisher.removeObserver(observe))
        # In a NATS cluster the stream and the snapshots' bucket and store have three replicas.
        streams = (await monitor(s1, "jsz?accounts=true&streams=true&config=true"))["account_details"][0]
        replicas = {d["name"]: d["config"]["num_replicas"] for d in streams["stream_detail"]}
        assert replicas == {node_a.names.stream: 3, f"KV_{node_a.names.bucket}": 3,
                            f"OBJ_{node_a.names.snapshots}": 3}, replicas

        await working_agent(a, 1)
        agent = next(x for x in a.get_agents().all() if x.device == "SIP/1001")
        await until(lambda: b.get_mirror().get(agent.id) is not None and c.get_mirror().get(agent.id) is not None,
                    20)
        bar_a = await login_bar(a, *demo.user_of(1))
        bar_b = await login_bar(b, *demo.user_of(1))
        env.clients += [bar_a, bar_b]
        watch = AmiWatch(sim)
        env.closing.append(watch.stop)
        watch.start()

        # A call is up when the split comes; B's bar shows it.
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000001", "First")
        first = (await bar_a.event("call.connect", timeout=20))["data"]["uniqueid"]
        await bar_b.wait(lambda: calls_of(bar_b, "call.connect", first) or None, 20)

        for node in (node_b, node_c):  # the owner's beats cross the NATS cluster
            await until(lambda n_=node: n_.health()["owner"] == "heard" and n_.health()["owner_node"] == "node-a", 10)

        term = node_a.health()["term"]
        assert node_b.health()["term"] == term and node_c.health()["term"] == term
        await nats_cluster.cut(0)  # server 1 alone; servers 2 and 3 keep the quorum
        cut_at = reactor.seconds()  # type: ignore[attr-defined]
        for server, n in ((s1, 0), (s2, 1), (s3, 1)):
            await until_monitor(server, "routez", routes(n))

        # The standbys hear the owner no more: /health says so, B's bar is told.
        for node in (node_b, node_c):
            await until(lambda n_=node: n_.health()["owner"] == "unheard", 20)
            h = node.health()
            assert h["nats"] == "up" and h["role"] == "standby" and h["owner_node"] == "node-a", h
        told = await bar_b.wait(lambda: next((n for n in cluster_notices(bar_b) if not n["ok"]), None), 20)
        assert told["owner"] == "unheard" and told["nats"] == "up" and "not been heard" in told["message"]

        # The majority's side still has the stream and the snapshots (three replicas): a node
        # that starts there, or takes over, reads the owner's last term.
        assert await snapshot_term(node_b) == term and await snapshot_term(node_c) == term

        # A keeps the AMI link: the first call ends, its CDR is written; a second one begins.
        sim.sim.phone("SIP/1001").hangup()
        await bar_a.event("call.hangup", timeout=20)
        await until_rows(store, [first])
        await a.get_agents().change_status(agent.id, "READY")
        sim.sim.caller_calls("5000", "420777000002", "Second")
        second = (await bar_a.event("call.connect", timeout=20))["data"]["uniqueid"]
        # It cannot publish (no quorum on its side), and says so on /health.
        await until(lambda: node_a.health()["lost"] > 0, 20)
        h = node_a.health()
        assert h["role"] == "owner" and h["nats"] == "up", h
        assert node_a.elector.is_owner and ami_up(a)
        # A's own bar is told its events do not reach the other nodes (its calls go on).
        told_a = await bar_a.wait(lambda: next((n for n in cluster_notices(bar_a) if not n["ok"]), None), 20)
        assert told_a["nats"] == "up" and told_a["role"] == "owner" and "do not reach" in told_a["message"]
        # Nothing of it reached B meanwhile.
        assert not calls_of(bar_b, "call.hangup", first) and not calls_of(bar_b, "call.connect", second)

        print(f"cut for {reactor.seconds() - cut_at:.1f} s")  # type: ignore[attr-defined]
        nats_cluster.mend(0)
        mended_at = reactor.seconds()  # type: ignore[attr-defined]
        for server in (s1, s2, s3):
            await until_monitor(server, "routez", routes(2))
        # A's new term reaches B and C: their replicas are A's.
        try:
            for node in (node_b, node_c):
                await until(lambda n_=node: n_.health()["term"] == node_a.health()["term"]
                            and n_.follower.replica.state() == node_a.feed.replica.state(), CONVERGE)
                await until(lambda n_=node: n_.health()["owner"] == "heard", 20)
        except AssertionError:
            for node in (node_a, node_b, node_c):
                print(node.node, node.health(), node.feed and (node.feed.broken, node.stream.lost))
            print(f"mended at {mended_at:.1f}", *logged, sep="\n")
            for server in nats_cluster.servers:
                print(server.name, (server.dir / "nats.log").read_text()[-4000:])
            raise
        took = reactor.seconds() - mended_at  # type: ignore[attr-defined]
        print(f"B and C have A's model {took:.1f} s after the routes were mended (at {mended_at:.1f})")
        if took > 10:
            print(*logged, sep="\n")
        await bar_b.wait(lambda: (cluster_notices(bar_b) or [{}])[-1].get("ok") or None, 20)
        await bar_a.wait(lambda: (cluster_notices(bar_a) or [{}])[-1].get("ok") or None, 20)  # A's new term
        # B's bar: the first call ended, the second is up, the agent on it.
        await bar_b.wait(lambda: calls_of(bar_b, "call.hangup", first) or None, 20)
        await bar_b.wait(lambda: calls_of(bar_b, "call.connect", second) or None, 20)
        state = await bar_b.call("state")
        assert [x["uniqueid"] for x in state["calls"]] == [second], state["calls"]
        assert b.get_mirror().get(agent.id) is not None and c.get_mirror().get(agent.id) is not None

        sim.sim.phone("SIP/1001").hangup()
        await bar_b.wait(lambda: calls_of(bar_b, "call.hangup", second) or None, 20)
        await until_rows(store, [first, second])  # each call's CDR once
        assert node_a.elector.is_owner and not node_b.elector.is_owner and not node_c.elector.is_owner
        assert watch.most == 1, f"{watch.most} AMI sessions at once"
