"""The directory's entities: who works here, on which phones, in which queues.

Plain attrs classes; ids are integers given by the directory.  Field names
follow seed 002's User and Queue objects where those have them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.define(eq=False)
class QueueMembership:
    """A user's place in one queue."""

    priority: int = 0          # seed 002 "priorities": Asterisk's Penalty (0 = rung first)
    team_id: int | None = None
    supervisor: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"priorities": self.priority, "team_id": self.team_id, "supervisor": self.supervisor}


@attrs.define(eq=False)
class User:
    id: int
    username: str
    password_hash: str = ""
    firstname: str = ""
    lastname: str = ""
    displayname: str = ""
    email: str = ""
    locale: str = "en"
    group_id: int | None = None
    superuser: bool = False
    supervisor: bool = False
    external_id: str = ""
    number: str = ""                 # the user's external phone number
    data: dict[str, Any] = attrs.Factory(dict)
    lines: list[int] = attrs.Factory(list)           # Line ids the user may pair with
    queues: dict[int, QueueMembership] = attrs.Factory(dict)  # Queue id → membership
    #: Seed 002: the id of the user's own line (its extension) when it does not pair one
    #: at login; calls on that line are the user's (``caller_user_id`` …).
    primary_extension: int | None = None

    @property
    def name(self) -> str:
        return self.displayname or " ".join(p for p in (self.firstname, self.lastname) if p) or self.username

    def to_dict(self, lines: Mapping[int, Line] | None = None) -> dict[str, Any]:
        """The User object of seed 002, configuration part (never the password hash).

        ``lines``: the directory's lines, by id; seed 002's ``lines`` are line objects
        (``{"id": …}`` alone for one not given); ``line_ids`` keeps the ids."""
        table = lines or {}
        return {
            "id": self.id, "username": self.username, "firstname": self.firstname,
            "lastname": self.lastname, "displayname": self.name, "email": self.email,
            "locale": self.locale, "group_id": self.group_id, "superuser": self.superuser,
            "supervisor": self.supervisor, "external_id": self.external_id, "number": self.number,
            "data": self.data,
            "lines": [table[i].to_dict() if i in table else {"id": i} for i in self.lines],
            "line_ids": list(self.lines), "primary_extension": self.primary_extension,
            "queues": {qid: m.to_dict() for qid, m in self.queues.items()},
        }


@attrs.define(eq=False)
class Group:
    id: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@attrs.define(eq=False)
class Team:
    id: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@attrs.define(eq=False)
class Queue:
    id: int
    name: str                 # what agents see
    asterisk_name: str        # queues.conf section, e.g. "support"
    type: int = 1             # 1 incoming, 0 outgoing (seed 002)
    #: Agents must save a call reason for a call of this queue before its wrap-up ends.
    require_reason: bool = False
    #: Record every call of the queue from the moment an agent answers it
    #: (UCS starts a MixMonitor on the agent's channel: ucs.calls.recording).
    record: bool = False
    #: The number that reaches the queue from the outgoing context (a transfer
    #: target in the bar's directory); "" when it has none.
    number: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "queue_id": self.id, "name": self.name,
                "asterisk_name": self.asterisk_name, "type": self.type,
                "require_reason": self.require_reason, "record": self.record, "number": self.number}


@attrs.define(eq=False)
class Line:
    """A phone: an Asterisk device and the identifiers an agent bar pairs it by."""

    id: int
    device: str                           # "SIP/1001", "PJSIP/2001"
    name: str = ""
    identifiers: list[str] = attrs.Factory(list)   # MAC, name, IP address … (case-insensitive)
    #: How UCS can make the phone answer a ringing call: "sip-notify" (SIPnotify
    #: Event: talk, Yealink/Snom/Polycom with the option on), "none".
    auto_answer: str = "none"
    #: "phone": a desk or soft phone of its own; "webrtc": the agent bar itself is the
    #: phone (its softphone registers to the PJSIP endpoint ``device`` over ``ws_url``).
    kind: str = "phone"
    ws_url: str = ""                      # the PJSIP WebSocket transport, ws:// or wss://
    #: The SIP credentials of a WebRTC line: given only to the agent paired with it,
    #: over the bar's authenticated socket (``softphone.credentials``); never in
    #: ``to_dict``, a page or a log (no repr either).
    sip_username: str = attrs.field(default="", repr=False)
    sip_password: str = attrs.field(default="", repr=False)

    @property
    def endpoint(self) -> str:
        """The PJSIP endpoint's name: ``webrtc1`` of ``PJSIP/webrtc1``."""
        return self.device.partition("/")[2]

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "device": self.device, "name": self.name,
               "identifiers": list(self.identifiers), "auto_answer": self.auto_answer, "kind": self.kind}
        if self.kind == "webrtc":
            out["ws_url"] = self.ws_url
            out["endpoint"] = self.endpoint
            out["has_credentials"] = bool(self.sip_username and self.sip_password)
        return out


@attrs.define(eq=False)
class AuxReason:
    id: int
    name: str                       # "Lunch", shown to agents and sent as the PausedReason

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@attrs.define(eq=False)
class CallReason:
    """An account code; ``parent_id`` set makes it a second-level (sub) code."""

    id: int
    code: str
    name: str = ""
    parent_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "code": self.code, "name": self.name, "parent_id": self.parent_id}
