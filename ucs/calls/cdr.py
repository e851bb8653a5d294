"""Writes every finished call to the store as a CDR, and loses none.

A call ends on the reactor thread; the store writes in its own threads.  The
writer keeps finished calls in an ordered queue and writes them one at a
time; when the store fails (PostgreSQL restarting, a full disk) the CDRs stay
queued and the writer tries again after ``retry`` seconds, so a store outage
delays CDRs instead of dropping them.

A CDR the store refuses for what it holds (:class:`ucs.store.StoreRefused`: a
value the database cannot take) is not an outage: written again it would fail
again, and every CDR after it would wait for ever.  It is stored at once without
what was refused (first the call's metadata, the one part an agent or a plugin
fills freely; then its JSON; at last only the columns that say who called whom
and when), each step logged, and the CDR itself records what was left out.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ucs.calls.call import Call
from ucs.calls.tracker import CallObserver
from ucs.store.errors import StoreRefused


class CDRStore(Protocol):
    def save_cdr(self, cdr: dict[str, Any]) -> Deferred[None]: ...


def cdr_of(call: Call) -> dict[str, Any]:
    full = call.to_dict()
    # Who monitored the call (ChanSpy; :mod:`ucs.calls.spying`): kept with it, not sent to bars.
    full["monitors"] = [dict(m) for m in call.monitors]
    return {
        "uniqueid": call.uniqueid,
        "direction": call.direction,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "called_number": call.called_number,
        "connected_number": call.connected_number,
        "connected_name": call.connected_name,
        "queue": call.queue,
        "answered_by": call.answered_by,
        "cause": int(call.cause),
        "created": call.created,
        "connected": call.connected,
        "disconnected": call.disconnected,
        "account_code": call.account_code,
        "metadata": dict(call.data),
        "journey": full["journey"],
        "data": full,
    }


def _without_metadata(cdr: dict[str, Any], why: str) -> dict[str, Any]:
    data = {k: v for k, v in (cdr.get("data") or {}).items() if k != "data"}
    data["metadata_refused"] = why
    return dict(cdr, metadata=None, data=data)


def _without_json(cdr: dict[str, Any], why: str) -> dict[str, Any]:
    return dict(cdr, metadata=None, journey=None, data=None)


_BARE = ("uniqueid", "direction", "cause", "created", "connected", "disconnected")


def _bare(cdr: dict[str, Any], why: str) -> dict[str, Any]:
    return {k: cdr.get(k) for k in _BARE}


#: What a refused CDR is stored without, step by step: (what is left out, how).
_SALVAGE = (("its metadata", _without_metadata), ("its metadata, journey and data", _without_json),
            ("everything but its uniqueid, direction, cause and times", _bare))


class CDRWriter(CallObserver):
    log = Logger()

    def __init__(self, store: CDRStore, clock: IReactorTime, retry: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self.retry = retry
        self.pending: deque[dict[str, Any]] = deque()
        self.written = 0
        self.failures = 0
        self._writing = False
        self._retry_call: IDelayedCall | None = None
        self._idle: list[Deferred[None]] = []
        #: The CDR at the head as the call left it, while it is being salvaged, and how
        #: many salvage steps it has had.
        self._original: dict[str, Any] | None = None
        self._salvaged = 0
        #: CDRs stored without something the store refused (for metrics and tests).
        self.refused = 0

    def call_ended(self, call: Call) -> None:
        if call.merged_into:
            return  # a pickup's dialling, folded into the call it picked up
        if call.monitoring is not None:
            return  # a supervisor's monitoring session: kept on the monitored call's CDR
        self.add(cdr_of(call))

    def add(self, cdr: dict[str, Any]) -> None:
        """Queue a CDR made elsewhere (issue 20, :mod:`ucs.cluster.gap`: a call that ended
        while no node owned the AMI link), written like the others."""
        self.pending.append(cdr)
        self._next()

    def _next(self) -> None:
        if self._writing or self._retry_call is not None:
            return
        if not self.pending:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        self._writing = True
        cdr = self.pending[0]
        try:
            d = self._store.save_cdr(cdr)
        except Exception as e:  # a CDR the store refuses outright: log it, keep the rest going
            self._writing = False
            self.pending.popleft()
            self.log.error("CDR {uniqueid} refused by the store and dropped: {e}", uniqueid=cdr["uniqueid"], e=e)
            self._next()
            return
        d.addCallbacks(self._saved, self._failed)

    def _saved(self, _: object) -> None:
        self._writing = False
        self.pending.popleft()
        self.written += 1
        self._original, self._salvaged = None, 0
        if self.failures:
            self.log.info("store is writable again; {n} CDRs still queued", n=len(self.pending))
            self.failures = 0
        self._next()

    def _failed(self, failure: Any) -> None:
        self._writing = False
        if failure.check(StoreRefused):
            self._refused(failure.value)
            return
        self.failures += 1
        if self.failures == 1:
            self.log.warn(
                "CDR {uniqueid} could not be written ({error}); {n} queued, retrying every {retry} s",
                uniqueid=self.pending[0]["uniqueid"], error=failure.getErrorMessage(),
                n=len(self.pending), retry=self.retry,
            )
        self._retry_call = self._clock.callLater(self.retry, self._retry)

    def _refused(self, error: StoreRefused) -> None:
        """The head CDR was refused for its content: the next salvage step, at once."""
        first = self._original is None
        original = self.pending[0] if self._original is None else self._original
        uid = original.get("uniqueid")
        if first:
            self.refused += 1
            if error.field is not None and error.field not in ("metadata", "data"):
                self._salvaged = 1  # not the metadata: no use storing it without the metadata only
        if self._salvaged >= len(_SALVAGE):
            self.log.error("CDR {uniqueid} refused by the store even without its data ({error}); dropped",
                           uniqueid=uid, error=str(error))
            self.pending.popleft()
            self._original, self._salvaged = None, 0
            self._next()
            return
        what, salvage = _SALVAGE[self._salvaged]
        self.log.error("CDR {uniqueid} refused by the store for what it holds ({error}); storing it without {what}",
                       uniqueid=uid, error=str(error), what=what)
        self._original = original
        self._salvaged += 1
        self.pending[0] = salvage(original, str(error))
        self._next()

    def _retry(self) -> None:
        self._retry_call = None
        self._next()

    def flushed(self) -> Deferred[None]:
        """Fires when every queued CDR is written (for graceful shutdown and tests)."""
        if not self.pending and not self._writing:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def stop(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
