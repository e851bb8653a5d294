"""Recording from the API, and fetching a recording over HTTP.

========================  ==========================  ======================================
method                    arguments                   does
========================  ==========================  ======================================
``call.record``           —                           start recording your call
``call.stopRecord``       —                           stop recording it
``recording.url``         uniqueid, file (optional)   a link to a recording of the call
========================  ==========================  ======================================

``call.record`` / ``call.stopRecord`` act on the session's paired phone and
return the Call (``recording`` says whether it is being recorded now,
``recorded`` whether it ever was, ``recordings`` the files).

``recording.url`` is scoped like ``cdr.metadata`` (:mod:`ucs.api.scope`): the
agent whose phone took part in the call, a supervisor of its queue or of that
agent, a superuser.  It answers ``{uniqueid, file, url, expires}``: ``url`` is
``/recording/<ticket>`` on UCS's web server (the agent bar puts seed 002's
``api.recording`` service address in front of it), the ticket 256 random
bits valid ``[recording] link_lifetime`` seconds.  Whoever holds the link
may fetch the file until then — the same as a signed download link — so the
bar asks for one only when the user clicks.  The ticket names a file the
call's record lists, never a path; :func:`ucs.calls.recording.local_path`
refuses anything but a recording's bare name.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web import resource, static
from twisted.web.server import Request

from ucs.api.registry import Param, Registry
from ucs.api.scope import ActsOn, Subject
from ucs.calls.control import CallControl
from ucs.calls.control_api import READY_ONLY, _paired
from ucs.calls.recording import local_path
from ucs.constants import Role
from ucs.error import NotFound

#: Tickets kept at most (the oldest go first); a bar asks for one per click.
MAX_TICKETS = 10_000


class RecordingLinks:
    """Short-lived tickets for recordings, and the ``/recording`` resource that honours them."""

    def __init__(self, clock: IReactorTime, directory: str, lifetime: float = 300.0) -> None:
        self._clock = clock
        self.directory = directory
        self.lifetime = lifetime
        self._tickets: dict[str, tuple[str, float]] = {}

    def issue(self, name: str) -> tuple[str, float]:
        """A ticket for the recording ``name`` (which must exist), and when it expires."""
        local_path(self.directory, name)
        now = self._clock.seconds()
        for t, (_, exp) in list(self._tickets.items()):
            if exp <= now:
                del self._tickets[t]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(32)
        expires = now + self.lifetime
        self._tickets[ticket] = (name, expires)
        return ticket, expires

    def redeem(self, ticket: str) -> str | None:
        """The file's path for a valid ticket, else ``None``."""
        found = self._tickets.get(ticket)
        if found is None or found[1] <= self._clock.seconds():
            self._tickets.pop(ticket, None)
            return None
        return local_path(self.directory, found[0])

    def resource(self) -> RecordingResource:
        return RecordingResource(self)


class _Refusal(resource.Resource):
    isLeaf = True

    def __init__(self, code: int, text: str) -> None:
        super().__init__()
        self.code, self.text = code, text

    def render(self, request: Request) -> bytes:
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return self.text.encode() + b"\n"


class RecordingResource(resource.Resource):
    """``GET /recording/<ticket>``: the file (ranges too, for an ``<audio>`` player)."""

    def __init__(self, links: RecordingLinks) -> None:
        super().__init__()
        self._links = links

    def getChild(self, path: bytes, request: Request) -> resource.Resource:
        if request.postpath:
            return _Refusal(404, "a recording's link is /recording/<ticket>, from recording.url")
        try:
            found = self._links.redeem(path.decode("ascii", "replace"))
        except NotFound as e:
            return _Refusal(404, str(e))
        if found is None:
            return _Refusal(404, "this recording link is unknown or expired; ask for a new one (recording.url)")
        request.setHeader(b"cache-control", b"private, no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        name = found.rsplit("/", 1)[-1]
        request.setHeader(b"content-disposition", f'inline; filename="{name}"'.encode())
        kind = "audio/wav" if name.lower().endswith(".wav") else "audio/x-gsm"
        f = static.File(found, defaultType=kind)
        f.type, f.encoding = kind, None  # type: ignore[assignment]  # not the system's mime.types (audio/x-wav)
        f.isLeaf = True
        return f

    def render(self, request: Request) -> bytes:
        return _Refusal(404, "a recording's link is /recording/<ticket>, from recording.url").render(request)


def register(registry: Registry, control: CallControl, links: RecordingLinks) -> None:
    """Add ``call.record``, ``call.stopRecord`` and ``recording.url``."""

    def out(call: Any) -> dict[str, Any]:
        return call.to_dict(control.clock.seconds())  # type: ignore[no-any-return]

    async def record(session: Any) -> dict[str, Any]:
        """Start recording your call."""
        return out(await control.record(_paired(session)))

    async def stop_record(session: Any) -> dict[str, Any]:
        """Stop recording your call."""
        return out(await control.stop_record(_paired(session)))

    async def url(session: Any, uniqueid: str, file: str | None) -> dict[str, Any]:
        """A short-lived link to a recording of the call (the last one without ``file``)."""
        call = control.find_call(uniqueid)
        if call is not None:
            files = [r["file"] for r in call.recordings]
        else:
            cdr = await control.stored_cdr(uniqueid)
            data = (cdr or {}).get("data") or {}
            files = [r.get("file") for r in data.get("recordings") or [] if isinstance(r, dict)]
        if not files:
            raise NotFound(f"call {uniqueid} has no recording UCS made")
        if file is None:
            file = files[-1]
        elif file not in files:
            raise NotFound(f"{file!r} is not a recording of call {uniqueid}; its recordings: {', '.join(files)}")
        ticket, expires = links.issue(file)
        return {"uniqueid": uniqueid, "file": file, "url": f"/recording/{ticket}", "expires": expires}

    registry.add("call.record", record, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("call.stopRecord", stop_record, (), role=Role.AGENT, states=READY_ONLY)
    registry.add("recording.url", url, (
        Param("uniqueid", str, doc="the call's uniqueid"),
        Param("file", str, required=False, nullable=True, doc="one of the call's recordings (default: the last)"),
    ), role=Role.AGENT, acts_on=ActsOn(Subject.CALL, "uniqueid"))
