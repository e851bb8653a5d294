"""Logouts in the store (issue 20), for the nodes of a cluster that missed their notice.

On both back ends (SQLite, PostgreSQL): a logout is stored once whatever the
retries, read back by when it was written, and pruned by the writes after it.
Then :class:`StoredLogouts` on a clock, two "nodes" (two session managers) on one
store: node b, which did not hear a's logout, carries it out when it reads the
store -- on its session logged in before it (the bar gets the message a second
tab gets), not on the one logged in after; nor twice, whether it was heard first
(a bar that chose a phone again after a supervisor's logout keeps it) or read
first (the notice that arrives late does nothing more); nor on a's own sessions.
A session taken over from a node that died without ending it is refused at its
resume if its user logged out since, and resumed if not (a supervisor's logout is
not applied there: the agents, as they are now, say whether it works on a phone).
Tests/test_cluster_logouts.py does it with whole nodes, one cut off from NATS.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_stored_sessions import Agents, Directory
from twisted.internet import reactor, task

from ucs.api import logouts
from ucs.api.session import Session, SessionManager
from ucs.api.stored_logouts import StoredLogouts
from ucs.api.stored_sessions import StoredSessions, token_hash
from ucs.constants import SessionState
from ucs.directory.model import Line, User
from ucs.error import NotFound
from ucs.store import open_store


def logout(lid: str, at: float, *, user_id: int = 7, node: str = "a") -> dict[str, Any]:
    return {"id": lid, "user_id": user_id, "how": "logout", "reason": "", "node": node, "at": at}


@pytest_twisted.ensureDeferred
async def test_a_logout_is_stored_once_read_by_when_written_and_pruned(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    try:
        await s.logout_write(logout("one", 100.0), 100.5, 0.0)
        await s.logout_write(logout("one", 100.0), 130.0, 0.0)  # a retry: still one, as first written
        await s.logout_write(logout("two", 120.0, user_id=8), 160.0, 0.0)  # written late: the store was away
        got = await s.logouts_since(100.0)
        assert [(r["id"], r["user_id"], r["at"], r["written"]) for r in got] == \
            [("one", 7, 100.0, 100.5), ("two", 8, 120.0, 160.0)]
        assert got[0]["how"] == "logout" and got[0]["node"] == "a" and got[0]["reason"] == ""
        assert [r["id"] for r in await s.logouts_since(150.0)] == ["two"]  # a reader at 150 still sees it
        await s.logout_write({**logout("three", 200.0), "how": "forced", "reason": "by an administrator"},
                             200.0, 150.0)  # what was written before 150 goes
        assert [(r["id"], r["reason"]) for r in await s.logouts_since(0.0)] == \
            [("two", ""), ("three", "by an administrator")]
    finally:
        await s.close()


def logged_in(manager: SessionManager, user: User, at: float, pushed: list[tuple[str, str]],
              line: Line | None = None) -> Session:
    """A bar session of ``user`` logged in at ``at`` (what it is pushed goes to ``pushed``)."""
    s = manager.create("ws", "10.0.0.7")
    s.push = lambda event, data: pushed.append((s.sid, event))
    s.data["logged_in"] = at
    s.user, s.line, s.state = user, line, SessionState.READY if line else SessionState.IDENTIFY
    return s


@pytest_twisted.ensureDeferred
async def test_a_node_that_missed_a_logout_carries_it_out_once_on_the_sessions_before_it(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    clock = task.Clock()
    clock.advance(1000)
    managers = {n: SessionManager(clock) for n in "ab"}
    nodes = {n: StoredLogouts(s, managers[n], clock, n) for n in "ab"}
    told: list[dict[str, Any]] = []
    nodes["a"].told.append(told.append)  # what node a would publish on NATS (b hears nothing)
    alice, line = User(7, "alice"), Line(3, "SIP/1001")
    pushed: list[tuple[str, str]] = []
    try:
        for n in nodes.values():
            n.start()
        a, b = nodes["a"], nodes["b"]
        assert await b.catch_up() == 0  # nothing yet
        on_a = logged_in(managers["a"], alice, 1000.0, pushed)
        before = logged_in(managers["b"], alice, 1001.0, pushed)

        # Alice logs out on a at 1005; b does not hear it.  A second tab logs in on b at 1006.
        clock.advance(5)
        logouts.end(managers["a"], 7, logouts.LOGOUT, keep=on_a)
        await a.flushed()
        assert [(t["user_id"], t["how"], t["at"], t["node"]) for t in told] == [(7, "logout", 1005.0, "a")]
        clock.advance(1)
        after = logged_in(managers["b"], alice, clock.seconds(), pushed)
        # b's heartbeat: the tab logged in before is told as a second tab is; the one after stays.
        clock.advance(1)
        assert await b.catch_up() == 1
        assert before.state is SessionState.CREDENTIALS and before.user is None
        assert after.state is SessionState.IDENTIFY and after.user is alice
        assert pushed == [(before.sid, "logout")]
        assert (b.reads, b.caught_up) == (2, 1)
        # Read again (the next heartbeat reaches back over it): nothing more.  Nor on a, its own.
        clock.advance(5)
        assert await b.catch_up() == 0 and await a.catch_up() == 0
        assert after.user is alice and pushed == [(before.sid, "logout")]
        # The notice arriving late does nothing more either.
        assert b.heard({**told[0], "v": 1}) == 0
        assert after.user is alice and pushed == [(before.sid, "logout")]

        # A supervisor's logout on a, heard on b: its bar of alice, on a phone, chooses one again.
        after.line, after.state = line, SessionState.READY
        clock.advance(1)
        logouts.end(managers["a"], 7, logouts.UNPAIRED)
        await a.flushed()
        assert b.heard(told[-1]) == 1 and after.state is SessionState.IDENTIFY
        # It chooses the phone again; b reads the same logout from the store: the bar keeps its phone.
        after.line, after.state = line, SessionState.READY
        clock.advance(1)
        assert await b.catch_up() == 0
        assert after.state is SessionState.READY and after.line is line and b.caught_up == 1

        # An administrator's logout on a, read on b before its notice: closed once, with the reason.
        clock.advance(1)
        logouts.end(managers["a"], 7, logouts.FORCED, "You were logged out by an administrator.")
        await a.flushed()
        clock.advance(1)
        assert await b.catch_up() == 1
        assert after.closed and b.caught_up == 2
        assert b.heard(told[-1]) == 0
    finally:
        for n in nodes.values():
            n.stop()
        await s.close()


@pytest_twisted.ensureDeferred
async def test_a_session_left_by_a_dead_node_is_not_resumed_after_its_users_logout(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    clock = task.Clock()
    clock.advance(1000)
    directory = Directory()
    agents = Agents({8: directory.lines[4]})  # Bob works on a phone (again, after his supervisor's logout)
    managers = {n: SessionManager(clock) for n in "ab"}
    nodes = {n: StoredSessions(s, managers[n], directory, agents, clock, n, 600.0, lambda: False) for n in "ab"}
    alice, bob = directory.users[7], directory.users[8]
    try:
        for n in nodes.values():
            n.start()
        a, b = nodes["a"], nodes["b"]
        # Alice and Bob have a bar each on b; b dies (its rows stay, within the resume window).
        sessions = {}
        for user in (alice, bob):
            sessions[user.id] = logged_in(managers["b"], user, clock.seconds(), [])
            b.attached(sessions[user.id])
        clock.advance(0)
        await b.flushed()
        await b.stop()
        # Alice is logged out by an administrator on a, Bob by a supervisor; minutes later their bars
        # come back, to a.
        clock.advance(1)
        logouts.end(managers["a"], alice.id, logouts.FORCED, "You were logged out by an administrator.")
        logouts.end(managers["a"], bob.id, logouts.UNPAIRED)
        await a.logouts.flushed()
        clock.advance(300)
        with pytest.raises(NotFound, match="its user was logged out since, on another node"):
            await a.resume(sessions[alice.id].sid, "10.0.0.8")
        assert managers["a"].of_user(alice.id) == []
        clock.advance(0)
        await a.flushed()
        assert await s.session_get(token_hash(sessions[alice.id].sid)) is None  # nor elsewhere later
        taken = await a.resume(sessions[bob.id].sid, "10.0.0.9")
        assert taken.user is bob and not taken.closed
        assert taken.state is SessionState.READY and taken.line is directory.lines[4]  # the agents say so
    finally:
        for n in nodes.values():
            await n.stop()
        await s.close()
