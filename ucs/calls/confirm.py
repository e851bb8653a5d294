"""Waiting for the PBX to confirm what a call-control action asked for.

Asterisk answers most actions at once ("Redirect successful", "Channel
Hungup") and does the work afterwards; what happened is only known from the
events that follow.  A call-control method therefore says what it expects to
see in the PBX model (an :class:`Expectation`: a check that returns a value
once the model shows it, ``None`` while it does not, or raises when it can no
longer happen) *before* it sends the action, sends the action, and then waits
for the expectation with a timeout.  :meth:`Confirmations.poke` re-runs every
pending check after each fact the model applies.

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
    """One thing a call-control method waits to see in the PBX model."""

    def __init__(self, owner: Confirmations, check: Callable[[], T | None], what: str) -> None:
        self._owner = owner
        self._check = check
        #: What should happen, for the timeout message ("SIP/1001 answers").
        self.what = what
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
            self._owner.log.failure("call control: checking that {what} failed", what=self.what)
            self._settle()
            self._deferred.errback(PBXError(f"UCS could not check that {self.what}"))
            return
        if value is not None:
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
        self._deferred.errback(PBXError(f"Asterisk accepted the request but {self.what} did not happen within {timeout:g} s"))

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
    """The pending expectations of one :class:`~ucs.calls.control.CallControl`."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._pending: list[Expectation[object]] = []

    def expect(self, check: Callable[[], T | None], what: str) -> Expectation[T]:
        """Start watching for ``check`` (tested at once, then after every fact)."""
        exp: Expectation[T] = Expectation(self, check, what)
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
