"""Remembered logins (ucs.api.remember) on a Clock: what a token is worth and when it stops.

The browser side (the HttpOnly cookie, the bar logging in by itself, revocation at
logout and at a password change) is in tests/test_bar_security.py; here the
lifetime, which real time cannot show, and the pieces one at a time.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from ucs.api.registry import Registry
from ucs.api.remember import LIFETIME, TICKET_LIFETIME, RememberTokens, cookie_token, register
from ucs.api.session import Session, SessionManager
from ucs.constants import Role, SessionState
from ucs.directory.model import User
from ucs.error import AuthenticationFailed


class MemoryKV:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    def kv_get(self, namespace: str, key: str, default: Any = None) -> defer.Deferred[Any]:
        return defer.succeed(self.data.get((namespace, key), default))

    def kv_set(self, namespace: str, key: str, value: Any) -> defer.Deferred[None]:
        self.data[(namespace, key)] = value
        return defer.succeed(None)

    def kv_delete(self, namespace: str, key: str) -> defer.Deferred[bool]:
        return defer.succeed(self.data.pop((namespace, key), None) is not None)

    def kv_items(self, namespace: str) -> defer.Deferred[dict[str, Any]]:
        return defer.succeed({k: v for (ns, k), v in self.data.items() if ns == namespace})


class Directory:
    def __init__(self) -> None:
        self.users = {1: User(1, "alice", "hash-1"), 2: User(2, "bob", "hash-2")}


class Auth:
    def _logged_in(self, session: Session, user: User, how: str) -> dict[str, Any]:
        session.user, session.state = user, SessionState.IDENTIFY
        return {"user": user.to_dict(), "how": how}


@pytest.fixture
def world() -> tuple[RememberTokens, MemoryKV, Directory, task.Clock, SessionManager]:
    clock = task.Clock()
    clock.advance(1_800_000_000)
    kv, directory = MemoryKV(), Directory()
    return RememberTokens(kv, directory, Auth(), clock), kv, directory, clock, SessionManager(clock)


def logged_in(sessions: SessionManager, user: User) -> Session:
    s = sessions.create()
    s.user, s.state = user, SessionState.READY
    return s


@pytest_twisted.ensureDeferred
async def test_a_token_logs_in_for_thirty_days_and_not_a_second_more(world: Any) -> None:
    tokens, kv, directory, clock, sessions = world
    issued = await tokens.issue(logged_in(sessions, directory.users[1]))
    assert set(issued) == {"token", "expires"} and issued["expires"] == clock.seconds() + LIFETIME
    [(_, key)] = kv.data
    assert issued["token"] not in str(kv.data) and key != issued["token"]  # only its hash is kept
    fresh = sessions.create()
    result = await tokens.login(fresh, issued["token"])
    assert result["user"]["username"] == "alice" and result["how"] == "remembered login"
    assert (await tokens.who(sessions.create(), issued["token"])) == {"username": "alice"}

    clock.advance(LIFETIME + 1)
    with pytest.raises(AuthenticationFailed, match="it has expired"):
        await tokens.login(sessions.create(), issued["token"])
    assert kv.data == {}


@pytest_twisted.ensureDeferred
async def test_a_password_change_revokes_the_tokens_issued_before(world: Any) -> None:
    tokens, kv, directory, clock, sessions = world
    token = (await tokens.issue(logged_in(sessions, directory.users[1])))["token"]
    directory.users[1].password_hash = "hash-1-new"
    with pytest.raises(AuthenticationFailed, match="the password was changed since"):
        await tokens.login(sessions.create(), token)
    assert (await tokens.who(sessions.create(), token)) is None


@pytest_twisted.ensureDeferred
async def test_logout_revokes_the_users_tokens_and_only_theirs(world: Any) -> None:
    tokens, kv, directory, clock, sessions = world
    registry = Registry()
    logged_out: list[int] = []

    async def logout(session: Session) -> None:
        logged_out.append(session.user.id)
        session.user, session.state = None, SessionState.CREDENTIALS

    registry.add("logout", logout, role=Role.AGENT)
    register(registry, tokens)
    alice = logged_in(sessions, directory.users[1])
    a1 = (await registry.call(alice, "remember.issue"))["token"]
    a2 = (await registry.call(logged_in(sessions, directory.users[1]), "remember.issue"))["token"]
    b = (await registry.call(logged_in(sessions, directory.users[2]), "remember.issue"))["token"]
    await registry.call(alice, "logout")
    assert logged_out == [1]
    for token in (a1, a2):
        with pytest.raises(AuthenticationFailed, match="unknown or was revoked"):
            await registry.call(sessions.create(), "remember.login", [token])
    assert (await registry.call(sessions.create(), "remember.login", [b]))["user"]["username"] == "bob"


@pytest_twisted.ensureDeferred
async def test_a_ticket_is_good_once_and_for_a_minute(world: Any) -> None:
    tokens, kv, directory, clock, sessions = world
    alice = logged_in(sessions, directory.users[1])
    ticket = (await tokens.issue(alice, cookie=True))["ticket"]
    token = tokens.redeem(ticket)
    assert token is not None and tokens.redeem(ticket) is None
    assert (await tokens.check(token)).username == "alice"
    late = (await tokens.issue(alice, cookie=True))["ticket"]
    clock.advance(TICKET_LIFETIME + 1)
    assert tokens.redeem(late) is None


@pytest_twisted.ensureDeferred
async def test_the_cookie_sent_with_the_websocket_is_used_when_no_token_is_given(world: Any) -> None:
    tokens, kv, directory, clock, sessions = world
    token = (await tokens.issue(logged_in(sessions, directory.users[2])))["token"]
    s = sessions.create()
    with pytest.raises(AuthenticationFailed, match="no remembered login"):
        await tokens.login(s, None)
    s.data["remember_cookie"] = cookie_token(f"other=1; ucsRemember={token}; x=2")
    assert (await tokens.login(s, None))["user"]["username"] == "bob"
    assert cookie_token("ucsRemember=") is None and cookie_token('bad"cookie') is None
