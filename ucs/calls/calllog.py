"""One log line when a call starts and when it ends: what an operator tails."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ucs.bus import EventBus
from ucs.calls.call import Call
from ucs.events import EVENT_CALL_HANGUP, EVENT_CALL_NEW

log = Logger(namespace="ucs.calls")


def _started(call: Call, args: dict[str, Any]) -> None:
    log.info("call {id} {direction} from {caller} to {called} started",
             id=call.uniqueid, direction=call.direction, caller=call.caller_number or "?",
             called=call.called_number or "?")


def _ended(call: Call, args: dict[str, Any]) -> None:
    talked = (call.disconnected or 0) - call.connected if call.connected else 0
    log.info("call {id} ended: cause {cause} ({why}), queue {queue}, answered by {by}, talked {talk:.0f} s",
             id=call.uniqueid, cause=int(call.cause), why=call.cause.name.lower().replace("_", " "),
             queue=call.queue or "-", by=call.answered_by or "nobody", talk=talked)


def subscribe(bus: EventBus) -> Any:
    bus.subscribe(EVENT_CALL_NEW, _started)
    bus.subscribe(EVENT_CALL_HANGUP, _ended)
