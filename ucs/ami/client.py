"""The AMI link that stays up: reconnect, log in, keep alive.

:class:`AMIClient` is a Twisted service around
:class:`~twisted.application.internet.ClientService`.  A connection counts as
*up* only once the login succeeded (``prepareConnection``); then the
:class:`IAMIListener` gets ``connected(protocol)`` and must rebuild whatever it
knows from Asterisk (QueueStatus, CoreShowChannels, DeviceStateList, ...),
because nothing it heard before the gap can be trusted.  A ``Ping`` every
``keepaliveInterval`` seconds finds links that died silently (a NAT or
firewall dropping the TCP state); an unanswered ping aborts the connection
and ClientService reconnects with backoff.

Link state, one transition table (:data:`TRANSITIONS`)::

    down --start--> connecting --loggedIn--> up
    connecting --lost--> connecting        up --lost--> connecting
    up|connecting|down --stop--> down      down --lost--> down

``down`` means the service is stopped; ``connecting`` covers the TCP connect,
the login and the backoff wait between attempts.

ClientService cannot cope with a connection that closes while
``prepareConnection`` is still running (its state machine has no transition
for it and raises ``NoTransition`` out of ``connectionLost``), and it leaves the
connection open when ``prepareConnection`` fails.  So a failed login here
closes the connection itself and only then lets ``prepareConnection`` finish
(successfully, as far as ClientService is concerned); the backoff still grows
because the retry policy is fed the count of consecutive links that never
came up.  Likewise ``stopService`` during a login (or from inside
``connected()``) closes that connection first and stops ClientService only
once ``prepareConnection`` has finished.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from ucs.ami.auth import AuthType, login
from ucs.ami.errors import AMIActionError, AMIAuthError, AMIConnectionLost, AMINotConnected, AMITimeoutError
from ucs.ami.message import MAX_FRAME, Message
from ucs.ami.protocol import _NO_HEADERS, DEFAULT_TIMEOUT, AMIProtocol, IAMIController

LinkState = Literal["down", "connecting", "up"]

#: (state, input) -> next state.  An input missing here is a bug and raises
#: before anything changes.
TRANSITIONS: dict[tuple[LinkState, str], LinkState] = {
    ("down", "start"): "connecting",
    ("connecting", "loggedIn"): "up",
    ("connecting", "lost"): "connecting",
    ("up", "lost"): "connecting",
    ("down", "lost"): "down",
    ("down", "stop"): "down",
    ("connecting", "stop"): "down",
    ("up", "stop"): "down",
}

#: Events received on a link before its login completes are held (at most
#: this many) and delivered right after ``connected()``.
_MAX_EARLY_EVENTS = 10_000


class IAMIListener(Interface):
    """The layer above the AMI link (the PBX model).

    Called from the reactor thread, in wire order.  Exceptions raised here are
    logged and do not break the link.
    """

    def connected(protocol: AMIProtocol) -> None:  # type: ignore[misc]
        """Logged in, on the first connect and after every reconnect.

        Resynchronise here: the PBX may have restarted or changed while the
        link was down.  ``protocol.sendAction`` (or the client's) works now.
        """

    def eventReceived(message: Message) -> None:  # type: ignore[misc]
        """Every event that is not an item of a pending event list.

        Includes, passed through untouched: ``FullyBooted`` (Asterisk finished
        booting — after an Asterisk restart the layer above must resync, even
        if it already did on ``connected``), ``Shutdown`` (Asterisk is going
        away; the link closes next and reconnect attempts follow), and
        ``OriginateResponse`` (the outcome of an ``Async: true`` Originate;
        match it by its ``ActionID``).
        """

    def disconnected(reason: Failure) -> None:  # type: ignore[misc]
        """A logged-in link went away (not called for failed attempts).

        Every pending action fails with ``AMIConnectionLost`` right after this;
        the client is already reconnecting unless it was stopped.
        """


@implementer(IAMIListener)
class AMIListener:
    """A listener that ignores everything; subclass and override what you need."""

    def connected(self, protocol: AMIProtocol) -> None:
        pass

    def eventReceived(self, message: Message) -> None:
        pass

    def disconnected(self, reason: Failure) -> None:
        pass


@implementer(IAMIController)
class _Link:
    """What one TCP connection needs beyond the protocol: login state, keepalive.

    It is given what it uses (the listener, the clock, the keepalive timing,
    whom to tell it was lost) rather than the client, so it reads none of the
    client's fields.
    """

    def __init__(
        self,
        listener: IAMIListener,
        clock: IReactorTime,
        log: Logger,
        keepalive: tuple[float | None, float],
        onLost: Callable[[_Link, Failure], None],
    ) -> None:
        self._listener = listener
        self._clock = clock
        self._log = log
        self._keepaliveInterval, self._keepaliveTimeout = keepalive
        self._onLost = onLost
        self.protocol: AMIProtocol
        self.up = False
        self.lost: Failure | None = None
        self._early: list[Message] = []
        self._lostWaiters: list[Deferred[None]] = []
        self._ping: IDelayedCall | None = None

    # IAMIController

    def eventReceived(self, message: Message) -> None:
        if self.up:
            self._listener.eventReceived(message)
        elif len(self._early) < _MAX_EARLY_EVENTS:
            self._early.append(message)
        elif len(self._early) == _MAX_EARLY_EVENTS:
            self._early.append(message)
            self._log.warn("AMI: too many events before login completed; dropping the rest until it does")

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason
        self.stopKeepalive()
        self._onLost(self, reason)
        waiters, self._lostWaiters = self._lostWaiters, []
        for w in waiters:
            w.callback(None)

    # used by the client

    def whenLost(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.lost is not None:
            d.callback(None)
        else:
            self._lostWaiters.append(d)
        return d

    def abort(self) -> None:
        if self.lost is None and self.protocol.transport is not None:
            self.protocol.transport.abortConnection()  # type: ignore[attr-defined]

    def flushEarly(self) -> None:
        early, self._early = self._early[:_MAX_EARLY_EVENTS], []
        for message in early:
            if self.lost is not None:
                return
            try:
                self._listener.eventReceived(message)
            except Exception:
                self._log.failure("AMI listener failed on {event} event", event=message.get("Event"))

    def startKeepalive(self) -> None:
        interval = self._keepaliveInterval
        if interval is not None and self.lost is None:
            self._ping = self._clock.callLater(interval, self._sendPing)

    def stopKeepalive(self) -> None:
        if self._ping is not None and self._ping.active():
            self._ping.cancel()
        self._ping = None

    def _sendPing(self) -> None:
        self._ping = None
        d = self.protocol.sendAction("Ping", timeout=self._keepaliveTimeout)
        d.addCallbacks(self._pingAnswered, self._pingFailed)

    def _pingAnswered(self, response: Message) -> None:
        self.startKeepalive()

    def _pingFailed(self, failure: Failure) -> None:
        if failure.check(AMITimeoutError):
            self._log.warn(
                "Asterisk did not answer Ping within {timeout} s: dropping the AMI link to reconnect",
                timeout=self._keepaliveTimeout,
            )
            self.abort()
        elif failure.check(AMIConnectionLost, AMINotConnected):
            pass
        else:
            # An odd answer (Response: Error) still proves the link is alive.
            self.startKeepalive()


class _LinkFactory(Factory):
    """Builds each connection's protocol with :meth:`AMIClient._newLink`."""

    def __init__(self, newLink: Callable[[], _Link]) -> None:
        self._newLink = newLink

    def buildProtocol(self, addr: IAddress | None) -> AMIProtocol:
        protocol = self._newLink().protocol
        protocol.factory = self
        return protocol


def _sharedCounter(prefix: str = "ucs-") -> Callable[[], Callable[[], str]]:
    counter = itertools.count(1)

    def perConnection() -> Callable[[], str]:
        return lambda: f"{prefix}{next(counter)}"

    return perConnection


#: Why an action failed, by the exception it failed with; anything else is
#: ``"refused"`` (UCS would not send it: a bad header value, say).
_FAILURE_REASONS: dict[type, str] = {
    AMIActionError: "error",
    AMITimeoutError: "timeout",
    AMIConnectionLost: "connection_lost",
    AMINotConnected: "not_connected",
}


class AMIClient(Service):
    """A reconnecting, logged-in, kept-alive AMI link.

    :param endpoint: where Asterisk listens (e.g. ``TCP4ClientEndpoint(reactor, host, 5038)``).
    :param listener: the layer above (:class:`IAMIListener`).
    :param clock: times keepalive, timeouts and reconnect backoff.
    :param events: ``Events:`` at login: ``True`` (on), ``False`` (off) or
        classes such as ``"system,call,agent"``.
    :param authType: ``"md5"`` (challenge; the secret never crosses the wire) or ``"plain"``.
    :param keepaliveInterval: seconds between Pings; ``None`` disables them.
    :param keepaliveTimeout: seconds a Ping may stay unanswered before the link is dropped.
    :param actionTimeout: default per-action timeout.
    :param loginTimeout: seconds for the banner and for each login step.
    :param retryPolicy: attempt number (1, 2, ...) to seconds before reconnecting.
    :param actionIDs: called once per connection for that connection's ActionID
        generator; by default ``ucs-1``, ``ucs-2``, ... never reused in the process,
        so a log line identifies an action across reconnects.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        username: str,
        secret: str,
        listener: IAMIListener,
        *,
        clock: IReactorTime | None = None,
        events: bool | str | Iterable[str] = True,
        authType: AuthType = "md5",
        keepaliveInterval: float | None = 20.0,
        keepaliveTimeout: float = 10.0,
        actionTimeout: float | None = DEFAULT_TIMEOUT,
        loginTimeout: float = 10.0,
        retryPolicy: Callable[[int], float] | None = None,
        actionIDs: Callable[[], Callable[[], str]] | None = None,
        maxFrame: int = MAX_FRAME,
        skipEvents: Iterable[str] = (),
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self._clock: IReactorTime = clock  # type: ignore[assignment]
        self._endpoint = endpoint
        self._username = username
        self._secret = secret
        self._listener = listener
        self._events = events
        self._authType: AuthType = authType
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.actionTimeout = actionTimeout
        self.loginTimeout = loginTimeout
        self.maxFrame = maxFrame
        #: Events dropped unread by the parser (see :class:`~ucs.ami.message.AMIParser`).
        self.skipEvents = tuple(skipEvents)
        self._actionIDs = actionIDs or _sharedCounter()
        self._policy = retryPolicy or backoffPolicy(initialDelay=0.5, maxDelay=30.0, factor=2.0)
        self._state: LinkState = "down"
        #: When the link entered its current state (the clock's seconds): for the
        #: operations view (``ops.ami``) and health checks.
        self.stateSince: float = self._clock.seconds()
        self._link: _Link | None = None
        self._preparing: tuple[_Link, Deferred[None]] | None = None
        self._failedLinks = 0
        self._upWaiters: list[Deferred[AMIProtocol]] = []
        #: Why the last connection attempt did not come up (for health checks).
        self.lastFailure: Failure | None = None
        #: Actions asked of :meth:`sendAction`, and those that failed by
        #: ``(action, reason)`` (reasons: see :data:`_FAILURE_REASONS`), for metrics.
        self.actionsSent = 0
        self.actionsFailed: Counter[tuple[str, str]] = Counter()
        self._service = ClientService(
            endpoint,
            _LinkFactory(self._newLink),
            retryPolicy=self._retryDelay,
            clock=self._clock,
            prepareConnection=self._prepare,
        )

    # -- public ---------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        """``"down"`` (stopped), ``"connecting"`` (trying or waiting to retry) or ``"up"`` (logged in)."""
        return self._state

    @property
    def protocol(self) -> AMIProtocol | None:
        """The logged-in connection, or ``None`` while the link is not up."""
        return self._link.protocol if self._link is not None else None

    def sendAction(
        self,
        action: str,
        headers: Mapping[str, object] = _NO_HEADERS,
        *,
        timeout: float | None = None,
    ) -> Deferred[Any]:
        """:meth:`AMIProtocol.sendAction` on the current link.

        Fails at once with :class:`AMINotConnected` (nothing queued, nothing
        sent) unless the link is up: an action queued for a link that may
        come back in a minute would run against a PBX state nobody looked at.
        """
        self.actionsSent += 1
        link = self._link
        if self._state != "up" or link is None:
            self.actionsFailed[action, "not_connected"] += 1
            return fail(AMINotConnected(action, self._state))
        return link.protocol.sendAction(action, headers, timeout=timeout).addErrback(self._actionFailed, action)

    def _actionFailed(self, failure: Failure, action: str) -> Failure:
        if not failure.check(CancelledError):
            matched = failure.check(*_FAILURE_REASONS)
            self.actionsFailed[action, _FAILURE_REASONS[matched] if matched else "refused"] += 1  # type: ignore[index]
        return failure

    def whenUp(self) -> Deferred[AMIProtocol]:
        """Fires with the protocol once the link is (or next comes) up."""
        d: Deferred[AMIProtocol] = Deferred()
        if self._state == "up" and self._link is not None:
            d.callback(self._link.protocol)
        else:
            self._upWaiters.append(d)
        return d

    def startService(self) -> None:
        if self.running:
            return
        self._transition("start")
        super().startService()
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        """Close the link and stop reconnecting; fires once the connection is closed."""
        self._transition("stop")
        super().stopService()
        preparing = self._preparing
        if preparing is None:
            return self._service.stopService()
        # A login in progress: close that connection first and let
        # prepareConnection finish (see the module docstring), then stop.
        link, prepared = preparing
        link.abort()
        done: Deferred[None] = Deferred()
        prepared.addBoth(lambda _: done.callback(None))
        return done.addCallback(lambda _: self._service.stopService())

    # -- link life ------------------------------------------------------------

    def _newLink(self) -> _Link:
        link = _Link(
            self._listener,
            self._clock,
            self.log,
            (self.keepaliveInterval, self.keepaliveTimeout),
            self._linkLost,
        )
        link.protocol = AMIProtocol(
            link,
            clock=self._clock,
            actionIDs=self._actionIDs(),
            timeout=self.actionTimeout,
            maxFrame=self.maxFrame,
            skipEvents=self.skipEvents,
        )
        return link

    def _transition(self, input: str) -> LinkState:
        try:
            new = TRANSITIONS[(self._state, input)]
        except KeyError:
            raise RuntimeError(f"AMI link: no transition for {input!r} in state {self._state!r}") from None
        if new != self._state:
            self.stateSince = self._clock.seconds()
        self._state = new
        return new

    def _retryDelay(self, attempt: int) -> float:
        return self._policy(max(attempt, self._failedLinks))

    def _prepare(self, proxy: Any) -> Deferred[None]:
        link: _Link = proxy.controller
        d = Deferred.fromCoroutine(self._logIn(link))
        if not d.called:
            self._preparing = (link, d)
        return d

    async def _logIn(self, link: _Link) -> None:
        proto = link.protocol
        try:
            await proto.whenReady().addTimeout(self.loginTimeout, self._clock)
            await login(
                proto,
                self._username,
                self._secret,
                events=self._events,
                authType=self._authType,
                timeout=self.loginTimeout,
            )
            if self._state != "connecting" or link.lost is not None:
                raise AMIConnectionLost("Login", link.lost)
        except Exception as e:
            self._failedLinks += 1
            self.lastFailure = Failure()
            if isinstance(e, AMIAuthError):
                self.log.error("AMI login as {user!r} failed: {error}", user=self._username, error=str(e))
            else:
                self.log.warn("AMI connection did not come up: {error}", error=str(e) or repr(e))
            link.abort()
            await link.whenLost()
            self._preparing = None
            return
        self._failedLinks = 0
        self.lastFailure = None
        self._transition("loggedIn")
        self._link = link
        link.up = True
        self.log.info("AMI link up ({banner})", banner=proto.banner)
        try:
            self._listener.connected(proto)
        except Exception:
            self.log.failure("AMI listener failed in connected()")
        link.flushEarly()
        link.startKeepalive()
        waiters, self._upWaiters = self._upWaiters, []
        for w in waiters:
            if link.lost is None:
                w.callback(proto)
            else:
                self._upWaiters.append(w)
        # Only now: until ClientService has seen prepareConnection finish, a
        # stopService (say from connected()) must go the login-in-progress way.
        self._preparing = None

    def _linkLost(self, link: _Link, reason: Failure) -> None:
        self._transition("lost")
        if link is not self._link:
            return
        self._link = None
        self.log.info("AMI link down: {reason}", reason=reason.getErrorMessage())
        try:
            self._listener.disconnected(reason)
        except Exception:
            self.log.failure("AMI listener failed in disconnected()")
