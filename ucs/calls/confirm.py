"""Send an action, then wait until the PBX model shows it: the one confirmation
module of UCS (call control and the agents' queue memberships).

Asterisk answers most actions at once ("Redirect successful", "Channel
Hungup", a ``QueuePause`` "Success") and does the work afterwards; what
happened is only known from the events that follow.  A caller therefore says
what it expects to see in the PBX model (an :class:`Expectation`: a check that
returns a value once the model shows it, ``None`` while it does not, or raises
when it can no longer happen) *before* it sends the action, sends the action,
and then waits for the expectation with a timeout.

Who re-runs the checks: call control calls :meth:`Confirmations.poke` after
each fact the model applies; the agents' memberships
(:mod:`ucs.agents.membership`) test the one expectation a member event is
about (:meth:`Expectation.test`).  :meth:`Expectation.met` settles one at once
when Asterisk's answer already says it is so ("Not there" to a removal).

The check is registered before the action is sent because AMI gives no
ordering guarantee between an action's response and the events it causes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.error import PBXError, UCSError

T = TypeVar("T")


class Expectation(Generic[T]):
    """One thing an action's sender waits to see in the PBX model."""

    def __init__(self, owner: Confirmations, check: Callable[[], T | None], what: str,
                 late: str | None = None) -> None:
        self._owner = owner
        self._check = check
        #: What should happen, for the timeout message ("SIP/1001 answers").
        self.what = what
        #: The timeout message, if not the usual one (``{timeout}`` is replaced).
        self.late = late
        self._deferred: Deferred[T] = Deferred(lambda d: self._settle() if not self.done else None)
        self._timer: IDelayedCall | None = None
        self.done = False

    def test(self) -> None:
        """Run the check; settle when it returns a value or raises."""
        if self.done:
            return
        try:
            value = self._check()
        except UCSError as e:
            self._settle()
            self._deferred.errback(Failure(e))
            return
        except Exception:  # noqa: BLE001 - a bug in a check fails that request only
            self._owner.log.failure("confirmation: checking that {what} failed", what=self.what)
            self._settle()
            self._deferred.errback(PBXError(f"UCS could not check that {self.what}"))
            return
        if value is not None:
            self._settle()
            self._deferred.callback(value)

    def met(self, value: T) -> None:
        """Settle with ``value`` now: the PBX's answer already says it is so."""
        if not self.done:
            self._settle()
            self._deferred.callback(value)

    def wait(self, timeout: float) -> Deferred[T]:
        """Fires with the value the check returned; fails with :class:`PBXError`
        saying what did not happen when ``timeout`` seconds pass first (the
        clock starts now)."""
        if not self.done and self._timer is None:
            self._timer = self._owner.clock.callLater(timeout, self._timed_out, timeout)
        return self._deferred

    def cancel(self) -> None:
        """Stop waiting (the action failed); nobody will read the result."""
        if not self.done:
            self._settle()
        self._deferred.addErrback(lambda _: None)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        if self.done:
            return
        self._settle()
        if self.late is not None:
            message = self.late.replace("{timeout}", f"{timeout:g}")
        else:
            message = f"Asterisk accepted the request but {self.what} did not happen within {timeout:g} s"
        self._deferred.errback(PBXError(message))

    def fail(self, error: UCSError) -> None:
        if not self.done:
            self._settle()
            self._deferred.errback(Failure(error))

    def _settle(self) -> None:
        self.done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._owner._forget(self)


class Confirmations:
    """The pending expectations of one sender (:class:`~ucs.calls.control.CallControl`,
    :class:`~ucs.agents.membership.Memberships`)."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._pending: list[Expectation[object]] = []

    def expect(self, check: Callable[[], T | None], what: str, *, late: str | None = None) -> Expectation[T]:
        """Start watching for ``check`` (tested at once, then after every fact);
        ``late``: the timeout message instead of the usual one (``{timeout}`` in it)."""
        exp: Expectation[T] = Expectation(self, check, what, late)
        self._pending.append(exp)  # type: ignore[arg-type]
        exp.test()
        return exp

    def poke(self) -> None:
        for exp in list(self._pending):
            exp.test()

    def fail_all(self, error: UCSError) -> None:
        """Asterisk went away (restart): nothing pending can happen any more."""
        for exp in list(self._pending):
            exp.fail(error)

    def _forget(self, exp: Expectation[T]) -> None:
        try:
            self._pending.remove(exp)  # type: ignore[arg-type]
        except ValueError:
            pass

    def __len__(self) -> int:
        return len(self._pending)
