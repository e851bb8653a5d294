"""The election of the node that owns the AMI link: one PostgreSQL advisory lock.

Every node tries ``pg_try_advisory_lock`` on the same key (from the instance
domain and the Asterisk, :func:`~ucs.cluster.lockconn.lock_key`) on a session
of its own (:mod:`ucs.cluster.lockconn`).  The one that gets it is the owner
and connects AMI; the others are standbys and try again every
``retry_interval``.  The owner checks its session every ``check_interval`` and
steps down -- stops its AMI link -- as soon as a check fails or goes unanswered
for ``step_down_after``.

So that the old owner has let go before a new one connects AMI, whatever freed
the lock: a node that wins the lock first *claims* it for ``check_interval +
step_down_after`` (holding it, checking its own session at the end) and only
then becomes the owner -- less the time since the old owner last proved its
session alive (each check writes it: :meth:`LockConnection.claim_left`), so
that after a cut the claim does not add to ``release_after``.  An old owner whose session was terminated notices at
its next check; one that is cut off, at the latest ``step_down_after`` after
that check -- both within the claim.  (PostgreSQL only frees a silent owner's
lock after ``release_after``, which is more than ``check_interval +
step_down_after``; one that died closed its socket and needs no waiting for,
but nobody can tell the two apart from outside.)  A node that comes back finds the lock taken and stays a standby: nobody
fights, nobody is pre-empted.

The whole machine, :data:`TRANSITIONS` (state, input) -> (next state, outputs)::

    stopped      --start-->     connecting    connect
    connecting   --connected--> standby       try
    connecting   --failed-->    disconnected  close, wait
    disconnected --timer-->     connecting    connect
    standby      --won-->       claiming      wait (what is left of the claim)
    claiming     --timer-->     claiming      check
    claiming     --alive-->     owner         take_over, wait
    claiming     --failed-->    disconnected  close, wait
    standby      --lost-->      standby       wait
    standby      --timer-->     standby       try
    standby      --failed-->    disconnected  close, wait
    owner        --timer-->     owner         check
    owner        --alive-->     owner         wait
    owner        --failed-->    disconnected  step_down, close, wait
    any but stopped --stop-->   stopped       cancel, step_down (if owner), close

The claim's check also begins a new *term* of ownership (:meth:`LockConnection.take_term`,
the ``election`` row's number raised in the same statement): :attr:`Elector.fence` is what
the owner's agent documents are written under, so that once another node has claimed the
lock a demoted owner's late writes are refused (:class:`ucs.store.base.Fence`).

An input missing from the table raises before anything changes.  Results of
work started on a session that was since closed (a check that answers after
its deadline) are dropped, not fed to the machine: each session has an epoch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.cluster.lockconn import CLAIM_MARGIN, LockConnection, Timings
from ucs.cluster.waiters import StateWaiters
from ucs.store.base import Fence

STOPPED, CONNECTING, DISCONNECTED, STANDBY, CLAIMING, OWNER = (
    "stopped", "connecting", "disconnected", "standby", "claiming", "owner")

TRANSITIONS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    (STOPPED, "start"): (CONNECTING, ("connect",)),
    (CONNECTING, "connected"): (STANDBY, ("try",)),
    (CONNECTING, "failed"): (DISCONNECTED, ("close", "wait")),
    (DISCONNECTED, "timer"): (CONNECTING, ("connect",)),
    (STANDBY, "won"): (CLAIMING, ("wait",)),
    (CLAIMING, "timer"): (CLAIMING, ("check",)),
    (CLAIMING, "alive"): (OWNER, ("take_over", "wait")),
    (CLAIMING, "failed"): (DISCONNECTED, ("close", "wait")),
    (STANDBY, "lost"): (STANDBY, ("wait",)),
    (STANDBY, "timer"): (STANDBY, ("try",)),
    (STANDBY, "failed"): (DISCONNECTED, ("close", "wait")),
    (OWNER, "timer"): (OWNER, ("check",)),
    (OWNER, "alive"): (OWNER, ("wait",)),
    (OWNER, "failed"): (DISCONNECTED, ("step_down", "close", "wait")),
    (CONNECTING, "stop"): (STOPPED, ("cancel", "close")),
    (DISCONNECTED, "stop"): (STOPPED, ("cancel", "close")),
    (STANDBY, "stop"): (STOPPED, ("cancel", "close")),
    (CLAIMING, "stop"): (STOPPED, ("cancel", "close")),
    (OWNER, "stop"): (STOPPED, ("cancel", "step_down", "close")),
}

log = Logger(namespace="ucs.cluster")


class Elector:
    """One node's part in the election of an AMI owner.

    ``on_owner()`` is called when this node becomes the owner, ``on_standby()``
    when it steps down (before its session is closed, so before the lock can
    pass to anyone); both on the reactor thread.  ``clock`` runs the timers
    (a ``task.Clock`` in tests); ``reactor`` and ``pool`` run the blocking
    session calls in a thread.
    """

    def __init__(self, connection: Callable[[], LockConnection], timings: Timings, clock: Any, reactor: Any,
                 *, on_owner: Callable[[], Any] = lambda: None, on_standby: Callable[[], Any] = lambda: None,
                 pool: Any = None, name: str = "") -> None:
        self._new_connection = connection
        self.timings = timings
        self._clock = clock
        self._reactor = reactor
        self._pool = pool
        self.on_owner = on_owner
        self.on_standby = on_standby
        self.name = name
        self.state = STOPPED
        self._conn: LockConnection | None = None
        self._epoch = 0
        self._timer: IDelayedCall | None = None
        self._closing: Deferred[None] = succeed(None)
        self._waiters = StateWaiters()
        #: How long a claim still lasts when the lock is won (:meth:`LockConnection.claim_left`).
        self._claim_left = timings.claim
        #: The PostgreSQL backend serving this node's session (``pg_terminate_backend`` in tests).
        self.backend_pid: int | None = None
        #: The term this node's ownership began with (its claim's check), ``None`` when it owns
        #: nothing or the store has no terms yet: what its agents' writes are fenced by.
        self.fence: Fence | None = None
        #: The last changes of state, with the clock's time: (time, state).
        self.history: deque[tuple[float, str]] = deque(maxlen=100)

    # --- the public side -----------------------------------------------------------------

    @property
    def is_owner(self) -> bool:
        return self.state == OWNER

    @property
    def waiting(self) -> bool:
        """Nothing is in progress: the machine waits for its next timer."""
        return self._timer is not None and self._timer.active()

    @property
    def link(self) -> str:
        """The session to PostgreSQL: ``up`` (standby or owner), ``down`` or ``stopped``."""
        return {STANDBY: "up", OWNER: "up", STOPPED: "stopped"}.get(self.state, "down")

    def start(self) -> None:
        self._input("start")

    def stop(self) -> Deferred[None]:
        """Step down if owner, end the session (freeing the lock); fires once it is closed."""
        if self.state != STOPPED:
            self._input("stop")
        return self._closing

    def when(self, state: str) -> Deferred[None]:
        """Fires when the machine is in ``state`` (at once if it is)."""
        return self._waiters.when(self.state, state)

    # --- the machine -----------------------------------------------------------------------

    def _input(self, name: str) -> None:
        try:
            new, outputs = TRANSITIONS[(self.state, name)]
        except KeyError:
            raise RuntimeError(f"election: no transition for {name!r} in state {self.state!r}") from None
        old, self.state = self.state, new
        if new != old:
            self.history.append((self._clock.seconds(), new))
            log.info("election {name}: {old} -> {new}", name=self.name, old=old, new=new)
        for output in outputs:
            getattr(self, "_do_" + output)(old)
        if new != old:
            self._waiters.entered(new)

    def _result(self, epoch: int, success: str, value_to_input: Callable[[Any], str] | None = None
                ) -> Callable[[Any], None]:
        """What to feed the machine when work on session ``epoch`` succeeded."""

        def fed(value: Any) -> None:
            if epoch == self._epoch and self.state != STOPPED:
                self._input(value_to_input(value) if value_to_input else success)

        return fed

    def _failed(self, epoch: int, what: str) -> Callable[[Failure], None]:
        def fed(failure: Failure) -> None:
            if epoch == self._epoch and self.state != STOPPED:
                log.warn("election {name}: {what} failed: {why}", name=self.name, what=what,
                         why=" ".join(failure.getErrorMessage().split()) or failure.type.__name__)
                self._input("failed")

        return fed

    def _in_thread(self, fn: Callable[[], Any]) -> Deferred[Any]:
        pool = self._pool if self._pool is not None else self._reactor.getThreadPool()
        return deferToThreadPool(self._reactor, pool, fn)

    # --- the outputs -------------------------------------------------------------------------

    def _do_connect(self, old: str) -> None:
        self._epoch += 1
        conn = self._conn = self._new_connection()
        epoch = self._epoch

        def connected(pid: int) -> int:
            if epoch == self._epoch:
                self.backend_pid = pid
            else:  # stopped or closed meanwhile: this session is nobody's
                self._in_thread(conn.close)
            return pid

        d = self._in_thread(conn.connect)
        d.addCallback(connected)
        d.addCallbacks(self._result(epoch, "connected"), self._failed(epoch, "connecting to PostgreSQL"))

    def _do_try(self, old: str) -> None:
        conn, epoch = self._conn, self._epoch
        assert conn is not None
        claim = self.timings.claim

        def attempt() -> float | None:
            return conn.claim_left(claim) if conn.try_lock() else None

        d = self._in_thread(attempt)
        d.addCallbacks(self._result(epoch, "", self._won), self._failed(epoch, "pg_try_advisory_lock"))

    def _won(self, left: float | None) -> str:
        if left is None:
            return "lost"
        self._claim_left = left
        if left <= 0:
            log.info("election {name}: the last owner proved its session alive more than {claim:g} s ago: "
                     "it has stepped down; no claim", name=self.name, claim=self.timings.claim)
        elif left < self.timings.claim:
            log.info("election {name}: the last owner proved its session alive {ago:.1f} s ago: claiming for "
                     "{left:.1f} s", name=self.name, ago=self.timings.claim + CLAIM_MARGIN - left, left=left)
        return "won"

    def _do_check(self, old: str) -> None:
        conn, epoch = self._conn, self._epoch
        assert conn is not None
        claiming = self.state == CLAIMING
        d = self._in_thread(conn.take_term if claiming else conn.check)
        d.addTimeout(self.timings.step_down_after, self._clock)
        if claiming:
            d.addCallback(self._took, epoch)
        d.addCallbacks(self._result(epoch, "alive"), self._failed(epoch, "checking the lock's session"))

    def _took(self, fence: Fence | None, epoch: int) -> None:
        if epoch != self._epoch:
            return
        self.fence = fence
        if fence is None:
            log.warn("election {name}: the store has no election terms (not migrated to version 7): this "
                     "owner's writes are not fenced", name=self.name)
        else:
            log.info("election {name}: term {term} of the AMI link's ownership", name=self.name, term=fence.term)

    def _do_wait(self, old: str) -> None:
        delay = {OWNER: self.timings.check_interval, CLAIMING: self._claim_left}.get(
            self.state, self.timings.retry_interval)
        self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._input("timer")

    def _do_cancel(self, old: str) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _do_take_over(self, old: str) -> None:
        log.info("election {name}: this node owns the AMI link now", name=self.name)
        self._call(self.on_owner)

    def _do_step_down(self, old: str) -> None:
        if old == OWNER:
            log.warn("election {name}: this node steps down (stops its AMI link)", name=self.name)
            self._call(self.on_standby)

    def _do_close(self, old: str) -> None:
        conn, self._conn = self._conn, None
        self._epoch += 1  # whatever the old session still answers is dropped
        self.backend_pid = None
        self.fence = None
        if conn is not None:
            self._closing = self._in_thread(conn.close)
            self._closing.addErrback(lambda f: None)

    def _call(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            log.failure("election {name}: a role change hook failed", name=self.name)
