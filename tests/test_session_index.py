"""The sessions' index by user: a user's open sessions are found without a scan of
all sessions, after each way a session gets or loses its user — created with one,
logged in, logged out, closed, logged out by a log-in elsewhere — first on a real
:class:`SessionManager` alone, then through the whole server's log-in API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest_twisted
from serverkit import start_demo
from twisted.internet import task

from ucs import demo
from ucs.api.auth import sso_token
from ucs.api.session import Session, SessionManager
from ucs.constants import SessionState
from ucs.directory.model import Line, User


def test_of_user_follows_create_login_logout_close() -> None:
    sessions = SessionManager(task.Clock())
    alice, bob = User(1, "alice"), User(2, "bob")
    a1 = sessions.create(user=alice, state=SessionState.IDENTIFY)
    a2 = sessions.create()
    b1 = sessions.create()
    assert sessions.of_user(1) == [a1] and sessions.of_user(2) == []

    a2.user, a2.state = alice, SessionState.IDENTIFY  # logged in, as Auth does
    b1.user = bob
    assert sessions.of_user(1) == [a1, a2] and sessions.of_user(2) == [b1]

    a2.line, a2.state = Line(7, "SIP/7"), SessionState.READY  # pairing changes no user
    assert sessions.of_user(1) == [a1, a2]

    a1.user, a1.state = None, SessionState.CREDENTIALS  # logged out
    assert sessions.of_user(1) == [a2]
    a1.user = bob  # the same tab, another user
    assert sessions.of_user(1) == [a2] and sessions.of_user(2) == [b1, a1]

    sessions.close(a2, "bye")
    assert sessions.of_user(1) == [] and a2.closed
    a2.user = alice  # a closed session is never found again
    assert sessions.of_user(1) == []
    sessions.close(b1)
    sessions.close(a1)
    assert sessions.of_user(2) == [] and len(sessions) == 0 and list(sessions) == []


def test_system_sessions_and_sessions_made_by_hand() -> None:
    sessions = SessionManager(task.Clock())
    system = sessions.system()
    assert sessions.of_user(0) == [system]
    loose = Session("by-hand", user=User(5, "eve"))  # not the manager's: not indexed, no report
    loose.user = User(6, "mallory")
    assert sessions.of_user(5) == sessions.of_user(6) == []


def test_watchers_hear_of_each_session_that_changes() -> None:
    sessions = SessionManager(task.Clock())
    heard: list[Any] = []
    sessions.watch(heard.append)
    s = sessions.create()
    assert heard == [s]
    s.user = User(1, "alice")
    assert heard == [s, s]
    s.state = SessionState.IDENTIFY
    s.line = Line(1, "SIP/1")
    assert heard == [s] * 4
    sessions.close(s)
    assert heard == [s] * 5
    sessions.unwatch(heard.append)
    sessions.create()
    assert len(heard) == 5


async def _started(tmp_path: Path) -> Any:
    return await start_demo(tmp_path, auth={"sso_secret": "s3cret"})


@pytest_twisted.ensureDeferred
async def test_of_user_through_the_login_api(tmp_path: Path) -> None:
    server = await _started(tmp_path)
    try:
        sessions, reg = server.get_sessions(), server.get_registry()
        username, password = demo.user_of(1)
        _, identifier, _ = demo.line_of(1)
        uid = server.get_directory().user_by_username(username).id

        first = sessions.create(address="10.0.0.1", autologout=True)
        await reg.call(first, "login", [username, password])
        assert sessions.of_user(uid) == [first]
        await reg.call(first, "identifier", [identifier])
        await reg.call(first, "provision")
        assert first.state is SessionState.READY

        # A second tab by SSO: the first (autologout) is closed, the second works at once.
        second = sessions.create(address="10.0.0.2")
        result = await reg.call(second, "sso", [username, sso_token("s3cret", username, int(time.time()))])
        assert result["state"] == "READY"
        assert first.closed and sessions.of_user(uid) == [second]

        third = sessions.create(address="10.0.0.3")
        await reg.call(third, "login", [username, password])
        assert sessions.of_user(uid) == [second, third]

        await reg.call(third, "logout")  # logs out every tab of the user
        assert sessions.of_user(uid) == []
        assert second.user is None and not second.closed

        await reg.call(second, "login", [username, password])
        assert sessions.of_user(uid) == [second]
        sessions.close(second, "test")
        assert sessions.of_user(uid) == []
    finally:
        await server.service.stopService()
