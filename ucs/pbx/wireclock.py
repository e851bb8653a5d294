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
        self._joined: dict[str, float] = {}  # queue caller Uniqueid → join time

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
        event = msg.get("Event")
        if event == "QueueCallerJoin":
            self._joined[msg.get("Uniqueid", "")] = self._now
        elif event in ("AgentConnect", "AgentComplete", "QueueCallerAbandon"):
            # Queue() reports how long the caller waited and talked: the
            # only sub-capture clock a stream without timestamps carries.
            joined = self._joined.get(msg.get("Uniqueid", ""))
            if joined is not None:
                try:
                    held = int(msg.get("HoldTime", "0") or 0)
                    talked = int(msg.get("TalkTime", "0") or 0)
                except ValueError:
                    held = talked = 0
                self._advance(joined + held + talked)
                if event != "AgentConnect":
                    self._joined.pop(msg.get("Uniqueid", ""), None)
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
