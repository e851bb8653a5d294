"""Agent-bar sessions in the store (issue 20): the rows, the claims, the expiry.

On both back ends (SQLite, PostgreSQL): only the node that serves a session writes
its row, and a node that took it over is not overwritten by the one it came from;
the id is never stored, only its SHA-256; a session of a dead node (no heartbeat)
waits a resume window from the node's last heartbeat, then cannot be resumed; two
sweeps at once end a due session once; a user with another live bar is told
apart.  Then :class:`StoredSessions` on a clock, two "nodes" on one store: the row
follows the session (attached, detached, gone for good, logged out); the other
node re-creates a session from it with the same id, user and phone, a stale copy
on the first node is dropped when the session comes back; only the owner
expires, once.  Tests/test_cluster_sessions.py does it with two whole nodes.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from serverkit import until
from twisted.internet import defer, reactor, task

from ucs.api.session import SessionManager
from ucs.api.stored_sessions import GONE, StoredSessions, token_hash
from ucs.constants import SessionState
from ucs.directory.model import Line, User
from ucs.error import NotFound
from ucs.store import open_store


def row(sid: str, node: str, *, user_id: int = 7, expires: float | None = None, state: str = "READY",
        seen: float = 100.0) -> dict[str, Any]:
    return {"sid_hash": token_hash(sid), "kind": "ws", "user_id": user_id, "line_id": 3, "state": state,
            "options": {"autologout": True, "logout_on_close": True}, "node": node, "created": 90.0,
            "seen": seen, "expires": expires}


@pytest_twisted.ensureDeferred
async def test_rows_belong_to_their_node_and_a_claim_moves_them(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    try:
        await s.session_write([("put", row("secret-1", "a"))])
        got = await s.session_get(token_hash("secret-1"))
        assert got is not None and got["node"] == "a" and got["options"]["logout_on_close"] is True
        assert "secret-1" not in repr(got)  # only the hash
        status, before = await s.session_claim(token_hash("secret-1"), "b", 101.0, 10.0, 3.0)
        assert status == "claimed" and before is not None and before["node"] == "a"
        # Node a, which does not know, writes and deletes its copy: neither touches b's row.
        await s.session_write([("put", row("secret-1", "a", state="IDENTIFY")),
                               ("delete", (token_hash("secret-1"), "a"))])
        got = await s.session_get(token_hash("secret-1"))
        assert got is not None and got["node"] == "b" and got["state"] == "READY" and got["expires"] is None
        await s.session_write([("delete", (token_hash("secret-1"), "b"))])
        assert await s.session_claim(token_hash("secret-1"), "c", 102.0, 10.0, 3.0) == ("missing", None)
        assert await s.session_claim(token_hash("never"), "c", 102.0, 10.0, 3.0) == ("missing", None)
    finally:
        await s.close()


@pytest_twisted.ensureDeferred
async def test_a_dead_nodes_sessions_expire_once_a_window_after_its_last_heartbeat(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    window, stale = 10.0, 3.0
    try:
        await s.session_heartbeat("a", 100.0)
        await s.session_heartbeat("b", 100.0)
        await s.session_write([("put", row("one", "a")), ("put", row("two", "a", user_id=8)),
                               ("put", row("waits", "b", user_id=9, expires=150.0))])
        assert await s.session_sweep(101.0, window, stale) == []  # a is alive
        # a stops at 100; b keeps beating.  At 109 a's sessions may still be resumed ...
        await s.session_heartbeat("b", 109.0)
        assert await s.session_sweep(109.0, window, stale) == []
        # ... at 111 no longer: "one" expired, and two sweeps at once end "two" once.
        await s.session_heartbeat("b", 111.0)
        assert (await s.session_claim(token_hash("one"), "b", 111.0, window, stale))[0] == "expired"
        await s.session_write([("put", row("other-of-8", "b", user_id=8))])  # user 8 has a live bar on b
        first, second = await defer.gatherResults([defer.ensureDeferred(s.session_sweep(111.0, window, stale)),
                                                   defer.ensureDeferred(s.session_sweep(111.0, window, stale))])
        ended = first + second
        assert sorted(r["user_id"] for r in ended) == [7, 8]
        assert {r["user_id"]: r["alone"] for r in ended} == {7: True, 8: False}
        assert await s.session_sweep(112.0, window, stale) == []
        # A detached session ends at its own expiry; b's attached one never while b beats.
        await s.session_heartbeat("b", 151.0)
        assert [r["user_id"] for r in await s.session_sweep(151.0, window, stale)] == [9]
        assert await s.session_get(token_hash("other-of-8")) is not None
        # A node that starts again: what it left attached waits for its bars from now on.
        await s.session_write([("put", row("left", "b", user_id=10))])
        await s.session_heartbeat("b", 160.0, release=170.0)
        got = await s.session_get(token_hash("left"))
        assert got is not None and got["expires"] == 170.0
    finally:
        await s.close()


class Agents:
    """What the owner asks of its agents: who works on which line; a bar gone for good."""

    def __init__(self, working: dict[int, Line]) -> None:
        self.working = working
        self.expired: list[int] = []

    def get(self, user_id: int) -> Any:
        line = self.working.get(user_id)
        return None if line is None else type("Agent", (), {"line": line})()

    async def session_expired(self, user_id: int) -> None:
        self.expired.append(user_id)
        self.working.pop(user_id, None)


class Directory:
    def __init__(self) -> None:
        self.users = {7: User(7, "alice"), 8: User(8, "bob")}
        self.lines = {3: Line(3, "SIP/1001"), 4: Line(4, "SIP/1002")}


@pytest_twisted.ensureDeferred
async def test_a_session_follows_its_bar_to_another_node_and_the_owner_expires_once(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    clock = task.Clock()
    clock.advance(1000)
    directory = Directory()
    agents = Agents({7: directory.lines[3], 8: directory.lines[4]})
    owner = {"a": True, "b": False}
    managers = {n: SessionManager(clock) for n in "ab"}
    nodes = {n: StoredSessions(s, managers[n], directory, agents, clock, n, 10.0, lambda n=n: owner[n])
             for n in "ab"}
    try:
        for n in nodes.values():
            n.start()  # the first heartbeat
        a, b = nodes["a"], nodes["b"]

        async def written() -> None:
            clock.advance(0)
            await a.flushed()
            await b.flushed()

        async def stored(sid: str) -> dict[str, Any] | None:
            await written()
            got: dict[str, Any] | None = await s.session_get(token_hash(sid))
            return got

        alice = managers["a"].create("ws", "10.0.0.7", autologout=True)
        assert await stored(alice.sid) is None  # not logged in: nothing to resume
        alice.data["logout_on_close"] = True
        alice.user, alice.line, alice.state = directory.users[7], directory.lines[3], SessionState.READY
        a.attached(alice)
        got = await stored(alice.sid)
        assert got is not None and (got["user_id"], got["line_id"], got["state"], got["node"], got["expires"]) == \
            (7, 3, "READY", "a", None)
        a.detached(alice)  # its socket went
        assert (await stored(alice.sid) or {})["expires"] == 1010.0

        # The bar comes back to b: the same id, user, phone, options; a's copy is stale now.
        taken = await b.resume(alice.sid, "10.0.0.8")
        assert (taken.sid, taken.user, taken.line, taken.state) == \
            (alice.sid, directory.users[7], directory.lines[3], SessionState.READY)
        assert taken.autologout and taken.data["logout_on_close"] is True and taken.address == "10.0.0.8"
        b.attached(taken)
        assert (await stored(alice.sid) or {})["node"] == "b"
        # a's copy changes (a does not know): b's row is untouched.
        alice.state = SessionState.DEVICE
        got = await stored(alice.sid)
        assert got is not None and (got["node"], got["state"], got["expires"]) == ("b", "READY", None)
        # Back to a: a takes it from b, and drops the copy it had (b may have changed it).
        b.detached(taken)
        await written()
        again = await a.resume(alice.sid, "10.0.0.9")
        assert again is not alice and alice.closed and again.state is SessionState.READY
        a.attached(again)
        assert (await stored(alice.sid) or {})["node"] == "a"
        with pytest.raises(NotFound, match="has ended"):
            await a.resume("no such id", None)
        # Two sockets of that bar resume it on b at once (a quick reconnect while the old socket
        # is not yet seen closed): one session, not an error.
        a.detached(again)
        await written()
        twice = await defer.gatherResults([defer.Deferred.fromCoroutine(b.resume(alice.sid, "10.0.0.10")),
                                           defer.Deferred.fromCoroutine(b.resume(alice.sid, "10.0.0.11"))],
                                          consumeErrors=True)
        assert twice[0] is twice[1] and twice[0].sid == alice.sid and not twice[0].closed
        b.attached(twice[0])
        b.detached(twice[0])
        await written()
        again = await a.resume(alice.sid, "10.0.0.9")
        a.attached(again)

        # Bob logs in on b; his bar is gone for good (the tab closed, its logout failed).
        bob = managers["b"].create("ws", "10.0.0.5")
        bob.user, bob.line, bob.state = directory.users[8], directory.lines[4], SessionState.READY
        b.attached(bob)
        await written()
        bob.data[GONE] = True
        managers["b"].close(bob, "tab closed")
        got = await stored(bob.sid)
        assert got is not None and got["expires"] == clock.seconds()
        clock.advance(0.5)
        with pytest.raises(NotFound, match="has expired: its agent bar did not come back within 10 s"):
            await a.resume(bob.sid, None)  # gone for good: not to be resumed, even before it is swept
        # No node owns the AMI link: the heartbeats sweep nothing.
        owner["a"] = False
        clock.advance(a.heartbeat)
        await until(lambda: not a._sweeping and not b._sweeping)
        await written()
        assert await s.session_get(token_hash(bob.sid)) is not None and agents.expired == []
        # a owns it: its next heartbeat expires bob's, once; b's (no owner) never.
        owner["a"] = True
        clock.advance(a.heartbeat)
        await until(lambda: agents.expired == [8])
        for _ in range(3):
            clock.advance(a.heartbeat)
            await until(lambda: not a._sweeping and not b._sweeping)
        assert agents.expired == [8] and (a.expired, b.expired) == (1, 0)
        assert await s.session_get(token_hash(bob.sid)) is None

        # Alice logs out on a: her session cannot be resumed anywhere.
        again.user, again.line, again.state = None, None, SessionState.CREDENTIALS
        assert await stored(alice.sid) is None
        with pytest.raises(NotFound, match="has ended"):
            await b.resume(alice.sid, None)
        assert agents.expired == [8]
        # A session ended on the node that serves it (a forced logout, a login elsewhere with
        # autologout) cannot be resumed on another either.
        carol = managers["b"].create("ws", "10.0.0.6")
        carol.user, carol.state = directory.users[7], SessionState.IDENTIFY
        b.attached(carol)
        assert (await stored(carol.sid) or {})["state"] == "IDENTIFY"
        managers["b"].close(carol, "logged out by an administrator")
        assert await stored(carol.sid) is None
        with pytest.raises(NotFound, match="has ended"):
            await a.resume(carol.sid, None)
        assert agents.expired == [8]
    finally:
        for n in nodes.values():
            await n.stop()
        await s.close()
