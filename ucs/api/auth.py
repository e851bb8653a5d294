"""Logging in, pairing a phone, logging out: a session's way from CREDENTIALS to READY.

Seed 002's flow: ``login`` or ``sso`` (CREDENTIALS → IDENTIFY), ``identifier``
(pick a phone by a MAC, a name or an IP: → DEVICE), ``provision`` (confirm it:
the agent logs in to its queues, → READY), ``identify`` (choose another phone),
``logout``.  A user already working in another tab joins that agent at once
(→ READY with the same phone), so several tabs of one agent stay in step; with
``autologout`` an older tab is logged out instead.

SSO tokens are ``base64(sha1(secret + username + timestamp) + username + timestamp)``
with the binary digest (seed 002).  User name and timestamp are joined with nothing
between, so only a canonical timestamp is accepted (decimal digits, no leading zero):
then a token has one reading, because moving a digit between the name and the
timestamp changes the timestamp by at least 10⁹ s, far outside ``sso_window``.  A
token is accepted once (by its decoded bytes, and only in canonical base64), and
only within ``sso_window`` seconds of UCS's clock.

Failed logins, by password or SSO, are throttled by :class:`LoginThrottle`: per user
name *and* address (contact centers put hundreds of agents behind one NAT address,
and an attacker must not lock a user out of every address), with a much larger
budget per address.  docs/security.md says what that promises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ucs.api import logouts
from ucs.api.registry import Param, Registry
from ucs.api.session import Session, SessionManager
from ucs.config import AuthConfig
from ucs.constants import Role, SessionState
from ucs.directory.directory import Directory
from ucs.directory.model import Line, User
from ucs.error import AuthenticationFailed, InvalidState, NotFound, PermissionDenied, TooManyRequests

S = SessionState

#: A timestamp as seed 002's tokens carry it, in its one canonical spelling.
_TIMESTAMP = re.compile(rb"[1-9][0-9]{0,15}")


class AgentsLike(Protocol):
    def get(self, user_id: int) -> Any: ...
    async def login(self, user: User, line: Line) -> Any: ...
    async def logout(self, user_id: int, reason: str = "") -> None: ...
    async def session_expired(self, user_id: int) -> None: ...


class StateBuilder(Protocol):
    def __call__(self, session: Session) -> dict[str, Any]: ...


class ClockLike(Protocol):
    def seconds(self) -> float: ...


def sso_token(secret: str, username: str, timestamp: int | str) -> str:
    """The token a CRM computes to log ``username`` in (seed 002)."""
    ts = str(timestamp)
    digest = hashlib.sha1((secret + username + ts).encode("utf-8")).digest()
    return base64.b64encode(digest + (username + ts).encode("utf-8")).decode("ascii")


def check_sso(secret: str, username: str, token: str, now: float, window: float) -> bytes:
    """The token's bytes (what a replay is recognised by) if it is good for ``username``
    now; :class:`AuthenticationFailed` saying why if not."""
    if not secret:
        raise AuthenticationFailed("SSO login is not enabled on this UCS (auth.sso_secret is not set)")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuthenticationFailed("SSO token is not base64") from None
    if base64.b64encode(raw).decode("ascii") != token:
        # The unused low bits of the last character, or missing padding: another
        # spelling of some token, which would pass the replay check as a new one.
        raise AuthenticationFailed("SSO token is not canonical base64 (standard alphabet, padded with =, "
                                   "unused bits zero)")
    digest, rest = raw[:20], raw[20:]
    name = username.encode("utf-8")
    if len(digest) < 20 or not rest.startswith(name):
        raise AuthenticationFailed("SSO token was not made for this user name")
    ts_bytes = rest[len(name):]
    if not _TIMESTAMP.fullmatch(ts_bytes):
        raise AuthenticationFailed("SSO token has no timestamp after the user name: seconds since the epoch "
                                   "in decimal digits without a leading zero are accepted")
    ts_text = ts_bytes.decode("ascii")
    want = hashlib.sha1((secret + username + ts_text).encode("utf-8")).digest()
    if not hmac.compare_digest(want, digest):
        raise AuthenticationFailed("SSO token signature is wrong (check the shared secret)")
    ts = int(ts_text)
    if abs(now - ts) > window:
        raise AuthenticationFailed(
            f"SSO token has expired: its timestamp is {int(now - ts)} s from UCS's clock, "
            f"at most {window:g} s is accepted"
        )
    return raw


class LoginThrottled(TooManyRequests):
    """A login refused before its credentials are looked at; ``retry_after`` (whole
    seconds) lets the agent bar say when, in the agent's language."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


@attrs.define
class _PairFailures:
    count: int
    last: float        # when the last failure was counted
    wait: float = 0.0  # refused until last + wait


@attrs.frozen
class Attempt:
    """A login counted as failed from its start; :meth:`LoginThrottle.settled` says how it ended."""

    pair: tuple[str, str | None]
    address: str | None
    at: float


class LoginThrottle:
    """Failed logins, per (user name, address) with backoff, and per address.

    A pair may fail ``max_failures`` times; then it waits ``backoff`` seconds, doubled
    by each further failure, up to ``lockout``.  An address may fail
    ``address_max_failures`` times within ``lockout`` seconds, whatever the user names.
    An attempt is counted when it starts (:meth:`attempt`) and uncounted if it
    succeeds (:meth:`settled`), so guesses for one user sent in parallel are counted
    like guesses sent one by one.  The address's budget counts attempts that have
    failed, not those in flight: a floor of agents behind one NAT address logging in at
    once must not use it up with right passwords (:class:`Auth` lets only a few of an
    address's password checks run at a time, so parallel guesses at many users overshoot
    the budget by those few at most).  A success clears its pair but not its address: an
    attacker cannot reset the address's count by logging in to an account of its own.
    Nothing here refuses a user at an address that has not failed.

    Both maps are in the order of their last failure, so what has expired is swept
    from the front at each attempt, and they never hold more than ``max_entries``
    each (the oldest go first).
    """

    def __init__(self, clock: ClockLike, max_failures: int, backoff: float, lockout: float,
                 address_max_failures: int, max_entries: int = 100_000) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.backoff = backoff
        self.lockout = lockout
        self.address_max_failures = address_max_failures
        self.max_entries = max_entries
        self._pairs: OrderedDict[tuple[str, str | None], _PairFailures] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()
        self._in_flight: dict[str, int] = {}  # address → attempts counted in _addresses, not settled

    @classmethod
    def from_config(cls, clock: ClockLike, config: AuthConfig) -> LoginThrottle:
        return cls(clock, config.max_failures, config.backoff, config.lockout, config.address_max_failures)

    def size(self) -> tuple[int, int]:
        """(pairs, addresses) remembered."""
        return len(self._pairs), len(self._addresses)

    def check(self, username: str, address: str | None) -> None:
        """:class:`LoginThrottled` if a login of ``username`` from ``address`` must wait."""
        now = self._clock.seconds()
        self._sweep(now)
        pair = self._pairs.get((username.lower(), address))
        if pair is not None and now < pair.last + pair.wait:
            raise self._refused(pair.last + pair.wait - now, "for this user name from your address")
        recent = self._recent(address, now)
        if recent is not None and address and \
                len(recent) - self._in_flight.get(address, 0) >= self.address_max_failures:
            raise self._refused(recent[0] + self.lockout - now, "from your address")

    def attempt(self, username: str, address: str | None) -> Attempt:
        """Check, then count a failure now, before the credentials are verified."""
        self.check(username, address)
        now = self._clock.seconds()
        key = (username.lower(), address)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = _PairFailures(0, now)
        else:
            self._pairs.move_to_end(key)
        pair.count += 1
        pair.last = now
        over = pair.count - self.max_failures
        pair.wait = 0.0 if over < 0 else min(self.lockout, self.backoff * 2.0 ** min(over, 60))
        if address:
            recent = self._addresses.get(address)
            if recent is None:
                recent = self._addresses[address] = deque(maxlen=self.address_max_failures)
            else:
                self._addresses.move_to_end(address)
            recent.append(now)
            self._in_flight[address] = self._in_flight.get(address, 0) + 1
        while len(self._pairs) > self.max_entries:
            self._pairs.popitem(last=False)
        while len(self._addresses) > self.max_entries:
            self._addresses.popitem(last=False)
        return Attempt(key, address, now)

    def settled(self, attempt: Attempt, ok: bool) -> None:
        """The attempt ended.  A failure stays counted.  A success clears its pair; its
        address's count loses this one attempt and keeps the others."""
        address = attempt.address
        if address:
            left = self._in_flight.get(address, 0) - 1
            if left > 0:
                self._in_flight[address] = left
            else:
                self._in_flight.pop(address, None)
        if not ok:
            return
        self._pairs.pop(attempt.pair, None)
        recent = self._addresses.get(address) if address else None
        if address and recent is not None:
            try:
                recent.remove(attempt.at)
            except ValueError:
                pass  # swept or evicted meanwhile
            if not recent:
                del self._addresses[address]

    def _recent(self, address: str | None, now: float) -> deque[float] | None:
        recent = self._addresses.get(address) if address else None
        if recent is None:
            return None
        while recent and recent[0] <= now - self.lockout:
            recent.popleft()
        return recent

    def _sweep(self, now: float) -> None:
        while self._pairs:
            key, pair = next(iter(self._pairs.items()))
            if now < pair.last + pair.wait + self.lockout:
                break
            del self._pairs[key]
        while self._addresses:
            address = next(iter(self._addresses))
            if self._recent(address, now):
                break
            del self._addresses[address]

    def _refused(self, wait: float, what: str) -> LoginThrottled:
        seconds = max(1, math.ceil(wait))
        return LoginThrottled(f"too many failed logins {what}; try again in {seconds} s", seconds)


class AddressGate:
    """At most ``limit`` of one address's password checks at a time; the rest wait
    in turn.  An attempt is counted when its check starts, so without this a crowd of
    agents logging in at once from one NAT address (after a restart, say) would use
    up the address's budget with attempts that have not failed.

    A turn given to a waiting check may end at once (the throttle refuses it) and give
    the next turn from inside that callback; turns are handed on in a loop instead, so
    thousands of waiting checks cannot overflow the stack."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str | None, int] = {}
        self._waiting: dict[str | None, deque[Deferred[None]]] = {}
        self._freed: deque[str | None] = deque()
        self._handing_on = False

    def enter(self, address: str | None) -> Deferred[None]:
        """Fires when this check may run; pair each with :meth:`leave`."""
        if self._running.get(address, 0) < self.limit and not self._waiting.get(address):
            self._running[address] = self._running.get(address, 0) + 1
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.setdefault(address, deque()).append(d)
        return d

    def leave(self, address: str | None) -> None:
        self._running[address] -= 1
        self._freed.append(address)
        if self._handing_on:
            return  # the loop below, further up this stack, hands the turn on
        self._handing_on = True
        try:
            while self._freed:
                freed = self._freed.popleft()
                waiting = self._waiting.get(freed)
                if waiting:
                    d = waiting.popleft()
                    if not waiting:
                        del self._waiting[freed]
                    self._running[freed] = self._running.get(freed, 0) + 1
                    d.callback(None)
                elif not self._running.get(freed):
                    self._running.pop(freed, None)
        finally:
            self._handing_on = False


class Auth:
    log = Logger()

    #: Password checks of one address run at most this many at a time; below
    #: ``max_failures`` so that tabs of one agent logging in at once are never refused.
    concurrent_checks = 4

    def __init__(self, directory: Directory, sessions: SessionManager, agents: AgentsLike, clock: Any,
                 config: AuthConfig, state: StateBuilder | None = None,
                 registered_at: Callable[[str], Iterable[str]] | None = None) -> None:
        self._directory = directory
        #: The devices Asterisk says registered from an address (PeerStatus, ContactStatus,
        #: SIPpeers, PJSIPShowEndpoints): pairing by IP finds a phone that registers too.
        self._registered_at = registered_at
        self._sessions = sessions
        self._agents = agents
        self._clock = clock
        self._config = config
        self._state = state
        self._throttle = LoginThrottle.from_config(clock, config)
        self._gate = AddressGate(max(1, min(self.concurrent_checks, config.max_failures - 1)))
        self._used_tokens: dict[bytes, float] = {}  # token → when it stops being acceptable anyway
        self._dummy_hash: str | None = None

    # -- logging in -----------------------------------------------------------------------

    async def login(self, session: Session, username: str, password: str, remember: bool = False) -> dict[str, Any]:
        address = session.address
        self._throttle.check(username, address)  # refused at once, without waiting for a turn
        user: User | None = None
        await self._gate.enter(address)
        try:
            attempt = self._throttle.attempt(username, address)  # checked again: others had their turn
            ok = False
            try:
                ok = await self._verify(username, password)
                user = self._directory.user_by_username(username)  # again: it may be gone meanwhile
                ok = ok and user is not None
            finally:
                self._throttle.settled(attempt, ok)
        finally:
            self._gate.leave(address)
        if not ok or user is None:
            self.log.info("failed login for {username!r} from {address}", username=username, address=address)
            raise AuthenticationFailed("bad user name or password")
        return self._logged_in(session, user, "password")

    async def _verify(self, username: str, password: str) -> bool:
        """Whether ``password`` is ``username``'s, after the same argon2 work whether
        the user exists or not: the time a refusal takes does not tell."""
        user = self._directory.user_by_username(username)
        if user is not None and user.password_hash:
            return bool(await self._directory.verify_password(user, password))
        if self._dummy_hash is None:  # the first time: hashing costs what verifying does
            self._dummy_hash = await self._directory.hash_password(secrets.token_urlsafe(16))
        else:
            await self._directory.verify_password(User(0, "", self._dummy_hash), password)
        return False

    async def sso(self, session: Session, username: str, token: str, provider: str | None = None) -> dict[str, Any]:
        attempt = self._throttle.attempt(username, session.address)
        now = self._clock.seconds()
        # Tokens are kept in the order they were used, so they expire from the front.
        while self._used_tokens:
            oldest, until = next(iter(self._used_tokens.items()))
            if until >= now:
                break
            del self._used_tokens[oldest]
        ok = False
        try:
            raw = check_sso(self._config.sso_secret, username, token, now, self._config.sso_window)
            if raw in self._used_tokens:
                raise AuthenticationFailed("SSO token was used already; each token logs in once")
            user = self._directory.user_by_username(username)
            if user is None:
                raise AuthenticationFailed(f"SSO login for an unknown user {username!r}")
            ok = True
        except AuthenticationFailed as e:
            self.log.info("failed SSO login for {username!r} from {address}: {why}", username=username,
                          address=session.address, why=str(e))
            raise
        finally:
            self._throttle.settled(attempt, ok)
        self._used_tokens[raw] = now + 2 * self._config.sso_window
        session.data["sso_provider"] = provider
        return self._logged_in(session, user, f"SSO ({provider})" if provider else "SSO")

    def _logged_in(self, session: Session, user: User, how: str) -> dict[str, Any]:
        if session.state is not S.CREDENTIALS:
            raise InvalidState(f"this session is logged in already (state {session.state.value})")
        # Its tabs with autologout, on every node (issue 20), are logged out.
        logouts.end(self._sessions, user.id, logouts.ELSEWHERE, "logged in elsewhere", keep=session)
        session.data["logged_in"] = self._clock.seconds()  # since when (ops.sessions)
        session.user = user
        agent = self._agents.get(user.id)
        if agent is not None and getattr(agent, "line", None) is not None:
            session.line = agent.line
            session.state = S.READY
        else:
            session.state = S.IDENTIFY
        self.log.info("{username} logged in by {how} from {address}", username=user.username, how=how,
                      address=session.address)
        return {"user": self._directory.user_dict(user), "state": session.state.value,
                "device": session.line.to_dict() if session.line else None}

    async def logout(self, session: Session) -> None:
        user = session.user
        assert user is not None
        self._no_call("logout", user, "then log out")
        if self._agents.get(user.id) is not None:
            await self._agents.logout(user.id, "logout")
        logouts.end(self._sessions, user.id, logouts.LOGOUT, keep=session)  # every node's (issue 20)
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
        if line is None and self._registered_at is not None:
            # A phone with no fixed address (DHCP, a softphone on the agent's PC) is found by
            # where it registered from, when exactly one of the agent's lines is there.
            here = set(self._registered_at(identifier.strip()))
            found = [ln for ln in allowed if ln.device in here]
            line = found[0] if len(found) == 1 else None
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
        # A new agent, or one who changes phones: the memberships move to the new
        # phone, status and reason kept (Agents.login).
        await self._agents.login(user, line)
        for s in self._sessions.of_user(user.id):
            s.line, s.state = line, S.READY
        return self._state(session) if self._state is not None else {"device": line.to_dict()}

    async def identify(self, session: Session) -> None:
        """Choose another phone (seed 002): the user's tabs go back to IDENTIFY, while the
        agent keeps working on the old phone — status, reason, queues — until the new
        one is provisioned, which moves the memberships there (:meth:`provision`)."""
        user = session.user
        assert user is not None
        self._no_call("identify", user, "then change phones")
        for s in self._sessions.of_user(user.id):
            s.line, s.state = None, S.IDENTIFY

    def softphone(self, session: Session) -> dict[str, Any]:
        """The SIP account of the WebRTC line this agent works on: for the agent bar's
        softphone (the bar is the phone), and only over the bar's own socket to the
        agent paired with that line; nothing of it is logged."""
        user, line = session.user, session.line
        assert user is not None
        if session.kind != "ws":
            raise PermissionDenied("the softphone's account is given only to the agent bar")
        if line is None or line.kind != "webrtc":
            raise InvalidState("this session's phone is not a WebRTC line: the bar is not its phone")
        agent = self._agents.get(user.id)
        if agent is None or getattr(agent, "line", None) is not line:
            raise PermissionDenied("the softphone's account is given only to the agent working on that line")
        assert line is not None  # (the identity test above made mypy forget it)
        if not (line.sip_username and line.sip_password):
            raise NotFound(f"line {line.id} ({line.device}) has no SIP account in the directory "
                           "(sip_username, sip_password)")
        host = line.ws_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        return {"line_id": line.id, "device": line.device, "endpoint": line.endpoint, "ws_url": line.ws_url,
                "uri": f"sip:{line.sip_username}@{host}", "username": line.sip_username,
                "password": line.sip_password}

    def _no_call(self, method: str, user: User, then: str) -> None:
        """Refused while the agent's phone has a call (ringing or connected): the bar
        would lose the call's controls with a call still up on the phone."""
        agent = self._agents.get(user.id)
        if agent is not None and getattr(agent, "busy", False):
            raise InvalidState(f"{method}: your phone ({agent.line.device}) has a call; "
                               f"hang up or transfer it first, {then}")

    async def session_expired(self, session: Session) -> None:
        """An agent bar's session ended without a logout: its socket went away and was not
        taken back within the resume window (or the tab closed and its logout failed).
        Unless another agent bar of the user is still open (or waiting for its own
        reconnection), the agent stops taking calls (``[agents] session_expiry``)."""
        user = session.user
        if user is None:
            return
        if any(s is not session and s.kind == "ws" for s in self._sessions.of_user(user.id)):
            return
        await self._agents.session_expired(user.id)

    def expect_bars(self, user_ids: Iterable[int], window: float) -> Any:
        """After a restart of a single UCS: the agents restored from the store worked in agent
        bars whose sessions lived in the stopped process's memory.  Those bars reconnect and
        log in again; an agent none of whose bars has within ``window`` (``[web]
        resume_window``, as for a bar that went away) stops taking calls as one whose bar never
        came back (``[agents] session_expiry``).  Before, such an agent stayed READY in its
        queues after the restart, its phone ringing queue calls nobody was there to see.
        Returns the delayed call (cancelled when UCS stops first)."""
        waiting = list(user_ids)

        def check() -> None:
            for user_id in waiting:
                if any(s.kind == "ws" for s in self._sessions.of_user(user_id)):
                    continue
                user = self._directory.users.get(user_id)
                self.log.info("{user}'s agent bar did not come back after the restart",
                              user=user.username if user is not None else user_id)
                d = Deferred.fromCoroutine(self._agents.session_expired(user_id))
                d.addErrback(lambda f: self.log.failure("an agent whose bar did not come back kept working", f))

        return self._clock.callLater(window, check)

    def info(self, session: Session) -> dict[str, Any]:
        """What the server knows of this client: its address (for ``identifyIP``), state, user."""
        return {"sid": session.sid, "address": session.address, "state": session.state.value,
                "user": self._directory.user_dict(session.user) if session.user else None,
                "device": session.line.to_dict() if session.line else None}


def _text(what: str, max_len: int = 200) -> Callable[[str], str]:
    def check(v: str) -> str:
        if not v or len(v) > max_len:
            raise ValueError(f"give a {what} of 1 to {max_len} characters")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            # JSON allows "\ud800" alone; such a string cannot be hashed, stored or logged as UTF-8.
            raise ValueError(f"the {what} is not valid Unicode text: it has a lone surrogate "
                             "(an unpaired \\uD800-\\uDFFF escape); send the characters themselves") from None
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
        Param("provider", str, required=False, nullable=True, check=_text("provider name", 200)),
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
    registry.add("softphone.credentials", auth.softphone, role=logged, states=[S.READY],
                 doc="The SIP account of the agent's WebRTC line, for the bar's softphone (the bar only).")
    registry.add("session.info", auth.info, role=anyone,
                 doc="This client's address (for identifyIP), state, user and phone.")

