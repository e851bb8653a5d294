"""The Interaction Processor's shared service: what every connection's controller uses.

Split out of :mod:`ucs.iserver.processor` (issue 15): :class:`IServer` is the
one service all connections share -- the API registry, sessions, agents,
directory, call tracker, store and AMI client, the bus's events dispatched to
the controllers, the journeys of calls just ended, the service information and
capabilities -- while :mod:`ucs.iserver.processor` holds the per-connection
:class:`~ucs.iserver.processor.Controller` and its commands.  The constants
both use (the call models, blocked methods, session events) and
:class:`Failed` are here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.logger import Logger

import ucs
from ucs import events as ev

if TYPE_CHECKING:
    from ucs.iserver.processor import Controller

#: The namespace IServer's messages always had (JSON logs show it; filters may name it).
log = Logger(namespace="ucs.iserver.processor.IServer")

#: The call models a session may be prepared with (``prepareSession`` ``data.model``).
MODELS = ("ucs", "uccx")
#: Registry methods a client may not call through the session resource (prepareSession logs in).
BLOCKED = frozenset({"login", "sso", "session.resume"})
#: Events sent to a session (its own agent's, and calls on its phone).
SESSION_EVENTS = (ev.EVENT_AGENT_STATUS, ev.EVENT_AGENT_LOGIN, ev.EVENT_AGENT_LOGOUT, ev.EVENT_AGENT_SUSPEND,
                  ev.EVENT_AGENT_RESUME, ev.EVENT_AGENT_DEVICE, ev.EVENT_CALL_NEW, ev.EVENT_CALL_RINGING,
                  ev.EVENT_CALL_CONNECT, ev.EVENT_CALL_HOLD, ev.EVENT_CALL_RESUME, ev.EVENT_CALL_MUTE,
                  ev.EVENT_CALL_UNMUTE, ev.EVENT_CALL_TRANSFER, ev.EVENT_CALL_HANGUP, ev.EVENT_CALL_CHANGE)
#: Ended calls whose journey is kept in memory (the CDR reaches the store a moment later).
RECENT_CALLS = 2000
SERVICE_INFO = "getServiceInformation"
#: Seed 003's resource type of the UCCX Report Server resource (the ``report.*`` commands).
UCCX_REPORTING = "com.openmethods.iserver.processor.reporting.uccx"
REPORTS = ("report.calljourney", "report.teamstatus.begin", "report.teamstatus.end")
REPORT_EVENTS = tuple("report.teamstatus." + e for e in ("teamadded", "teamchanged", "teamremoved", "memberadded",
                                                          "memberstatuschanged", "memberremoved"))


class Failed(Exception):
    """A request that gets a failure reply: ``code`` (a stable word), message, context."""

    def __init__(self, code: str, message: str, context: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


class IServer(Service):
    """The Interaction Processor service all connections share; see the module docstring.

    Started, it follows the bus; stopped, it closes every connection (1001) and
    every session they had.  ``ami`` (the AMI client) answers ``CoreSettings``
    for ``cti-version``; ``store`` (or the store proxy) has the CDRs of ended calls.
    """

    def __init__(self, *, registry: Any, sessions: Any, bus: Any, agents: Any, directory: Any, tracker: Any,
                 store: Any, ami: Any, reactor: Any, instance_domain: str = "", version: str = "",
                 max_request_size: int = 64 * 1024, max_pending: int = 32,
                 max_client_buffer: int = 1024 * 1024, max_message_size: int = 1024 * 1024) -> None:
        self.setName("iserver")
        self.registry = registry
        self.sessions = sessions
        self.bus = bus
        self.agents = agents
        self.directory = directory
        self.tracker = tracker
        self.store = store
        self.ami = ami
        self.clock = reactor
        self.instance_domain = instance_domain
        self.version = version or ucs.__version__
        self.max_request_size = max_request_size
        self.max_pending = max_pending
        self.max_client_buffer = max_client_buffer
        #: The largest message autobahn sends (``[web] max_frame_size``); a larger
        #: reply becomes a failure reply, a larger event loses the call's data.
        self.max_message_size = max_message_size
        self.controllers: set[Controller] = set()
        self._cti_version: str | None = None
        #: Calls just ended, until their CDR is surely stored: the journey's steps and
        #: when the call ended (rendered when a client asks, not at every hangup).
        self._recent: OrderedDict[str, tuple[list[Any], float]] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.bus.subscribe_all(self._on_event)

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        self.bus.unsubscribe_all(self._on_event)
        for c in list(self.controllers):
            c.shutdown()

    # -- service information ---------------------------------------------------------

    async def cti_version(self) -> str:
        """Asterisk's version (``CoreSettings`` ``AsteriskVersion``), asked once per link."""
        if self._cti_version:
            return self._cti_version
        try:
            msg = await self.ami.sendAction("CoreSettings", timeout=5)
            self._cti_version = str(msg.get("AsteriskVersion") or msg.get("asteriskversion") or "") or None
        except Exception as e:
            log.info("cti-version unknown for now: {e}", e=str(e) or repr(e))
        return self._cti_version or ""

    async def service_info(self, host: str = "") -> dict[str, Any]:
        return {"vendor": "UCS", "version": self.version, "cti-vendor": "Asterisk",
                "cti-version": await self.cti_version(), "instance-domain": self.instance_domain or host}

    def capabilities(self) -> dict[str, Any]:
        names = sorted(n for n in self.registry.names() if n not in BLOCKED)
        return {
            "models": list(MODELS),
            "service": [SERVICE_INFO, "prepareSession", "getCapabilities", "endSession"],
            "agentControl": [n for n in names if n.startswith("agent.")] + ["identifier", "provision", "logout"],
            "callControl": [n for n in names if n.startswith("call.")],
            "methods": names,
            "reports": list(REPORTS),
            "reportEvents": list(REPORT_EVENTS),
            # Seed 003: the report resource's type, with the reports it answers and its events.
            "resources": [{"type": UCCX_REPORTING, "reports": list(REPORTS), "events": list(REPORT_EVENTS)}],
            "sessionEvents": list(SESSION_EVENTS) + ["session.closed", "logout"],
            "memberStatuses": ["ready", "not_ready", "ACW"],
            "override": True,
        }

    # -- reports ----------------------------------------------------------------------

    async def journey(self, call_id: str) -> list[dict[str, Any]]:
        """The journey of a call by its id (the Linkedid): live, just ended, or from its CDR."""
        call = self.tracker.call_of(call_id)
        if call is not None and call.uniqueid == call_id:
            now = self.clock.seconds()
            return [step.to_dict(now, call_id) for step in call.journey]
        if call_id in self._recent:
            steps, ended = self._recent[call_id]
            return [step.to_dict(ended, call_id) for step in steps]
        cdr = await self.store.get_cdr(call_id)
        if cdr is None:
            raise Failed("not_found", f"no call has the id {call_id!r} (live or ended); give a call's "
                                      "uniqueid (its Linkedid)", "data.CallId")
        return [{"CallId": call_id, **step} for step in (cdr.get("journey") or [])]

    # -- events ------------------------------------------------------------------------

    def _on_event(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        if name == ev.EVENT_CALL_HANGUP and subject is not None and hasattr(subject, "journey"):
            now = self.clock.seconds()
            self._recent[subject.uniqueid] = (list(subject.journey), now)
            while len(self._recent) > RECENT_CALLS:
                self._recent.popitem(last=False)
        if not self.controllers:
            return
        if name.startswith("agent."):
            user = getattr(subject, "user", None)
            uid = getattr(user, "id", None)
            if uid is None:
                return
            data = _agent_data(name, subject, args)
            for c in list(self.controllers):
                c.agent_event(name, uid, data)
        elif name.startswith("call.") and name in SESSION_EVENTS:
            devices = {leg.device for leg in getattr(subject, "legs", {}).values()}
            base: dict[str, Any] | None = None
            for c in list(self.controllers):
                if c.follows(devices):
                    if base is None:
                        base = subject.to_dict(self.clock.seconds())
                        base.update({k: v for k, v in args.items()
                                     if isinstance(v, (str, int, float, bool)) or v is None})
                    c.session_event(name, base)
        elif name in (ev.EVENT_CONFIG_CHANGE, ev.EVENT_USER_CHANGE):
            if name == ev.EVENT_USER_CHANGE:
                return  # a config.change for the same user follows
            for c in list(self.controllers):
                c.directory_changed()


def _agent_data(name: str, agent: Any, args: dict[str, Any]) -> dict[str, Any]:
    def word(v: Any) -> Any:
        return getattr(v, "name", v)

    if name == ev.EVENT_AGENT_STATUS:
        return {"status": word(args.get("status", agent.status)), "reason": args.get("reason", agent.reason) or "",
                "previous": word(args.get("previous")), "previous_reason": args.get("previous_reason") or ""}
    if name == ev.EVENT_AGENT_DEVICE:
        line = args.get("line")
        return {"device": line.to_dict() if line is not None else None}
    out = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool)) or v is None}
    out["status"] = word(getattr(agent, "status", None)) if name != ev.EVENT_AGENT_LOGOUT else "OFFLINE"
    return out
