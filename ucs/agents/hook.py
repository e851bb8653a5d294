"""The agent state change hook of seeds 000/001 (``addChangeStatusHook``).

One plugin may register ``fn(agent, status, reason)``; a second registration
raises :class:`~ucs.error.ProcessingError`.  Before a requested change,
``fn`` gets the agent as it is before the change and the wanted status and
reason, and:

- returns ``(status, reason)`` as given: the change goes ahead;
- returns another ``(status, reason)``: that is done instead;
- returns ``(None, why)`` or raises ``ProcessingError(why)``: the change is
  blocked with ``ProcessingError(why)`` (``"Blocked by hook"`` when ``why``
  is empty);
- raises anything else (or returns something that is not a status and a
  reason, or takes longer than its time budget): the originally requested
  change goes ahead and the traceback is logged.

Plugin code may be slow or blocking (``time.sleep``, a database, an HTTP
request), so ``fn`` runs in the reactor's thread pool (``deferToThreadPool``)
and never on the reactor thread.  Its answer is awaited for at most
``budget`` seconds (on the service's clock); after that the change goes ahead
as requested and the late answer is ignored.  The agent passed is the live
object: it does not change while the hook runs, because changes of one agent
are serialised and this one waits for the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ucs.constants import AgentStatus
from ucs.error import ProcessingError

BLOCKED = "Blocked by hook"

Hook = Callable[[Any, AgentStatus, str], Any]


class StatusHook:
    log = Logger()

    def __init__(self, clock: IReactorTime, reactor: Any = None, *, budget: float = 5.0) -> None:
        self._clock = clock
        self._reactor = reactor
        self.budget = budget
        self.fn: Hook | None = None

    def add(self, fn: Hook) -> None:
        if not callable(fn):
            raise ProcessingError(f"the status hook must be callable, not {type(fn).__name__}")
        if self.fn is not None:
            raise ProcessingError(
                f"a status change hook is already registered ({_name(self.fn)}); only one plugin may "
                "register one — it must call removeChangeStatusHook() first"
            )
        self.fn = fn

    def remove(self) -> None:
        self.fn = None

    def _run(self, fn: Hook, agent: Any, status: AgentStatus, reason: str) -> Deferred[Any]:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn, agent, status, reason)

    async def consult(self, agent: Any, status: AgentStatus, reason: str) -> tuple[AgentStatus, str]:
        """What the hook makes of the change; raises :class:`ProcessingError` when it blocks it."""
        fn = self.fn
        if fn is None:
            return status, reason
        d = self._run(fn, agent, status, reason)
        d.addTimeout(self.budget, self._clock)
        try:
            result = await d
        except ProcessingError as e:
            raise ProcessingError(e.message or BLOCKED) from None
        except Exception:  # noqa: BLE001 - seed 000: any other exception lets the change through
            self.log.failure(
                "status hook {hook} failed on {status} ({reason}) for agent {agent}; the change goes ahead as requested",
                hook=_name(fn), status=status.name, reason=reason, agent=getattr(agent, "username", agent),
            )
            return status, reason
        try:
            new_status, new_reason = result
        except (TypeError, ValueError):
            self.log.error("status hook {hook} returned {result!r}, not (status, reason); the change goes ahead as requested",
                           hook=_name(fn), result=result)
            return status, reason
        if new_status is None:
            raise ProcessingError(new_reason if new_reason else BLOCKED)
        try:
            parsed = AgentStatus(int(new_status))
        except (TypeError, ValueError):
            self.log.error("status hook {hook} returned status {status!r}, which is not one of {names}; "
                           "the change goes ahead as requested",
                           hook=_name(fn), status=new_status, names=[s.name for s in AgentStatus])
            return status, reason
        return parsed, "" if new_reason is None else str(new_reason)


def _name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{type(owner).__module__}.{name}" if owner is not None else name
