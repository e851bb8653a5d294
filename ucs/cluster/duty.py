"""The owner's duty: a node's take-over and step-down as one transition table (issue 20).

The election (:mod:`ucs.cluster.election`) says whether this node owns the AMI
link; :class:`Duty` says what the node does about it, and in which order:

- **taking over**: the agents are restored from the store first (``restore``:
  as after a restart, or as the old owner told them, :mod:`ucs.cluster.handover`),
  and only then does the owner's term begin (``begin_term``: from a model without
  the agents the standbys' bars would show every agent logged out) and the AMI
  link start (``take_link``: its first resync makes the agents reconcile with
  Asterisk).  No agent is restored before the directory is loaded (``domain``).
  If the restore fails (the store away) there is no AMI link without the agents:
  the take-over is tried again after ``retry_interval``.
- **stepping down**: the AMI link stops at once (``stop_link``: before the
  election's session closes, as the election requires -- the elector calls its
  hook first), then the agents are saved and forgotten (``step_down``).

A restore or a step-down takes time (the store), and the election may change its
mind meanwhile: those are states of their own, so that a take-over interrupted by
a step-down finishes its restore and then steps down (no AMI link, no term), a
step-down interrupted by a new election finishes saving and then takes over
again, and a node that stops waits for both.

The whole machine, :data:`TRANSITIONS` (state, input) -> (next state, outputs),
but the pairs that change nothing::

    starting               --domain-->    standby
    starting               --elected-->   waiting                remember
    waiting                --domain-->    restoring              restore
    waiting                --lost-->      starting
    standby                --elected-->   restoring              remember, restore
    restoring              --restored-->  owner                  begin_term, take_link
    restoring              --failed-->    retrying               wait
    restoring              --lost-->      restoring-lost
    restoring-lost         --elected-->   restoring
    restoring-lost         --restored-->  stepping-down          step_down
    restoring-lost         --failed-->    standby
    retrying               --timer-->     restoring              restore
    retrying               --lost-->      standby                cancel
    owner                  --lost-->      stepping-down          stop_link, step_down
    stepping-down          --elected-->   stepping-down-elected
    stepping-down          --down-->      standby
    stepping-down-elected  --lost-->      stepping-down
    stepping-down-elected  --down-->      restoring              remember, restore
    starting               --stop-->      stopped
    waiting                --stop-->      stopped
    standby                --stop-->      stopped
    retrying               --stop-->      stopped                cancel
    restoring              --stop-->      restoring-stop
    restoring-lost         --stop-->      restoring-stop
    restoring-stop         --restored-->  stopping               step_down
    restoring-stop         --failed-->    stopped
    owner                  --stop-->      stopping               stop_link, step_down
    stepping-down          --stop-->      stopping
    stepping-down-elected  --stop-->      stopping
    stopping               --down-->      stopped

``elected``, ``lost`` and ``domain`` may be fed at any time, again and again (the
node feeds its role at every change of role or NATS link): where they change
nothing the table says so.  ``restored``/``failed`` and ``down`` are what the
node's ``restore`` and ``step_down`` end with, ``timer`` is the machine's own
(``wait``, ``cancel``).  An input missing from the table raises before anything
changes.

The outputs are the node's (:class:`DutyActions`), but ``wait`` and ``cancel``:
``remember`` keeps what the old owner told of its calls (the node's replica as a
standby; for the calls' CDRs across the gap, :mod:`ucs.cluster.gap`) when the
take-over begins -- not at a retry's restore, nor at the directory's load, by
which time the node, owner, no longer follows the old owner's stream.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ucs.cluster.waiters import StateWaiters

log = Logger(namespace="ucs.cluster")

# --- states
STARTING = "starting"              # not the owner; the directory not loaded yet
WAITING = "waiting"                # elected; restores the agents once the directory is loaded
STANDBY = "standby"                # not the owner: no agents of its own, no AMI link
RESTORING = "restoring"            # elected: the agents being restored
RESTORING_LOST = "restoring-lost"  # ... the ownership lost meanwhile: steps down once restored
RESTORING_STOP = "restoring-stop"  # ... the node stopping: steps down and stops once restored
RETRYING = "retrying"              # the restore failed: tried again after retry_interval
OWNER = "owner"                    # the agents restored, the term begun, the AMI link started
STEPPING_DOWN = "stepping-down"    # the AMI link stopped; the agents being saved and forgotten
STEPPING_DOWN_ELECTED = "stepping-down-elected"  # ... elected again meanwhile: takes over after
STOPPING = "stopping"              # stepping down because the node stops
STOPPED = "stopped"

STATES = (STARTING, WAITING, STANDBY, RESTORING, RESTORING_LOST, RESTORING_STOP, RETRYING, OWNER,
          STEPPING_DOWN, STEPPING_DOWN_ELECTED, STOPPING, STOPPED)

# --- inputs
ELECTED = "elected"    # the election says this node owns the AMI link
LOST = "lost"          # ... that it does not (or the node is stopping)
DOMAIN = "domain"      # the directory is loaded and the registry built (ucs.domain.Domain.start)
RESTORED = "restored"  # the node's restore ended: the agents are this node's
FAILED = "failed"      # ... it failed (and the node forgot what it had restored)
TIMER = "timer"        # retry_interval after a failed restore
DOWN = "down"          # the node's step_down ended: the agents saved and forgotten
STOP = "stop"          # the node stops (after its election stepped down)

INPUTS = (ELECTED, LOST, DOMAIN, RESTORED, FAILED, TIMER, DOWN, STOP)

Transition = tuple[str, tuple[str, ...]]


def _same(input: str, *states: str) -> dict[tuple[str, str], Transition]:
    """``input`` changes nothing in ``states``."""
    return {(s, input): (s, ()) for s in states}


TRANSITIONS: dict[tuple[str, str], Transition] = {
    # taking over
    (STARTING, DOMAIN): (STANDBY, ()),
    (STARTING, ELECTED): (WAITING, ("remember",)),
    (WAITING, DOMAIN): (RESTORING, ("restore",)),
    (WAITING, LOST): (STARTING, ()),
    (STANDBY, ELECTED): (RESTORING, ("remember", "restore")),
    (RESTORING, RESTORED): (OWNER, ("begin_term", "take_link")),
    (RESTORING, FAILED): (RETRYING, ("wait",)),
    (RESTORING, LOST): (RESTORING_LOST, ()),
    (RESTORING_LOST, ELECTED): (RESTORING, ()),
    (RESTORING_LOST, RESTORED): (STEPPING_DOWN, ("step_down",)),
    (RESTORING_LOST, FAILED): (STANDBY, ()),
    (RETRYING, TIMER): (RESTORING, ("restore",)),
    (RETRYING, LOST): (STANDBY, ("cancel",)),
    # stepping down
    (OWNER, LOST): (STEPPING_DOWN, ("stop_link", "step_down")),
    (STEPPING_DOWN, ELECTED): (STEPPING_DOWN_ELECTED, ()),
    (STEPPING_DOWN, DOWN): (STANDBY, ()),
    (STEPPING_DOWN_ELECTED, LOST): (STEPPING_DOWN, ()),
    (STEPPING_DOWN_ELECTED, DOWN): (RESTORING, ("remember", "restore")),
    # stopping
    (STARTING, STOP): (STOPPED, ()),
    (WAITING, STOP): (STOPPED, ()),
    (STANDBY, STOP): (STOPPED, ()),
    (RETRYING, STOP): (STOPPED, ("cancel",)),
    (RESTORING, STOP): (RESTORING_STOP, ()),
    (RESTORING_LOST, STOP): (RESTORING_STOP, ()),
    (RESTORING_STOP, RESTORED): (STOPPING, ("step_down",)),
    (RESTORING_STOP, FAILED): (STOPPED, ()),
    (OWNER, STOP): (STOPPING, ("stop_link", "step_down")),
    (STEPPING_DOWN, STOP): (STOPPING, ()),
    (STEPPING_DOWN_ELECTED, STOP): (STOPPING, ()),
    (STOPPING, DOWN): (STOPPED, ()),
    # the role told again, the directory loaded again: nothing changes
    **_same(ELECTED, WAITING, RESTORING, RETRYING, OWNER, STEPPING_DOWN_ELECTED),
    **_same(LOST, STARTING, STANDBY, RESTORING_LOST, RESTORING_STOP, STEPPING_DOWN, STOPPING, STOPPED),
    **_same(DOMAIN, *(s for s in STATES if s not in (STARTING, WAITING))),
    **_same(STOP, RESTORING_STOP, STOPPING, STOPPED),
}


class DutyActions(Protocol):
    """What the node does on the machine's outputs (:class:`~ucs.cluster.node.ClusterNode`).

    Each is called on the reactor thread and returns at once; ``restore`` and
    ``step_down`` start work that ends by feeding :meth:`Duty.restored` or
    :meth:`Duty.failed`, and :meth:`Duty.down`.
    """

    def remember(self) -> None:
        """Keep what the old owner told of its calls (the replica this standby followed)."""

    def restore(self) -> None:
        """Restore the agents (after any step-down still under way)."""

    def begin_term(self) -> None:
        """The owner's term may begin: its feed, its command server."""

    def take_link(self) -> None:
        """Start the AMI link (its figures read again first), unless this node is no longer the owner by then."""

    def stop_link(self) -> None:
        """Stop the AMI link, at once."""

    def step_down(self) -> None:
        """Save and forget the agents (after any take-over work still under way)."""


class Duty:
    """One node's take-over and step-down (:data:`TRANSITIONS`), on ``clock``."""

    def __init__(self, actions: DutyActions, clock: IReactorTime, retry_interval: float, *, name: str = "") -> None:
        self.actions = actions
        self.clock = clock
        self.retry_interval = retry_interval
        self.name = name
        self.state = STARTING
        self._timer: IDelayedCall | None = None
        self._waiters = StateWaiters()
        self._queue: list[str] = []  # the input being taken, then those its outputs fed

    @property
    def restored(self) -> bool:
        """This node owns the AMI link and its agents are restored: its term may begin."""
        return self.state == OWNER

    def when(self, state: str) -> Deferred[None]:
        """Fires when the machine is in ``state`` (at once if it is)."""
        return self._waiters.when(self.state, state)

    # --- the inputs --------------------------------------------------------------------------

    def role(self, owner: bool) -> None:
        """What the election says now (``elected`` or ``lost``)."""
        self.input(ELECTED if owner else LOST)

    def domain(self) -> None:
        self.input(DOMAIN)

    def restore_ended(self, ok: bool) -> None:
        self.input(RESTORED if ok else FAILED)

    def down(self) -> None:
        self.input(DOWN)

    def stop(self) -> Deferred[None]:
        """The node stops: steps down if it must; fires once stopped."""
        self.input(STOP)
        return self.when(STOPPED)

    def input(self, name: str) -> None:
        """Feed ``name``; one fed by an output is taken once that transition's outputs have run."""
        if (self.state, name) not in TRANSITIONS and not self._queue:
            raise RuntimeError(f"cluster duty: no transition for {name!r} in state {self.state!r}")
        self._queue.append(name)
        if len(self._queue) > 1:
            return  # an output fed it: taken next
        while self._queue:
            try:
                self._step(self._queue[0])
            except BaseException:
                self._queue.clear()
                raise
            del self._queue[0]

    def _step(self, name: str) -> None:
        try:
            new, outputs = TRANSITIONS[(self.state, name)]
        except KeyError:
            raise RuntimeError(f"cluster duty: no transition for {name!r} in state {self.state!r}") from None
        old, self.state = self.state, new
        if new != old:
            log.debug("cluster duty {name}: {old} --{input}--> {new}", name=self.name, old=old, input=name, new=new)
        for output in outputs:
            if output == "wait":
                self._timer = self.clock.callLater(self.retry_interval, self._tick)
            elif output == "cancel":
                if self._timer is not None and self._timer.active():
                    self._timer.cancel()
                self._timer = None
            else:
                getattr(self.actions, output)()
        if new != old:
            self._waiters.entered(new)

    def _tick(self) -> None:
        self._timer = None
        self.input(TIMER)
