"""AMI over one connection: bytes ⇄ messages, ActionID ⇄ Deferred, nothing else.

The protocol holds no PBX state and makes no decisions: it frames, matches
answers to the actions that asked for them, and hands every other event to
its controller (:class:`IAMIController`).  It dies with its TCP connection;
reconnecting, logging in and keepalive live in :mod:`ucs.ami.client`.

What :meth:`AMIProtocol.sendAction` fires with:

* most actions: the response message (a ``dict``), e.g.
  ``{"Response": "Success", "ActionID": "ucs-7", "Message": "..."}``;
* actions whose response says ``EventList: start`` (QueueStatus,
  CoreShowChannels, DeviceStateList, SIPpeers, Status, a ``Hangup`` of a
  ``/regex/`` channel, ...): one :class:`EventListResult`, once the
  ``...Complete`` event (``EventList: Complete``) arrived.  Events carrying
  the ActionID of such a pending list go into it, not to the controller.

Failures: :class:`~ucs.ami.errors.AMIActionError` for ``Response: Error``,
:class:`~ucs.ami.errors.AMITimeoutError`,
:class:`~ucs.ami.errors.AMIConnectionLost`,
:class:`~ucs.ami.errors.AMINotConnected` (the connection was already gone),
:class:`~ucs.ami.message.HeaderInjectionError` (nothing was written).

``OriginateResponse`` (the outcome of an ``Async: true`` Originate) arrives
after the Originate's own response, so it is delivered to the controller as
an ordinary event; it carries the Originate's ActionID, which the layer above
uses to match it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from ucs.ami.errors import AMIActionError, AMIConnectionLost, AMINotConnected, AMITimeoutError
from ucs.ami.message import MAX_FRAME, AMIParser, HeaderInjectionError, Message, format_action

if TYPE_CHECKING:
    from twisted.internet.interfaces import ITransport

_NO_HEADERS: Mapping[str, object] = MappingProxyType({})

#: Seconds to wait for an answer unless the caller says otherwise.  For an
#: event list the clock restarts at each event, so a long list is not cut off
#: while it is still arriving.
DEFAULT_TIMEOUT = 10.0


class IAMIController(Interface):
    """Whoever owns an :class:`AMIProtocol` and consumes what it does not match."""

    def eventReceived(message: Message) -> None:  # type: ignore[misc]
        """An event that is not part of a pending event list.

        Called in wire order.  An exception raised here is logged and does not
        stop the events after it.
        """

    def connectionLost(reason: Failure) -> None:  # type: ignore[misc]
        """The connection is gone; pending actions fail right after this."""


@implementer(IAMIController)
class _NoController:
    def eventReceived(self, message: Message) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


@dataclass(frozen=True, slots=True)
class EventListResult:
    """The whole answer to an event-list action.

    ``response`` is the ``Response: Success`` / ``EventList: start`` message,
    ``events`` the list items in wire order, ``complete`` the closing
    ``...Complete`` event (it holds ``ListItems``).  Iterating the result
    iterates ``events``.
    """

    response: Message
    events: list[Message] = field(default_factory=list)
    complete: Message = field(default_factory=dict)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


ActionResult = Union[Message, EventListResult]


def counterIDs(prefix: str = "ucs-") -> Callable[[], str]:
    """An ActionID generator: ``ucs-1``, ``ucs-2``, ... (``lab-1``... to replay captures)."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


class _Pending:
    __slots__ = ("action", "actionID", "deferred", "timeout", "timer", "response", "events")

    def __init__(
        self,
        action: str,
        actionID: str,
        timeout: float | None,
        canceller: Callable[[_Pending], None],
    ) -> None:
        self.action = action
        self.actionID = actionID
        self.timeout = timeout
        self.deferred: Deferred[ActionResult] = Deferred(lambda d: canceller(self))
        self.timer: IDelayedCall | None = None
        self.response: Message | None = None
        self.events: list[Message] | None = None

    def stopTimer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None


class AMIProtocol(Protocol):
    """One AMI connection.

    :param controller: receives unmatched events and the connection loss.
    :param clock: times action timeouts; tests pass a ``Clock``.
    :param actionIDs: makes each ActionID; must not repeat within a connection.
    :param timeout: default per-action timeout in seconds (``None``: none).
    :param maxFrame: frames larger than this are dropped (and logged once).
    :param skipEvents: names of events dropped unread (dialplan noise nobody uses).
    """

    log = Logger()

    def __init__(
        self,
        controller: IAMIController | None = None,
        *,
        clock: IReactorTime | None = None,
        actionIDs: Callable[[], str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        maxFrame: int = MAX_FRAME,
        skipEvents: Iterable[str] = (),
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.controller: IAMIController = controller if controller is not None else _NoController()
        self._clock: IReactorTime = clock  # type: ignore[assignment]
        self._nextID = actionIDs or counterIDs()
        self.defaultTimeout = timeout
        self._parser = AMIParser(on_error=self._frameRejected, max_frame=maxFrame, skip_events=skipEvents)
        self._pending: dict[str, _Pending] = {}
        self._readyWaiters: list[Deferred[str | None]] | None = []
        self._lost: Failure | None = None

    # -- what the layer above reads ---------------------------------------

    @property
    def banner(self) -> str | None:
        """``Asterisk Call Manager/9.0.0`` once received; ``None`` before (or if the peer sent none)."""
        return self._parser.banner

    @property
    def bufferedBytes(self) -> int:
        """Bytes held for a frame not complete yet; never above ``maxFrame`` between reads."""
        return self._parser.buffered

    @property
    def pendingCount(self) -> int:
        """Actions still waiting for their answer (for metrics)."""
        return len(self._pending)

    def whenReady(self) -> Deferred[str | None]:
        """Fires with the banner once Asterisk greeted us: actions may be sent.

        Fails with :class:`AMIConnectionLost` if the connection closes first.
        A peer that starts without a banner counts as ready at its first bytes
        (the banner is then ``None``).
        """
        if self._lost is not None:
            return fail(AMIConnectionLost(None, self._lost))
        if self._readyWaiters is None:
            return succeed(self.banner)
        waiters = self._readyWaiters
        d: Deferred[str | None] = Deferred(lambda d: waiters.remove(d) if d in waiters else None)
        waiters.append(d)
        return d

    # -- actions ------------------------------------------------------------

    def sendAction(
        self,
        action: str,
        headers: Mapping[str, object] = _NO_HEADERS,
        *,
        timeout: float | None = None,
    ) -> Deferred[Any]:
        """Send ``action`` with ``headers``; the Deferred fires with the answer.

        ``timeout`` of ``None`` means :attr:`defaultTimeout`; ``math.inf``
        waits for ever.  A header value that is a list or tuple is sent as the
        header repeated (``Variable``); ``True``/``False`` as ``true``/``false``;
        ``None`` values are left out.  See the module docstring for what the
        Deferred fires or fails with.
        """
        if self._lost is not None or self.transport is None:
            return fail(AMINotConnected(action, "closed" if self._lost is not None else "not connected yet"))
        for name in headers:
            if name.lower() in ("action", "actionid"):
                return fail(ValueError(f"header {name!r} is set by sendAction itself; pass the action name as `action`"))
        actionID = self._nextID()
        if actionID in self._pending:
            return fail(ValueError(f"ActionID {actionID!r} is already pending: the ActionID generator repeated itself"))
        try:
            data = format_action(action, actionID, headers)
        except HeaderInjectionError:
            return fail()
        if timeout is None:
            timeout = self.defaultTimeout
        if timeout is not None and math.isinf(timeout):
            timeout = None
        pending = _Pending(action, actionID, timeout, self._cancelled)
        if timeout is not None:
            pending.timer = self._clock.callLater(timeout, self._timedOut, pending)
        self._pending[actionID] = pending
        transport: ITransport = self.transport  # type: ignore[assignment]
        transport.write(data)
        return pending.deferred

    def _cancelled(self, pending: _Pending) -> None:
        if self._pending.get(pending.actionID) is pending:
            del self._pending[pending.actionID]
        pending.stopTimer()

    def _timedOut(self, pending: _Pending) -> None:
        pending.timer = None
        if self._pending.get(pending.actionID) is not pending:
            return
        del self._pending[pending.actionID]
        self.log.warn(
            "No answer from Asterisk to {action} (ActionID {actionID}) within {timeout} s",
            action=pending.action,
            actionID=pending.actionID,
            timeout=pending.timeout,
        )
        pending.deferred.errback(AMITimeoutError(pending.action, pending.actionID, pending.timeout or 0.0))

    # -- bytes in -------------------------------------------------------------

    def _frameRejected(self, reason: str, raw: bytes) -> None:
        self.log.warn("Dropped an AMI frame from Asterisk: {reason}; it began {start!r}", reason=reason, start=raw[:120])

    def dataReceived(self, data: bytes) -> None:
        messages = self._parser.feed(data)
        if self._readyWaiters is not None and not self._parser.awaiting_banner:
            if self._parser.banner is None:
                self.log.warn("The AMI peer sent no 'Asterisk Call Manager' banner; carrying on without it")
            waiters, self._readyWaiters = self._readyWaiters, None
            for w in waiters:
                w.callback(self._parser.banner)
        pending = self._pending
        for msg in messages:
            if "Event" in msg:
                actionID = msg.get("ActionID")
                if actionID is not None:
                    p = pending.get(actionID)
                    if p is not None and p.events is not None:
                        self._listEvent(p, msg)
                        continue
                try:
                    self.controller.eventReceived(msg)
                except Exception:
                    self.log.failure("AMI event handler failed on {event} event", event=msg.get("Event"))
            else:
                self._responseReceived(msg)

    def _responseReceived(self, msg: Message) -> None:
        actionID = msg.get("ActionID")
        p = self._pending.get(actionID) if actionID is not None else None
        if p is None or p.response is not None:
            # A late answer to an action that timed out or was cancelled.
            self.log.debug("AMI response to no pending action: {msg}", msg=msg)
            return
        if msg.get("Response", "").lower() == "error":
            del self._pending[p.actionID]
            p.stopTimer()
            p.deferred.errback(AMIActionError(p.action, msg.get("Message", ""), msg))
        elif msg.get("EventList", "").lower() == "start":
            p.response = msg
            p.events = []
            if p.timer is not None and p.timeout is not None:
                p.timer.reset(p.timeout)
        else:
            del self._pending[p.actionID]
            p.stopTimer()
            p.deferred.callback(msg)

    def _listEvent(self, p: _Pending, msg: Message) -> None:
        marker = msg.get("EventList")
        if marker is None:
            done = msg["Event"].endswith("Complete")
        else:
            done = marker.lower() == "complete"
        if not done:
            p.events.append(msg)  # type: ignore[union-attr]
            if p.timer is not None and p.timeout is not None:
                p.timer.reset(p.timeout)
            return
        del self._pending[p.actionID]
        p.stopTimer()
        p.deferred.callback(EventListResult(p.response or {}, p.events or [], msg))

    # -- connection end -------------------------------------------------------

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = reason
        pending, self._pending = self._pending, {}
        waiters, self._readyWaiters = self._readyWaiters or [], None
        for p in pending.values():
            p.stopTimer()
        try:
            self.controller.connectionLost(reason)
        except Exception:
            self.log.failure("AMI controller failed on connection loss")
        for p in pending.values():
            p.deferred.errback(AMIConnectionLost(p.action, reason))
        for w in waiters:
            w.errback(AMIConnectionLost(None, reason))
