"""A call's journey: the steps a caller goes through (the phones and trunks
called, the queues waited in, the dialplan applications heard) and how each
is described when it ends.

Apart from the tracker (``ucs.calls.tracker``), which decides which call a
fact belongs to: :class:`Journey` keeps the steps still open across events
(the queue a caller waits in, the application it is in) and writes the
descriptions, including a queue call's (who was rung, who answered,
abandoned).
"""

from __future__ import annotations

from ucs.calls.call import Call, JourneyStep, Leg
from ucs.calls.numbers import LINE
from ucs.pbx.pbx import SecondsClock

#: Dialplan applications worth a step in the journey: where a caller spends
#: time without a person on the line.  Plumbing (Set, Goto, NoOp…) is not.
JOURNEY_APPS = frozenset({
    "Playback", "BackGround", "Background", "Read", "WaitExten", "Wait", "VoiceMail",
    "VoiceMailMain", "MusicOnHold", "AGI", "EAGI", "FastAGI", "ConfBridge", "MeetMe", "Record",
    "SayDigits", "SayNumber", "SayAlpha", "Echo", "Park", "ParkedCall", "Directory", "Page",
    "Festival", "Milliwatt", "Playtones", "Stasis",
})


def add_step(call: Call, device: str, kind: str, description: str, start: float) -> JourneyStep:
    """A new step at the end of ``call``'s journey."""
    step = JourneyStep(device, kind, description, start)
    call.journey.append(step)
    return step


def describe_leg_end(call: Call, leg: Leg) -> None:
    """Say how a phone called for ``call`` ended in its step: transferred,
    not answered, busy…"""
    step = leg.step
    assert step is not None
    if leg.uniqueid == call.origin or leg.kind != LINE:
        return
    if leg.transferred:
        step.description += ", transferred"
    elif leg.answered is None and not step.description.endswith("answered"):
        step.description += ", no answer" if leg.dial_status in ("", "NOANSWER", "CANCEL") else f", {leg.dial_status.lower()}"


class Journey:
    """The steps still open, by call (Linkedid): the queue the caller waits
    in, the application it is in."""

    def __init__(self, clock: SecondsClock) -> None:
        self._clock = clock
        self._queue_steps: dict[str, JourneyStep] = {}
        self._app_steps: dict[str, JourneyStep] = {}

    def in_queue(self, call: Call) -> bool:
        """Whether ``call``'s caller is waiting in a queue."""
        return bool(self._queue_steps.get(call.uniqueid))

    def application(self, call: Call, app: str, data: str) -> None:
        """The caller entered dialplan application ``app`` (one of
        :data:`JOURNEY_APPS`): the previous one is over."""
        self.end_application(call)
        self._app_steps[call.uniqueid] = add_step(
            call, app, "application", f"{app}({data})" if data else app, self._clock.seconds()
        )

    def end_application(self, call: Call) -> None:
        step = self._app_steps.pop(call.uniqueid, None)
        if step is not None and step.end is None:
            step.end = self._clock.seconds()

    def queue_joined(self, call: Call, queue: str) -> None:
        now = self._clock.seconds()
        self.end_application(call)
        call.queue = queue
        self._queue_steps[call.uniqueid] = add_step(call, f"Queue:{queue}", "queue", f"Waited in queue {queue}", now)

    def queue_left(self, call: Call, abandoned: bool) -> None:
        step = self._queue_steps.pop(call.uniqueid, None)
        if step is None:
            return
        step.end = self._clock.seconds()
        if abandoned:
            step.description += ", abandoned"

    @staticmethod
    def queue_answered(call: Call, queue: str, interface: str) -> None:
        """Queue ``queue``'s member ``interface`` answered ``call``'s caller."""
        for step in reversed(call.journey):
            if step.device == f"Queue:{queue}":
                step.description += f", answered by {interface}"
                break

    def forget(self, call: Call) -> None:
        """``call`` is over."""
        self._queue_steps.pop(call.uniqueid, None)
        self._app_steps.pop(call.uniqueid, None)
