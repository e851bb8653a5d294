"""Time read off the AMI stream itself, for replaying captures.

A capture has no clock beside it, but Asterisk writes epoch seconds into the
stream: every ``Uniqueid`` starts with the second its channel was created,
and ``Timestamp`` (with ``timestampevents = yes``), ``EventTV``, ``LastCall``
and ``LastPause`` carry more.  The clock follows the latest of them, so a
replayed call's durations are right to the second.
"""

from __future__ import annotations

from datetime import datetime

from ucs.ami.message import Message


class WireClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def seconds(self) -> float:
        return self._now

    def _advance(self, value: float) -> None:
        if value > self._now:
            self._now = value

    def observe(self, msg: Message) -> None:
        ts = msg.get("Timestamp")
        if ts:
            try:
                self._advance(float(ts))
                return
            except ValueError:
                pass
        if msg.get("Event") == "Newchannel":
            uid = msg.get("Uniqueid", "")
            head = uid.partition(".")[0]
            if head.isdigit() and len(head) >= 9:
                self._advance(float(head))
        tv = msg.get("EventTV")
        if tv:
            try:
                self._advance(datetime.fromisoformat(tv).timestamp())
            except ValueError:
                pass
        for key in ("LastCall", "LastPause"):
            v = msg.get(key)
            if v and v.isdigit() and len(v) >= 9:
                self._advance(float(v))
