"""Logging in, pairing a phone, logging out: a session's way from CREDENTIALS to READY.

Seed 002's flow: ``login`` or ``sso`` (CREDENTIALS → IDENTIFY), ``identifier``
(pick a phone by a MAC, a name or an IP: → DEVICE), ``provision`` (confirm it:
the agent logs in to its queues, → READY), ``identify`` (choose another phone),
``logout``.  A user already working in another tab joins that agent at once
(→ READY with the same phone), so several tabs of one agent stay in step; with
``autologout`` an older tab is logged out instead.

SSO tokens are ``base64(sha1(secret + username + timestamp) + username + timestamp)``
with the binary digest; one is accepted once, and only within ``sso_window``
seconds of UCS's clock.  Failed logins are throttled per user name and per
address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

from ucs.api.registry import Param, Registry
from ucs.api.session import Session, SessionManager
from ucs.config import AuthConfig
from ucs.constants import Role, SessionState
from ucs.directory.directory import Directory
from ucs.directory.model import Line, User
from ucs.error import AuthenticationFailed, InvalidState, NotFound, TooManyRequests

S = SessionState


class AgentsLike(Protocol):
    def get(self, user_id: int) -> Any: ...
    async def login(self, user: User, line: Line) -> Any: ...
    async def logout(self, user_id: int, reason: str = "") -> None: ...


class StateBuilder(Protocol):
    def __call__(self, session: Session) -> dict[str, Any]: ...


def sso_token(secret: str, username: str, timestamp: int | str) -> str:
    """The token a CRM computes to log ``username`` in (seed 002)."""
    ts = str(timestamp)
    digest = hashlib.sha1((secret + username + ts).encode("utf-8")).digest()
    return base64.b64encode(digest + (username + ts).encode("utf-8")).decode("ascii")


def check_sso(secret: str, username: str, token: str, now: float, window: float) -> int:
    """The token's timestamp if it is good; :class:`AuthenticationFailed` saying why if not."""
    if not secret:
        raise AuthenticationFailed("SSO login is not enabled on this UCS (auth.sso_secret is not set)")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthenticationFailed("SSO token is not base64") from None
    digest, rest = raw[:20], raw[20:]
    name = username.encode("utf-8")
    if len(digest) < 20 or not rest.startswith(name):
        raise AuthenticationFailed("SSO token was not made for this user name")
    ts_text = rest[len(name):].decode("ascii", "replace")
    if not ts_text.isdigit():
        raise AuthenticationFailed("SSO token has no timestamp (seconds since the epoch) after the user name")
    ts = int(ts_text)
    want = hashlib.sha1((secret + username + ts_text).encode("utf-8")).digest()
    if not hmac.compare_digest(want, digest):
        raise AuthenticationFailed("SSO token signature is wrong (check the shared secret)")
    if abs(now - ts) > window:
        raise AuthenticationFailed(
            f"SSO token has expired: its timestamp is {int(now - ts)} s from UCS's clock, "
            f"at most {window:g} s is accepted"
        )
    return ts


class Throttle:
    """At most ``limit`` failures per key within ``period`` seconds."""

    def __init__(self, clock: Any, limit: int, period: float) -> None:
        self._clock = clock
        self.limit = limit
        self.period = period
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        cutoff = self._clock.seconds() - self.period
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def check(self, key: str, what: str) -> None:
        q = self._recent(key)
        if len(q) >= self.limit:
            wait = int(q[0] + self.period - self._clock.seconds()) + 1
            raise TooManyRequests(f"too many failed logins for {what}; try again in {wait} s")

    def fail(self, key: str) -> None:
        q = self._failures.setdefault(key, deque())
        q.append(self._clock.seconds())
        if len(q) > self.limit:
            q.popleft()

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class Auth:
    log = Logger()

    def __init__(self, directory: Directory, sessions: SessionManager, agents: AgentsLike, clock: Any,
                 config: AuthConfig, state: StateBuilder | None = None) -> None:
        self._directory = directory
        self._sessions = sessions
        self._agents = agents
        self._clock = clock
        self._config = config
        self._state = state
        self._throttle = Throttle(clock, config.max_failures, config.lockout)
        self._used_tokens: dict[str, float] = {}  # token → when it stops being acceptable anyway

    # -- logging in -----------------------------------------------------------------------

    async def login(self, session: Session, username: str, password: str, remember: bool = False) -> dict[str, Any]:
        keys = [f"user:{username.lower()}"] + ([f"addr:{session.address}"] if session.address else [])
        for key in keys:
            self._throttle.check(key, key.split(":", 1)[1])
        user = self._directory.user_by_username(username)
        ok = user is not None and await self._directory.verify_password(user, password)
        if not ok or user is None:
            for key in keys:
                self._throttle.fail(key)
            self.log.info("failed login for {username!r} from {address}", username=username, address=session.address)
            raise AuthenticationFailed("bad user name or password")
        for key in keys:
            self._throttle.reset(key)
        return self._logged_in(session, user, "password")

    async def sso(self, session: Session, username: str, token: str, provider: str | None = None) -> dict[str, Any]:
        now = self._clock.seconds()
        # Tokens are kept in the order they were used, so they expire from the front.
        while self._used_tokens:
            oldest, until = next(iter(self._used_tokens.items()))
            if until >= now:
                break
            del self._used_tokens[oldest]
        if token in self._used_tokens:
            raise AuthenticationFailed("SSO token was used already; each token logs in once")
        check_sso(self._config.sso_secret, username, token, now, self._config.sso_window)
        user = self._directory.user_by_username(username)
        if user is None:
            raise AuthenticationFailed(f"SSO login for an unknown user {username!r}")
        self._used_tokens[token] = now + 2 * self._config.sso_window
        session.data["sso_provider"] = provider
        return self._logged_in(session, user, f"SSO ({provider})" if provider else "SSO")

    def _logged_in(self, session: Session, user: User, how: str) -> dict[str, Any]:
        if session.state is not S.CREDENTIALS:
            raise InvalidState(f"this session is logged in already (state {session.state.value})")
        for other in self._sessions.of_user(user.id):
            if other is not session and other.autologout:
                self._sessions.close(other, "logged in elsewhere")
        session.user = user
        agent = self._agents.get(user.id)
        if agent is not None and getattr(agent, "line", None) is not None:
            session.line = agent.line
            session.state = S.READY
        else:
            session.state = S.IDENTIFY
        self.log.info("{username} logged in by {how} from {address}", username=user.username, how=how,
                      address=session.address)
        return {"user": user.to_dict(), "state": session.state.value,
                "device": session.line.to_dict() if session.line else None}

    async def logout(self, session: Session) -> None:
        user = session.user
        assert user is not None
        if self._agents.get(user.id) is not None:
            await self._agents.logout(user.id, "logout")
        for s in self._sessions.of_user(user.id):
            s.user, s.line, s.state = None, None, S.CREDENTIALS
            if s is not session and s.push is not None:
                s.push("logout", {"reason": "logged out in another window"})
        session.user, session.line, session.state = None, None, S.CREDENTIALS

    # -- the phone -------------------------------------------------------------------------

    def devices(self, session: Session) -> list[dict[str, Any]]:
        """The phones this user may pair with, and their identifiers (seed 002 ``listDevices``)."""
        assert session.user is not None
        return [line.to_dict() for line in self._directory.lines_of(session.user)]

    def identifier(self, session: Session, identifier: str) -> dict[str, Any]:
        assert session.user is not None
        line = self._directory.line_by_identifier(identifier)
        allowed = self._directory.lines_of(session.user)
        if line is None or line not in allowed:
            raise NotFound(f"no phone of yours has the identifier {identifier!r}; "
                           "use a MAC address, a name or an IP address from devices.list")
        session.line = line
        session.state = S.DEVICE
        return line.to_dict()

    async def provision(self, session: Session) -> dict[str, Any]:
        user, line = session.user, session.line
        assert user is not None
        if line is None:
            raise InvalidState("provision needs a phone: pair one with identifier first")
        agent = self._agents.get(user.id)
        if agent is None or agent.line is not line:
            if agent is not None:
                await self._agents.logout(user.id, "phone changed")
            await self._agents.login(user, line)
        for s in self._sessions.of_user(user.id):
            s.line, s.state = line, S.READY
        return self._state(session) if self._state is not None else {"device": line.to_dict()}

    async def identify(self, session: Session) -> None:
        user = session.user
        assert user is not None
        if self._agents.get(user.id) is not None:
            await self._agents.logout(user.id, "choosing another phone")
        for s in self._sessions.of_user(user.id):
            s.line, s.state = None, S.IDENTIFY

    def info(self, session: Session) -> dict[str, Any]:
        """What the server knows of this client: its address (for ``identifyIP``), state, user."""
        return {"sid": session.sid, "address": session.address, "state": session.state.value,
                "user": session.user.to_dict() if session.user else None,
                "device": session.line.to_dict() if session.line else None}


def _text(what: str, max_len: int = 200) -> Callable[[str], str]:
    def check(v: str) -> str:
        if not v or len(v) > max_len:
            raise ValueError(f"give a {what} of 1 to {max_len} characters")
        return v
    return check


def register(registry: Registry, auth: Auth) -> None:
    anyone, logged = Role.ANONYMOUS, Role.AGENT
    registry.add("login", auth.login, [
        Param("username", str, check=_text("user name", 64)),
        Param("password", str, check=_text("password", 1024)),
        Param("remember", bool, required=False, default=False),
    ], role=anyone, states=[S.CREDENTIALS], doc="Log in with a user name and password.")
    registry.add("sso", auth.sso, [
        Param("username", str, check=_text("user name", 64)),
        Param("token", str, check=_text("token", 4096)),
        Param("provider", str, required=False, nullable=True),
    ], role=anyone, states=[S.CREDENTIALS], doc="Log in with a CRM's SSO token (seed 002).")
    registry.add("logout", auth.logout, role=logged, states=[S.IDENTIFY, S.DEVICE, S.READY],
                 doc="Unpair the phone and log the agent out.")
    ident = [Param("identifier", str, check=_text("phone identifier", 100))]
    for name in ("identifier", "selectIdentifier"):
        registry.add(name, auth.identifier, ident, role=logged, states=[S.IDENTIFY, S.DEVICE],
                     doc="Pair a phone by one of its identifiers (MAC, name, IP address).")
    registry.add("provision", auth.provision, role=logged, states=[S.IDENTIFY, S.DEVICE],
                 doc="Confirm the paired phone: the agent starts working; returns the state object.")
    registry.add("identify", auth.identify, role=logged, states=[S.DEVICE, S.READY],
                 doc="Choose another phone without logging out.")
    registry.add("devices.list", auth.devices, role=logged, states=[S.IDENTIFY, S.DEVICE, S.READY],
                 doc="The phones this user may pair with, with their identifiers.")
    registry.add("session.info", auth.info, role=anyone,
                 doc="This client's address (for identifyIP), state, user and phone.")

