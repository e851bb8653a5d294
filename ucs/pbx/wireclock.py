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


#: Queue() events that say how long the caller waited and talked.
_QUEUE_TIMES = frozenset({"AgentConnect", "AgentComplete", "QueueCallerAbandon"})


class WireClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._joined: dict[str, float] = {}  # queue caller Uniqueid → join time

    def seconds(self) -> float:
        return self._now

    def _advance(self, value: float) -> None:
        if value > self._now:
            self._now = value

    def observe(self, msg: Message) -> None:
        get = msg.get  # every event of a replay comes through here
        ts = get("Timestamp")
        if ts:
            try:
                self._advance(float(ts))
                return
            except ValueError:
                pass
        event = get("Event")
        if event == "Newchannel":
            head = get("Uniqueid", "").partition(".")[0]
            if head.isdigit() and len(head) >= 9:
                self._advance(float(head))
        elif event == "QueueCallerJoin":
            self._joined[get("Uniqueid", "")] = self._now
        elif event in _QUEUE_TIMES:
            # Queue() reports how long the caller waited and talked: the
            # only sub-capture clock a stream without timestamps carries.
            joined = self._joined.get(get("Uniqueid", ""))
            if joined is not None:
                try:
                    held = int(get("HoldTime", "0") or 0)
                    talked = int(get("TalkTime", "0") or 0)
                except ValueError:
                    held = talked = 0
                self._advance(joined + held + talked)
                if event != "AgentConnect":
                    self._joined.pop(get("Uniqueid", ""), None)
        tv = get("EventTV")
        if tv:
            try:
                self._advance(datetime.fromisoformat(tv).timestamp())
            except ValueError:
                pass
        v = get("LastCall")
        if v and v.isdigit() and len(v) >= 9:
            self._advance(float(v))
        v = get("LastPause")
        if v and v.isdigit() and len(v) >= 9:
            self._advance(float(v))
