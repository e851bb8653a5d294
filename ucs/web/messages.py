"""The agent bar's JSON messages, as bytes on the wire.

Requests ``{"id": 7, "method": "agent.changeStatus", "args": ["AUX", "Lunch"]}``
(``args`` a list, an object by name, or absent); replies ``{"id": 7, "result": …}``
or ``{"id": 7, "error": {"code", "error", "message", "fields"?}}``; pushes
``{"event": "call.ringing", "data": {…}, "args"?: {…}}``.  See docs/agent-bar.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ucs import wirejson
from ucs.error import InvalidDataInput, UCSError
from ucs.fragments import splice


@attrs.frozen
class Outgoing:
    """One message, encoded once: ``data`` is the UTF-8 JSON, ``prepared`` the
    WebSocket frame built once for every client that gets it (or ``None``)."""

    data: bytes
    prepared: Any = None


@attrs.frozen
class Request:
    id: int | str | None
    method: str
    args: list[Any] | dict[str, Any] | None


class BadFrame(InvalidDataInput):
    """A frame that is not a request; ``id`` is the request's if it could be read."""

    kind = "invalid_frame"

    def __init__(self, message: Any, id: int | str | None = None) -> None:
        super().__init__(message)
        self.id = id


class TooLarge(UCSError):
    code = 413
    kind = "too_large"


class ReplyTooLarge(UCSError):
    """A result too large for one WebSocket message (``[web] max_frame_size``): sent
    as it was, autobahn would refuse it and the client would wait for ever."""

    code = 500
    kind = "reply_too_large"


def _default(o: Any) -> Any:
    if isinstance(o, enum.Enum):
        return o.name if not isinstance(o.value, (int, str)) else o.value
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    to_dict = getattr(o, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_default,
                      allow_nan=False).encode("utf-8")


def event(name: str, data: Any, args: Mapping[str, Any] | None = None) -> bytes:
    msg: dict[str, Any] = {"event": name, "data": data}
    if args:
        msg["args"] = dict(args)
    return encode(msg)


def result(id: int | str | None, value: Any) -> bytes:
    return splice({"id": id, "result": value}, encode)


def error(id: int | str | None, err: UCSError) -> bytes:
    return encode({"id": id, "error": err.to_dict()})


def _id_of(payload: bytes) -> int | str | None:
    """The id of a request refused for what it carries, read leniently, so that
    the client can match the error with its call."""
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    rid = msg.get("id") if isinstance(msg, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, (int, str)) or (isinstance(rid, str) and len(rid) > 64):
        return None
    return rid


def parse(payload: bytes, is_binary: bool, max_size: int) -> Request:
    """A request from one WebSocket message, or :class:`BadFrame` / :class:`TooLarge` saying what is wrong.

    Read strictly (:func:`ucs.wirejson.loads`): a NaN or an unpaired surrogate in any
    method's arguments stops here, not in the store or in another bar's event."""
    if is_binary:
        raise BadFrame("binary frames are not accepted; send a JSON request as a text frame")
    if len(payload) > max_size:
        raise TooLarge(f"request of {len(payload)} bytes is too large; at most {max_size} bytes are accepted")
    try:
        msg = wirejson.loads(payload)
    except wirejson.NotCarried as e:
        raise BadFrame(f"not accepted: {e}", _id_of(payload)) from None
    except ValueError as e:
        raise BadFrame(f"not JSON ({e}); send {{\"id\": 1, \"method\": \"state\", \"args\": []}}") from None
    if not isinstance(msg, dict):
        raise BadFrame(f"a request is a JSON object {{\"id\", \"method\", \"args\"}}, not {type(msg).__name__}")
    rid = msg.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (int, str)) or
                            (isinstance(rid, str) and len(rid) > 64)):
        raise BadFrame("id must be an integer or a string of at most 64 characters")
    method = msg.get("method")
    if not isinstance(method, str) or not method or len(method) > 100:
        raise BadFrame("method is missing: give the API method's name as a string", rid)
    args = msg.get("args")
    if args is not None and not isinstance(args, (list, dict)):
        raise BadFrame("args must be a list (by position) or an object (by name)", rid)
    unknown = sorted(k for k in msg if k not in ("id", "method", "args"))
    if unknown:
        raise BadFrame(f"unknown request keys {', '.join(map(repr, unknown))}; a request has id, method, args", rid)
    return Request(rid, method, args)
