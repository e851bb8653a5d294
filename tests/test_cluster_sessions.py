"""An agent bar's session resumes on another node after its node stopped (issue 20).

Two whole ``UCSServer``s with ``[cluster]`` in one process (as in
tests/test_cluster_node.py): the real PostgreSQL (one schema for both), the real
NATS, the simulated Asterisk on a port of its own, and real WebSocket clients
speaking the bar's protocol.  Node A owns the AMI link; three agents log in on
it.  Node B starts, a standby.  A's container stops -- its bars lose their
sockets, its election session and its heartbeat end -- and one bar reconnects
to B with its session id: the same session, user and phone, ``state`` as after
a reload, and the agent still READY in the simulator's queues (nothing was asked
of Asterisk).  A wrong id, a logged-out session and one that waited past the
resume window are refused, each saying so.  The bar that never came back is
expired once, by B once it owns the AMI link: its agent is out of the
simulator's queues; the resumed one's agent stays in.  The store keeps only
the hash of a session id.

B resumes the session while it is still a standby (the bar does not wait for
the election); what B needs of the agent (``state``) its own ``Agents`` restored
from the store when it started, after the logins on A.  A standby's model fed
from the owner's stream (cl-bars) and commands forwarded to the owner
(cl-commands) are not used here.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest_twisted
from twisted.internet import threads

from clusterkit import cluster_env
from pgkit import POSTGRES_URL
from serverkit import until
from test_cluster_node import ami_up
from test_web_api import CallError, connect, ready_agent, ws_url
from ucs import demo
from ucs.sim.service import SimService

#: The resume window of both nodes: long enough for B to take the AMI link in it (about 5 s).
WINDOW = 9.0


def members(sim: SimService, device: str) -> dict[str, tuple[bool, str]]:
    """``device``'s memberships as the simulated Asterisk has them: queue → (paused, reason)."""
    out = {}
    for name, queue in sim.sim.queues.items():
        m = queue.members.get(device)
        if m is not None:
            out[name] = (bool(m.paused), m.reason if m.paused else "")
    return out


def rows(schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        return list(conn.execute(f'SELECT * FROM "{schema}".sessions').fetchall())


@pytest_twisted.ensureDeferred
async def test_a_bar_resumes_on_another_node_after_its_node_stopped(tmp_path: Path) -> None:
    async with cluster_env(phones=3) as env:
        schema, sim, servers, bars = env.schema, env.sim, env.servers, env.clients
        web = {"port": 0, "resume_window": WINDOW}
        # The owner, with the demo's users and lines, on the simulator's phones.
        a = await env.start_owner(tmp_path, "node-a", 3, web=web)
        await until(lambda: bool(a.get_pbx_link().resyncs), 10)

        # Three agents log in on A; the third logs out again.
        one, two, three = [await ready_agent(a, i) for i in (1, 2, 3)]
        bars += [one, two, three]
        await three.call("logout")
        sids = [bar.hello["sid"] for bar in (one, two, three)]
        for device in ("SIP/1001", "SIP/1002"):
            assert members(sim, device) == {"support": (False, ""), "sales": (False, "")}
        logged_in = a.get_agents().agent(one_id := a.get_directory().user_by_username(demo.user_of(1)[0]).id).logged_in
        stored = a.get_store()
        await until(lambda: a.get_cluster().sessions.flushed().called, 5)

        # The store has each logged-in session by the SHA-256 of its id, never the id.
        table = await threads.deferToThread(rows, schema)
        assert {r[0] for r in table} == {hashlib.sha256(s.encode()).hexdigest() for s in sids[:2]}
        assert not any(sid in repr(r) for r in table for sid in sids)
        row = await stored.session_get(hashlib.sha256(sids[0].encode()).hexdigest())
        assert row is not None and row["user_id"] == one_id and row["state"] == "READY" and row["node"] == "node-a"
        assert row["expires"] is None  # a bar is attached

        await a.get_agents().flush()  # what B's agents restore when B starts
        b = await env.start(tmp_path, "node-b", web=web)
        node_b: Any = b.get_cluster()
        await node_b.elector.when("standby")
        # B has followed A's stream up to the agents' logins (a standby that has just started
        # may not have yet: a bar resumed on it then is asked for its phone again).
        await until(lambda: b.get_agents().get(one_id) is not None, 10)

        # A stops: its bars lose their sockets, its election session and heartbeat end.
        await a.service.stopService()
        servers.remove(a)
        for bar in (one, two):
            await bar.closed

        # Bar one reconnects -- to B -- and resumes its session with its id.
        back = await connect(ws_url(b))
        bars.append(back)
        assert back.hello["sid"] != sids[0]
        resumed = await back.call("session.resume", [sids[0]])
        assert resumed["sid"] == sids[0] and resumed["state"] == "READY"
        assert resumed["user"]["username"] == demo.user_of(1)[0]
        assert resumed["device"]["device"] == "SIP/1001"
        state = await back.call("state")  # what the bar loads after a resume, as after a reload
        assert state["status"] == "READY" and state["device"]["device"] == "SIP/1001"
        assert state["user"]["username"] == demo.user_of(1)[0] and state["user"]["logged_in"] == logged_in
        assert len(state["queues"]) == 2
        (session,) = [s for s in b.get_sessions() if s.sid == sids[0]]
        assert session.user is not None and session.user.id == one_id and session.line is not None
        # No second login in Asterisk, no status change: the agent works as it did on A.
        agent = b.get_agents().get(one_id)  # on a standby: the owner's agent as its replica has it
        assert agent is not None and agent.logged_in == logged_in
        assert members(sim, "SIP/1001") == {"support": (False, ""), "sales": (False, "")}
        await until(lambda: node_b.sessions.flushed().called, 5)
        row = await b.get_store().session_get(hashlib.sha256(sids[0].encode()).hexdigest())
        assert row is not None and row["node"] == "node-b" and row["expires"] is None

        # A wrong id, and the session that logged out, are refused, each saying why.
        other = await connect(ws_url(b))
        bars.append(other)
        for sid, why in ((secrets.token_urlsafe(18), "has ended"), (sids[2], "has ended")):
            try:
                await other.call("session.resume", [sid])
                raise AssertionError(f"resuming {why!r} succeeded")
            except CallError as e:
                assert e.error["code"] == 404 and why in e.error["message"] and "log in again" in e.error["message"]

        # B takes the AMI link.  Bar two never comes back: once A's last heartbeat is a resume
        # window old, B -- the owner -- expires its session, once: agent two leaves the queues.
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b), 10)
        await until(lambda: members(sim, "SIP/1002") == {}, WINDOW + 10)
        assert node_b.sessions.expired == 1
        assert b.get_agents().get(a.get_directory().user_by_username(demo.user_of(2)[0]).id) is None
        try:
            await other.call("session.resume", [sids[1]])
            raise AssertionError("an expired session resumed")
        except CallError as e:
            assert e.error["code"] == 404 and "log in again" in e.error["message"]
        # The resumed bar's agent kept working through it all, on the PBX too.
        assert members(sim, "SIP/1001") == {"support": (False, ""), "sales": (False, "")}
        assert b.get_agents().agent(one_id).status.name == "READY"
        assert (await back.call("session.ping"))["now"] > 0
        assert node_b.sessions.expired == 1
