"""Remembering a login (seed 002's ``login(u, p, remember)``) with a token, never the password.

Seed 002 kept the user name and password in a cookie; the bar used to do so, as
base64 JSON readable by any script of the page, for 30 days.  Now, once a login
with ``remember`` succeeds, the bar asks UCS for a token (``remember.issue``) and
keeps that instead:

- on UCS's own pages (the demo CRM, any page served from UCS's origin) as an
  ``HttpOnly`` cookie the page's scripts cannot read: ``remember.issue(true)``
  gives a one-time *ticket* (valid :data:`TICKET_LIFETIME` seconds) that the bar
  posts to ``/remember`` (:class:`RememberResource`), whose answer sets the
  cookie; the browser sends it with the WebSocket upgrade, and
  ``remember.login(null)`` uses the connection's cookie;
- on a CRM's page on another origin, where UCS cannot set a cookie, in a cookie of
  that page: ``remember.issue(false)`` gives the token itself.

A token is 256 random bits; the store keeps only its SHA-256 (``kv`` namespace
``remember``), with the user, when it expires (:data:`LIFETIME`) and a fingerprint
of the user's password hash, so a password change revokes every token issued
before it.  ``logout`` revokes all of the user's tokens (logging out means "forget
me"), and a token that fails is deleted.
"""

from __future__ import annotations

import hashlib
import secrets
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from ucs.api.registry import Param, Registry
from ucs.api.session import Session
from ucs.constants import Role, SessionState
from ucs.directory.model import User
from ucs.error import AuthenticationFailed

S = SessionState

#: How long a remembered login lasts (seed 002's cookie lived 30 days).
LIFETIME = 30 * 86400
#: How long the bar has to exchange a ticket for the cookie (it does so at once).
TICKET_LIFETIME = 60.0
#: The HttpOnly cookie on UCS's own pages.
COOKIE = "ucsRemember"
#: The header a request to ``/remember`` must carry: a form on another site cannot
#: send it, and a script on another origin cannot without a CORS preflight UCS never answers.
HEADER = b"x-ucs-remember"
NAMESPACE = "remember"


class KV(Protocol):
    def kv_get(self, namespace: str, key: str, default: Any = None) -> Deferred[Any]: ...
    def kv_set(self, namespace: str, key: str, value: Any) -> Deferred[None]: ...
    def kv_delete(self, namespace: str, key: str) -> Deferred[bool]: ...
    def kv_items(self, namespace: str) -> Deferred[dict[str, Any]]: ...


class DirectoryLike(Protocol):
    users: dict[int, User]


class AuthLike(Protocol):
    def _logged_in(self, session: Session, user: User, how: str) -> dict[str, Any]: ...


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _fingerprint(user: User) -> str:
    """Changes whenever the password does (each hash has its own salt)."""
    return hashlib.sha256(("ucs-remember:" + user.password_hash).encode("utf-8")).hexdigest()[:32]


def cookie_token(header: str | None) -> str | None:
    """The remember-me token in a ``Cookie`` header, if any."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


class RememberTokens:
    """Issues, checks and revokes remember-me tokens; see the module docstring.
    ``clock`` gives the time (the reactor, or a ``task.Clock`` in tests)."""

    log = Logger()

    def __init__(self, store: KV, directory: DirectoryLike, auth: AuthLike, clock: Any,
                 lifetime: float = LIFETIME) -> None:
        self._store = store
        self._directory = directory
        self._auth = auth
        self._clock = clock
        self.lifetime = lifetime
        self._tickets: dict[str, tuple[str, float]] = {}  # sha256(ticket) → (token, until)

    # -- the API --------------------------------------------------------------------------

    async def issue(self, session: Session, cookie: bool = False) -> dict[str, Any]:
        user = session.user
        assert user is not None
        now = self._clock.seconds()
        token = secrets.token_urlsafe(32)
        expires = now + self.lifetime
        await self._store.kv_set(NAMESPACE, _digest(token),
                                 {"user": user.id, "expires": expires, "password": _fingerprint(user),
                                  "issued": now})
        self.log.info("{username}: remembered login issued (until {expires:.0f})", username=user.username,
                      expires=expires)
        if not cookie:
            return {"token": token, "expires": expires}
        self._tickets = {k: v for k, v in self._tickets.items() if v[1] >= now}
        ticket = secrets.token_urlsafe(32)
        self._tickets[_digest(ticket)] = (token, now + TICKET_LIFETIME)
        return {"ticket": ticket, "expires": expires}

    async def login(self, session: Session, token: str | None = None) -> dict[str, Any]:
        user = await self.check(self._token(session, token))
        return self._auth._logged_in(session, user, "remembered login")

    async def who(self, session: Session, token: str | None = None) -> dict[str, Any] | None:
        """Whose login a token remembers (to fill in the form), or ``None``."""
        try:
            user = await self.check(self._token(session, token))
        except AuthenticationFailed:
            return None
        return {"username": user.username}

    def _token(self, session: Session, token: str | None) -> str:
        token = token or session.data.get("remember_cookie")
        if not token:
            raise AuthenticationFailed("no remembered login: give the token remember.issue returned "
                                       "(on UCS's own pages the browser sends its cookie)")
        return str(token)

    async def check(self, token: str) -> User:
        """The user a token logs in; :class:`AuthenticationFailed` saying why not
        (a token that failed is deleted)."""
        key = _digest(token)
        record = await self._store.kv_get(NAMESPACE, key)
        if not isinstance(record, dict):
            raise AuthenticationFailed("this remembered login is unknown or was revoked (logout); log in again")
        user = self._directory.users.get(int(record.get("user", -1)))
        why = None
        if user is None:
            why = "its user no longer exists"
        elif float(record.get("expires", 0)) < self._clock.seconds():
            why = "it has expired"
        elif record.get("password") != _fingerprint(user):
            why = "the password was changed since"
        if why is not None or user is None:
            await self._store.kv_delete(NAMESPACE, key)
            raise AuthenticationFailed(f"this remembered login is no longer valid ({why}); log in again")
        return user

    # -- revoking -------------------------------------------------------------------------

    async def revoke_user(self, user_id: int) -> int:
        """Delete every token of ``user_id`` (and any expired one); how many of the user's."""
        now = self._clock.seconds()
        mine = 0
        for key, record in (await self._store.kv_items(NAMESPACE)).items():
            ours = isinstance(record, dict) and record.get("user") == user_id
            if ours or not isinstance(record, dict) or float(record.get("expires", 0)) < now:
                await self._store.kv_delete(NAMESPACE, key)
                mine += ours
        return mine

    async def revoke(self, token: str) -> None:
        await self._store.kv_delete(NAMESPACE, _digest(token))

    def logout_middleware(self, handler: Any, session: Session, *args: Any) -> Any:
        """Around ``logout``: once the user is logged out, their remembered logins are revoked."""
        user = session.user
        d = maybeDeferred(handler, session, *args)
        if user is None:
            return d

        def revoke(result: Any) -> Any:
            return Deferred.fromCoroutine(self.revoke_user(user.id)).addCallback(lambda _: result)

        return d.addCallback(revoke)

    # -- tickets ----------------------------------------------------------------------------

    def redeem(self, ticket: str) -> str | None:
        """The token a ticket stands for, once, within :data:`TICKET_LIFETIME`."""
        found = self._tickets.pop(_digest(ticket), None)
        if found is None or found[1] < self._clock.seconds():
            return None
        return found[0]

    def resource(self) -> RememberResource:
        return RememberResource(self)


class RememberResource(Resource):
    """``POST /remember``: a ticket in the body sets the ``HttpOnly`` cookie; an
    empty body revokes the cookie's token and clears the cookie (the bar's logout).
    Only with the ``X-UCS-Remember`` header (see :data:`HEADER`)."""

    isLeaf = True
    max_body_size = 1024

    def __init__(self, tokens: RememberTokens) -> None:
        super().__init__()
        self._tokens = tokens

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if request.getHeader(HEADER) is None:
            request.setResponseCode(403)
            return b"a request to /remember needs the X-UCS-Remember header (the agent bar sends it)\n"
        assert request.content is not None
        ticket = request.content.read().decode("utf-8", "replace").strip()
        secure = "; Secure" if request.isSecure() else ""
        if not ticket:
            old = cookie_token((request.getHeader(b"cookie") or b"").decode("latin-1"))
            if old:
                Deferred.fromCoroutine(self._tokens.revoke(old)).addErrback(
                    lambda f: self._tokens.log.failure("revoking a remembered login failed", f))
            request.setHeader(b"set-cookie", f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{secure}")
            request.setResponseCode(204)
            return b""
        token = self._tokens.redeem(ticket)
        if token is None:
            request.setResponseCode(400)
            return b"this ticket is unknown, used or expired; call remember.issue again\n"
        request.setHeader(b"set-cookie", f"{COOKIE}={token}; Max-Age={int(self._tokens.lifetime)}; Path=/; "
                                         f"HttpOnly; SameSite=Strict{secure}")
        request.setResponseCode(204)
        return b""


def _token_text(value: str) -> str:
    if not 1 <= len(value) <= 200:
        raise ValueError("give the token remember.issue returned (up to 200 characters), or null")
    return value


def register(registry: Registry, tokens: RememberTokens) -> None:
    """The ``remember.*`` methods, and the revocation at ``logout`` (registered before)."""
    registry.add("remember.issue", tokens.issue, [
        Param("cookie", bool, required=False, default=False,
              doc="true on UCS's own pages: a one-time ticket for POST /remember, which sets an "
                  "HttpOnly cookie; false: the token itself, for the page to keep"),
    ], role=Role.AGENT, states=[S.IDENTIFY, S.DEVICE, S.READY],
        doc="Remember this login: a token that logs in again with remember.login, for 30 days, until "
            "logout or a password change.")
    token = Param("token", str, required=False, nullable=True, check=_token_text,
                  doc="the token; null: the cookie the browser sent with this WebSocket")
    registry.add("remember.login", tokens.login, [token], role=Role.ANONYMOUS, states=[S.CREDENTIALS],
                 doc="Log in with a remembered login's token.")
    registry.add("remember.who", tokens.who, [token], role=Role.ANONYMOUS, states=[S.CREDENTIALS],
                 doc="The user name a remembered login is for (to fill in the form), or null.")
    registry.add_middleware("logout", tokens.logout_middleware)
