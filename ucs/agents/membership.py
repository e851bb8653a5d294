"""Carrying a status out on Asterisk: queue memberships made to match targets.

:meth:`Memberships.apply` sends, for each queue whose member (as the PBX
model shows it) does not match its :class:`Change` — the
:class:`~ucs.agents.transitions.Target` (member or not, paused or not, the
reason) and the penalty (the membership's priority in the directory) — what
it takes: ``QueueAdd`` (Interface and StateInterface = the phone, MemberName
= the user's name, Penalty, Paused, Reason), ``QueuePause`` (Queue,
Interface, Paused, Reason) and/or ``QueuePenalty`` (Interface, Penalty,
Queue) for a member already there, or ``QueueRemove`` — each queue's at
once, and returns when Asterisk has *confirmed* every one: the
``QueueMemberAdded`` / ``QueueMemberPause`` / ``QueueMemberPenalty`` /
``QueueMemberRemoved`` event reached the PBX model.  A member that already
looks as wanted gets nothing: a status change (READY → AUX) sends no
``QueuePenalty``, a priority change no ``QueuePause``.  A response alone is not
enough: Asterisk 20 sends the event right *after* the action's ``Response:
Success`` (see the captures), so each event is awaited for up to
``confirm_timeout`` seconds after its response.

While an action is out, the outcome it should have is registered as an
*expectation* (:mod:`ucs.calls.confirm`, the one confirmation module);
:meth:`Memberships.observe` tells the agents service whether a member event
was one of ours (it met an expectation) or something done on the phone or by
another AMI client.

Asterisk's answers that mean "already so" are taken as done: ``QueueRemove``
"Not there"; ``QueueAdd`` "Already there" is retried as ``QueuePause`` (and
``QueuePenalty``: the member there has a penalty of its own), and
``QueuePause`` "Interface not found" as ``QueueAdd``.  Anything else fails
with :class:`~ucs.error.PBXError` carrying Asterisk's message — among them
``QueuePenalty``'s one refusal, "Invalid interface, queuename or penalty"
(the member left meanwhile: the next reconciliation adds it again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs.agents.transitions import Target
from ucs.ami.errors import AMIActionError, AMIError
from ucs.calls.confirm import Confirmations, Expectation
from ucs.error import PBXError
from ucs.interfaces import ActionSender
from ucs.pbx.model import Member
from ucs.pbx.pbx import PBX


@attrs.define(frozen=True)
class Change:
    """One queue to bring to ``target`` for a phone."""

    queue: str            # Asterisk's queue name
    target: Target
    #: Asterisk's Penalty (the membership's priority); ``None``: whatever the
    #: member has (0 when it is added).
    penalty: int | None = None

    def met_by(self, member: Member | None) -> bool:
        """The member as Asterisk shows it is what this change wants."""
        return self.target.met_by(member) and self.penalty_met_by(member)

    def penalty_met_by(self, member: Member | None) -> bool:
        return not self.target.present or self.penalty is None or (member is not None and member.penalty == self.penalty)

    def describe(self, member: Member | None) -> str:
        """What is still to happen to ``member`` (the timeout message):
        "is paused (Lunch)", "has penalty 2", "is not paused with penalty 2"."""
        if self.penalty_met_by(member):
            return f"is {self.target.describe()}"
        if self.target.met_by(member):
            return f"has penalty {self.penalty}"
        return f"is {self.target.describe()} with penalty {self.penalty}"


#: One awaited member event: the change it should show, and its expectation.
_Pending = tuple[Change, Expectation[bool]]


class Memberships:
    log = Logger()

    def __init__(self, ami: ActionSender, pbx: PBX, clock: IReactorTime, *, confirm_timeout: float = 5.0) -> None:
        self._ami = ami
        self._pbx = pbx
        self._clock = clock
        self.confirm_timeout = confirm_timeout
        self._confirm = Confirmations(clock)
        self._expected: dict[tuple[str, str], _Pending] = {}

    def member(self, queue: str, device: str) -> Member | None:
        q = self._pbx.queues.get(queue)
        return q.members.get(device) if q is not None else None

    def observe(self, queue: str, device: str, member: Member | None) -> bool:
        """A member event reached the model: ``True`` if it is the outcome of
        one of our actions (and then that action is confirmed, once the member
        shows all the change wants: a paused member whose ``QueuePenalty`` is
        still out is ours, and not confirmed yet)."""
        pending = self._expected.get((queue, device))
        if pending is None:
            return False
        change, exp = pending
        penalty_step = (not exp.done and change.target.present and change.penalty is not None
                        and member is not None and member.penalty == change.penalty)
        if not change.target.met_by(member) and not penalty_step:
            return False
        exp.test()
        return True

    def pending(self, device: str) -> bool:
        return any(dev == device for _, dev in self._expected)

    async def apply(self, device: str, name: str, changes: Sequence[Change]) -> int:
        """Bring each queue to its target; returns how many actions were
        needed.  Raises :class:`PBXError` (the first problem; the others are
        logged) once every action has been answered."""
        todo = [c for c in changes if not c.met_by(self.member(c.queue, device))]
        if not todo:
            return 0
        started: list[tuple[Change, _Pending, Deferred[None]]] = []
        for change in todo:
            pending = (change, self._expect(device, change))
            self._expected[(change.queue, device)] = pending
            started.append((change, pending, Deferred.fromCoroutine(self._carry_out(device, name, change, pending[1]))))
        problems: list[PBXError] = []
        try:
            for _, _, d in started:
                try:
                    await d
                except PBXError as e:
                    problems.append(e)
        finally:
            for change, pending, _ in started:
                pending[1].cancel()
                if self._expected.get((change.queue, device)) is pending:
                    del self._expected[(change.queue, device)]
        if problems:
            for extra in problems[1:]:
                self.log.warn("{problem}", problem=str(extra))
            raise problems[0]
        return len(todo)

    def _expect(self, device: str, change: Change) -> Expectation[bool]:
        """The member event that confirms ``change``, awaited before its action goes out."""
        said = f"{device} {change.describe(self.member(change.queue, device))} in queue {change.queue}"
        return self._confirm.expect(
            lambda: True if change.met_by(self.member(change.queue, device)) else None,
            said, late=f"Asterisk did not confirm that {said} within {{timeout}} s")

    async def _carry_out(self, device: str, name: str, change: Change, exp: Expectation[bool]) -> None:
        """One action, then its confirmation (each queue's on its own, all at once)."""
        await self._act(device, name, change, exp)
        if exp.done or change.met_by(self.member(change.queue, device)):
            return
        try:
            await exp.wait(self.confirm_timeout)
        except defer.CancelledError:
            raise PBXError(f"Asterisk did not confirm that {exp.what} within {self.confirm_timeout:g} s") from None

    async def _act(self, device: str, name: str, change: Change, exp: Expectation[bool]) -> None:
        queue, target = change.queue, change.target
        try:
            if not target.present:
                try:
                    await self._send("QueueRemove", {"Queue": queue, "Interface": device})
                except AMIActionError as e:
                    if "not there" not in e.message.lower():
                        raise
                    exp.met(True)  # Asterisk says it is not a member: that is what we wanted
            elif self.member(queue, device) is None:
                try:
                    await self._add(queue, device, name, change)
                except AMIActionError as e:
                    if "already there" not in e.message.lower():
                        raise
                    await self._pause(queue, device, target)  # there after all, with its own penalty
                    if not change.penalty_met_by(self.member(queue, device)):
                        await self._penalty(queue, device, change)
            else:
                if not target.met_by(self.member(queue, device)):
                    try:
                        await self._pause(queue, device, target)
                    except AMIActionError as e:
                        if "not found" not in e.message.lower():
                            raise
                        await self._add(queue, device, name, change)  # gone meanwhile: added with the penalty
                        return
                if not change.penalty_met_by(self.member(queue, device)):
                    await self._penalty(queue, device, change)
        except AMIActionError as e:
            raise PBXError(f"Asterisk refused {e.action} of {device} in queue {queue}: {e.message or 'no reason given'}") from None
        except AMIError as e:
            raise PBXError(f"{device} in queue {queue}: {e}") from None

    def _send(self, action: str, headers: dict[str, str]) -> Deferred[Any]:
        return self._ami.sendAction(action, headers)

    def _add(self, queue: str, device: str, name: str, change: Change) -> Deferred[Any]:
        target = change.target
        headers = {
            "Queue": queue, "Interface": device, "MemberName": name, "Penalty": str(change.penalty or 0),
            "StateInterface": device, "Paused": "true" if target.paused else "false",
        }
        if target.paused and target.reason:
            headers["Reason"] = target.reason
        return self._send("QueueAdd", headers)

    async def _penalty(self, queue: str, device: str, change: Change) -> None:
        """``QueuePenalty`` in that one queue (without ``Queue`` Asterisk would
        change every queue the phone is in)."""
        if change.penalty is not None:
            await self._send("QueuePenalty", {"Interface": device, "Penalty": str(change.penalty), "Queue": queue})

    def _pause(self, queue: str, device: str, target: Target) -> Deferred[Any]:
        headers = {"Queue": queue, "Interface": device, "Paused": "true" if target.paused else "false"}
        if target.paused and target.reason:
            headers["Reason"] = target.reason
        return self._send("QueuePause", headers)
