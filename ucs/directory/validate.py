"""Checks for directory data: each bad field named, with what is accepted.

``check(kind, data, current, directory)`` returns the fields to store (keys
as the model's attributes) or raises :class:`InvalidDataInput` with a dict of
field → problem, all problems at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from ucs.directory.model import CallReason, Line, QueueMembership
from ucs.error import InvalidDataInput


class Tables(Protocol):
    """What the checks read: the directory, or a batch's draft of it as its earlier
    steps leave it (:class:`ucs.directory.directory.Directory`)."""

    lines: dict[int, Line]
    callreasons: dict[int, CallReason]

    def table(self, kind: str) -> dict[int, Any]: ...


_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_LOCALE = re.compile(r"[a-z]{2}([_-][A-Za-z]{2})?\Z")
_DEVICE = re.compile(r"(SIP|PJSIP|IAX2|DAHDI|Local|Custom)/[A-Za-z0-9._@+-]{1,64}\Z")
_ASTERISK_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_NUMBER = re.compile(r"\+?[0-9*#]{1,32}\Z")
_WS_URL = re.compile(r"wss?://[^\s/?#]+(/[^\s#]*)?\Z")
_SIP_USER = re.compile(r"[A-Za-z0-9._+!~*()%-]{1,64}\Z")


class _Bad(ValueError):
    pass


def norm_identifier(value: str) -> str:
    """Identifiers compare without case and MAC punctuation (``00:15:65:AA:BB:CC`` = ``001565aabbcc``)."""
    v = value.strip().lower()
    if re.fullmatch(r"([0-9a-f]{2}[:-]){5}[0-9a-f]{2}", v):
        return v.replace(":", "").replace("-", "")
    return v


def _text(max_len: int = 200, *, required: bool = False, pattern: re.Pattern[str] | None = None,
          accepted: str = "") -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _Bad(f"{v!r} is not accepted; give a string")
        if "\r" in v or "\n" in v or "\x00" in v:
            raise _Bad("line breaks and NUL are not accepted")
        v = v.strip()
        if required and not v:
            raise _Bad("must not be empty")
        if len(v) > max_len:
            raise _Bad(f"is {len(v)} characters long; at most {max_len} are accepted")
        if pattern is not None and v and not pattern.match(v):
            raise _Bad(f"{v!r} is not accepted; {accepted}")
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"{v!r} is not accepted; give true or false")
    return v


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _Bad(f"{v!r} is not accepted; give an integer from {lo} to {hi}")
        return v
    return check


def _ref(directory: Tables, kind: str, nullable: bool = True) -> Callable[[Any], int | None]:
    def check(v: Any) -> int | None:
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"{v!r} is not accepted; give the id of one of the {kind}" + (" or null" if nullable else ""))
        if v not in directory.table(kind):
            raise _Bad(f"{kind[:-1]} {v} does not exist")
        return v
    return check


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise _Bad(f"{v!r} is not accepted; give an object with string keys")
    return v


def _password(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad("is not accepted; give a string")
    if v and len(v) < 8:
        raise _Bad("is too short; at least 8 characters are accepted (or \"\" for SSO-only users)")
    if len(v) > 1024:
        raise _Bad("is too long; at most 1024 characters are accepted")
    return v


def _unique(directory: Tables, kind: str, attr: str, current: Any, fold: bool = True) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        key = v.lower() if fold and isinstance(v, str) else v
        for other in directory.table(kind).values():
            if other is current:
                continue
            theirs = getattr(other, attr)
            if (theirs.lower() if fold and isinstance(theirs, str) else theirs) == key:
                raise _Bad(f"{v!r} is taken by {kind[:-1]} {other.id}")
        return v
    return check


def _then(*checks: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        for c in checks:
            v = c(v)
        return v
    return check


def _schema(kind: str, d: Tables, current: Any) -> tuple[dict[str, Callable[[Any], Any]], set[str]]:
    """(field → check, required fields on add)."""
    if kind == "users":
        return {
            "username": _then(_text(64, required=True, pattern=_USERNAME,
                                    accepted="use 1 to 64 letters, digits and . _ @ + -"),
                              _unique(d, "users", "username", current)),
            "password": _password,
            "firstname": _text(100), "lastname": _text(100), "displayname": _text(200),
            "email": _text(254, pattern=_EMAIL, accepted="give an address like name@example.com"),
            "locale": _text(8, pattern=_LOCALE, accepted="give a language code such as en or cs"),
            "group_id": _ref(d, "groups"),
            "superuser": _bool, "supervisor": _bool,
            "external_id": _text(200),
            "number": _text(32, pattern=_NUMBER, accepted="give digits, optionally with a leading +"),
            "data": _dict,
            "lines": _line_list(d),
            "primary_extension": _ref(d, "lines"),
            "queues": _memberships(d),
        }, {"username"}
    if kind in ("groups", "teams"):
        return {"name": _then(_text(100, required=True), _unique(d, kind, "name", current))}, {"name"}
    if kind == "queues":
        return {
            "name": _text(100, required=True),
            "asterisk_name": _then(
                _text(64, required=True, pattern=_ASTERISK_QUEUE,
                      accepted="give the queues.conf section name: letters, digits, _ . -"),
                _unique(d, "queues", "asterisk_name", current, fold=False)),
            "type": _choice((0, 1), "0 (outgoing) or 1 (incoming)"),
            "require_reason": _bool,
            "record": _bool,
            "number": _text(32, pattern=_NUMBER, accepted="give the number that reaches the queue: digits, "
                            "optionally with a leading +"),
        }, {"name", "asterisk_name"}
    if kind == "lines":
        return {
            "device": _then(_text(80, required=True, pattern=_DEVICE,
                                  accepted="give an Asterisk device such as SIP/1001 or PJSIP/2001"),
                            _unique(d, "lines", "device", current, fold=False)),
            "name": _text(100),
            "identifiers": _identifiers(d, current),
            "auto_answer": _choice(("none", "sip-notify"), "\"none\" or \"sip-notify\""),
            "kind": _choice(("phone", "webrtc"), "\"phone\" or \"webrtc\" (the agent bar is the phone)"),
            "ws_url": _text(300, pattern=_WS_URL, accepted="give the PJSIP WebSocket transport's URL, "
                            "ws://host:port/ws or wss://…"),
            "sip_username": _text(64, pattern=_SIP_USER, accepted="give the SIP user name: letters, digits "
                                  "and . _ + - ! ~ * ( ) %"),
            "sip_password": _text(128),
        }, {"device"}
    if kind == "auxreasons":
        return {"name": _then(_text(64, required=True), _unique(d, "auxreasons", "name", current))}, {"name"}
    if kind == "callreasons":
        return {
            "code": _text(64, required=True),
            "name": _text(200),
            "parent_id": _parent(d, current),
        }, {"code"}
    raise InvalidDataInput({"kind": f"{kind!r} is not a directory kind"})


def _choice(values: tuple[Any, ...], accepted: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in values:
            raise _Bad(f"{v!r} is not accepted; give {accepted}")
        return v
    return check


def _line_list(d: Tables) -> Callable[[Any], list[int]]:
    ref = _ref(d, "lines", nullable=False)

    def check(v: Any) -> list[int]:
        if not isinstance(v, list):
            raise _Bad(f"{v!r} is not accepted; give a list of line ids")
        out = []
        for item in v:
            line_id = ref(item)
            assert line_id is not None
            if line_id not in out:
                out.append(line_id)
        return out
    return check


def _memberships(d: Tables) -> Callable[[Any], dict[int, QueueMembership]]:
    queue_ref = _ref(d, "queues", nullable=False)
    team_ref = _ref(d, "teams")
    priority = _int(0, 1000)

    def check(v: Any) -> dict[int, QueueMembership]:
        if not isinstance(v, dict):
            raise _Bad(f"{v!r} is not accepted; give an object of queue id → "
                       "{\"priorities\": int, \"team_id\": int|null, \"supervisor\": bool}")
        out: dict[int, QueueMembership] = {}
        for key, params in v.items():
            try:
                qid = int(key)
            except (TypeError, ValueError):
                raise _Bad(f"queue id {key!r} is not a number") from None
            queue_ref(qid)
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise _Bad(f"queue {qid}: {params!r} is not accepted; give an object")
            unknown = set(params) - {"priorities", "team_id", "supervisor"}
            if unknown:
                raise _Bad(f"queue {qid}: unknown keys {sorted(unknown)}; accepted: priorities, team_id, supervisor")
            try:
                out[qid] = QueueMembership(
                    priority(params.get("priorities", 0)),
                    team_ref(params.get("team_id")),
                    _bool(params.get("supervisor", False)),
                )
            except _Bad as e:
                raise _Bad(f"queue {qid}: {e}") from None
        return out
    return check


def _identifiers(d: Tables, current: Any) -> Callable[[Any], list[str]]:
    def check(v: Any) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(i, str) and i.strip() for i in v):
            raise _Bad(f"{v!r} is not accepted; give a list of non-empty strings (MAC, name, IP address)")
        taken = {
            norm_identifier(i): line.id
            for line in d.lines.values() if line is not current for i in line.identifiers
        }
        out: list[str] = []
        for ident in v:
            ident = _text(100, required=True)(ident)
            owner = taken.get(norm_identifier(ident))
            if owner is not None:
                raise _Bad(f"identifier {ident!r} is taken by line {owner}")
            out.append(ident)
        return out
    return check


def _parent(d: Tables, current: Any) -> Callable[[Any], int | None]:
    ref = _ref(d, "callreasons")

    def check(v: Any) -> int | None:
        parent = ref(v)
        if parent is None:
            return None
        if d.callreasons[parent].parent_id is not None:
            raise _Bad(f"call reason {parent} is itself a sub-code; only two levels are accepted")
        if current is not None and parent == current.id:
            raise _Bad("a call reason cannot be its own parent")
        return parent
    return check


def check(kind: str, data: Any, current: Any, directory: Tables) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidDataInput({"data": f"{data!r} is not accepted; give an object of fields"})
    schema, required = _schema(kind, directory, current)
    problems: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key == "id":
            if current is not None and value != current.id:
                problems["id"] = f"{value!r} does not match the {kind[:-1]} being edited ({current.id})"
            continue
        check_field = schema.get(key)
        if check_field is None:
            problems[key] = f"is not a field of {kind}; accepted: {', '.join(sorted(schema))}"
            continue
        try:
            fields[key] = check_field(value)
        except _Bad as e:
            problems[key] = str(e)
    if current is None:
        for key in sorted(required - set(data)):
            problems[key] = "is required"
    if kind == "lines" and not problems:
        _webrtc_line(fields, current, problems)
    if problems:
        raise InvalidDataInput(problems)
    return fields


def _webrtc_line(fields: dict[str, Any], current: Any, problems: dict[str, str]) -> None:
    """A WebRTC line is a PJSIP endpoint with the WebSocket URL its softphone registers over."""
    def value(key: str, default: str) -> Any:
        return fields.get(key, getattr(current, key, default) if current is not None else default)
    if value("kind", "phone") != "webrtc":
        return
    if not str(value("device", "")).startswith("PJSIP/"):
        problems["device"] = "a WebRTC line is a PJSIP endpoint: give PJSIP/<endpoint>"
    if not value("ws_url", ""):
        problems["ws_url"] = "a WebRTC line needs the PJSIP WebSocket transport's URL (ws://host:port/ws)"
