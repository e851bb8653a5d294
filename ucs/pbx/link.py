"""Keeps the PBX model in step with Asterisk over the AMI client.

Every event goes to the model.  After every (re)connect and every
``FullyBooted`` (Asterisk restarted under a live link) the model is rebuilt
from what Asterisk reports: ``CoreShowChannels``, ``QueueStatus``,
``DeviceStateList``, ``SIPpeers`` and ``PJSIPShowEndpoints``.

No buffering is needed for that: AMI is one ordered stream, and the protocol
fires an event list's Deferred while it dispatches the list's ``…Complete``
event, before it looks at the next message.  So each list is applied at the
instant Asterisk produced it, and the events after it are applied after it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ucs.ami.client import IAMIListener
from ucs.ami.errors import AMIActionError
from ucs.ami.message import Message
from ucs.ami.protocol import AMIProtocol
from ucs.interfaces import ActionSender
from ucs.pbx.pbx import PBX, Snapshot

#: The list actions a resync sends, and the Snapshot field each one fills.
RESYNC_ACTIONS: tuple[tuple[str, str], ...] = (
    ("CoreShowChannels", "channels"),
    ("QueueStatus", "queues"),
    ("DeviceStateList", "device_states"),
    ("SIPpeers", "sip_peers"),
    ("PJSIPShowEndpoints", "pjsip_endpoints"),
)


@implementer(IAMIListener)
class PBXLink:
    log = Logger()

    def __init__(self, pbx: PBX, filters: tuple[str, ...] = (), clock: IReactorTime | None = None) -> None:
        self.pbx = pbx
        self._clock = clock
        #: The last resync that finished: ``at`` (the clock's seconds; ``None`` without a
        #: clock), ``result`` (``ok``, or ``incomplete`` when a list could not be read),
        #: ``failed`` (the actions that failed and why), and what the model then held.
        self.last_resync: dict[str, Any] | None = None
        #: When and why the link was last lost (``None`` while it never was).
        self.last_lost: dict[str, Any] | None = None
        #: ``Filter`` expressions sent after every login (manager.conf eventfilter syntax).
        self.filters = tuple(filters)
        self.up = False
        self.resyncs = 0
        self.events = 0
        self._sender: ActionSender | None = None
        self._synced: list[Deferred[None]] = []

    # IAMIListener

    def connected(self, protocol: AMIProtocol) -> None:
        self.up = True
        self._sender = protocol
        for expr in self.filters:
            d = protocol.sendAction("Filter", {"Operation": "Add", "Filter": expr})
            d.addErrback(self._filter_refused, expr)
        self.resync()

    def eventReceived(self, message: Message) -> None:
        self.events += 1
        try:
            self.pbx.feed(message)
        except Exception:
            self.log.failure("event {event} could not be applied to the PBX model", event=message.get("Event"))
        if message.get("Event") == "FullyBooted" and self.up:
            # Sent at every login and when Asterisk finishes booting under a
            # live link.  The first doubles the resync of connected(); a list
            # applied twice changes nothing, a boot missed would keep phantoms.
            self.resync()

    def _filter_refused(self, failure: Failure, expr: str) -> None:
        self.log.warn("Asterisk refused the AMI filter {expr!r} ({why}); its events still come "
                      "(check ami.filters, or the AMI user's write permission 'system')",
                      expr=expr, why=failure.getErrorMessage())

    def disconnected(self, reason: Failure) -> None:
        self.up = False
        self._sender = None
        self.last_lost = {"at": self._clock.seconds() if self._clock is not None else None,
                          "why": reason.getErrorMessage()}
        self.log.warn("AMI link lost ({reason}); the PBX model is frozen until it is back",
                      reason=reason.getErrorMessage())

    # resync

    def resync(self) -> Deferred[None]:
        """Ask Asterisk for its state and apply each list as it completes."""
        sender = self._sender
        if sender is None:
            return Deferred.fromCoroutine(self._nothing())
        self.resyncs += 1
        return Deferred.fromCoroutine(self._resync(sender))

    async def _nothing(self) -> None:
        return None

    async def _resync(self, sender: ActionSender) -> None:
        pending = []
        failed: list[str] = []
        for action, field in RESYNC_ACTIONS:
            d = sender.sendAction(action)
            d.addCallbacks(self._apply, self._unavailable, callbackArgs=(field,), errbackArgs=(action, failed))
            pending.append(d)
        for d in pending:
            await d
        self.pbx.resync_done()
        self.last_resync = {
            "at": self._clock.seconds() if self._clock is not None else None,
            "result": "incomplete" if failed else "ok", "failed": failed,
            "channels": len(self.pbx.channels), "queues": len(self.pbx.queues), "devices": len(self.pbx.devices),
        }
        self.log.info("PBX model resynchronised: {channels} channels, {queues} queues, {devices} devices",
                      channels=len(self.pbx.channels), queues=len(self.pbx.queues), devices=len(self.pbx.devices))
        waiters, self._synced = self._synced, []
        for d in waiters:
            d.callback(None)

    def whenSynced(self) -> Deferred[None]:
        """Fires when the next resync has been applied (health checks, tests)."""
        d: Deferred[None] = Deferred()
        self._synced.append(d)
        return d

    def _apply(self, result: Any, field: str) -> None:
        events = list(getattr(result, "events", []))
        self.pbx.resync(Snapshot(**{field: events}), done=False)

    def _unavailable(self, failure: Failure, action: str, failed: list[str] | None = None) -> None:
        if failure.check(AMIActionError):
            # chan_sip or PJSIP not loaded: that part of the model stays as it is.
            self.log.debug("{action} not available: {why}", action=action, why=failure.getErrorMessage())
            return None
        if failed is not None:
            failed.append(f"{action}: {failure.getErrorMessage()}")
        self.log.warn("resync action {action} failed: {why}", action=action, why=failure.getErrorMessage())
        return None
