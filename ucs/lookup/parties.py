"""Who the call's parties are in UCS: the directory's line, user and group.

Seed 002's Call object names the caller and the connected party in UCS's own
terms when they are phones UCS knows (``caller_line_id``, ``caller_user_id``,
``caller_username``, ``caller_group_id``, ``caller_extension``, and the same
``connected_*``), and ``called_name``.  The call tracker knows Asterisk's
devices, not the directory (it sits below it); :class:`PartyFiller`, a tracker
observer told before the publisher, adds them as the call is created and each
time it changes, so every event the bus carries has them.

A line's user is the agent paired with it now (``user_on_line``, the agents'
pairing, given by the container), else the user whose ``primary_extension`` it
is, else the only user that lists it (:meth:`Directory.user_of_line`).  The
extension is the party's number as the PBX gave it (its CallerID), or the
device's name (``SIP/1001`` → ``1001``) when it has none.
"""

from __future__ import annotations

from collections.abc import Callable

from ucs.calls.call import Call, Leg
from ucs.calls.numbers import LINE
from ucs.calls.tracker import CallObserver
from ucs.directory.directory import Directory
from ucs.directory.model import Line, User

#: The Call fields filled here, per party (``caller_`` / ``connected_``).
PARTY_FIELDS = ("extension", "group_id", "line_id", "user_id", "username")

UserOnLine = Callable[[str], "User | None"]


def extension_of(device: str) -> str:
    return device.split("/", 1)[-1]


class PartyFiller(CallObserver):
    def __init__(self, directory: Directory, user_on_line: UserOnLine | None = None) -> None:
        self._directory = directory
        self._user_on_line = user_on_line

    def call_created(self, call: Call) -> None:
        self.fill(call)

    def call_changed(self, call: Call) -> None:
        self.fill(call)

    def call_ended(self, call: Call) -> None:
        self.fill(call)

    # -- filling ---------------------------------------------------------------------------

    def fill(self, call: Call) -> None:
        origin = call.legs.get(call.origin)
        self._party(call, "caller", origin, call.caller_number)
        connected = next((leg for leg in reversed(call.legs.values())
                          if call.connected_channel and leg.channel == call.connected_channel), None)
        self._party(call, "connected", connected, call.connected_number)
        called = self._line_of_number(call.called_number) if call.called_number else None
        if called is not None:
            user = self._user(called)
            call.called_name = user.name if user is not None else called.name

    def _party(self, call: Call, side: str, leg: Leg | None, number: str) -> None:
        line = self._directory.line_by_device(leg.device) if leg is not None and leg.kind == LINE else None
        if line is None:
            values: tuple[object, ...] = ("", None, None, None, "")
        else:
            user = self._user(line)
            values = (number or extension_of(line.device), user.group_id if user else None, line.id,
                      user.id if user else None, user.username if user else "")
        for field, value in zip(PARTY_FIELDS, values):
            setattr(call, f"{side}_{field}", value)

    def _user(self, line: Line) -> User | None:
        if self._user_on_line is not None:
            user = self._user_on_line(line.device)
            if user is not None:
                return user
        return self._directory.user_of_line(line)

    def _line_of_number(self, number: str) -> Line | None:
        return next((ln for ln in self._directory.lines.values() if extension_of(ln.device) == number), None)
