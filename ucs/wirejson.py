"""JSON from a client, read strictly: only values that JSON, the store and every
client can carry.

Python's :func:`json.loads` is lenient where UCS cannot afford it:

* it reads ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON) and turns ``1e400``
  into an infinite float.  Accepted in an agent's frame, such a number travelled
  into a call's metadata and failed far from the agent: the store refused the CDR,
  and the fan-out could not encode the call for any bar (issue 14, point 3);
* it keeps a ``"\\ud800"`` escape as an unpaired surrogate, which no UTF-8 encoder
  takes (nor SQLite, nor PostgreSQL, nor a reply to the agent);
* it recurses once per level of nesting, so a 64 KiB frame of ``[`` raises
  :class:`RecursionError` (not a :class:`ValueError`), which no frame decoder
  caught.

:func:`loads` refuses all of these with a :class:`NotCarried` (a
:class:`ValueError`) whose message says what was wrong and what is accepted;
both WebSocket endpoints (the agent bar's and the Interaction Processor's) read
every frame with it, so every method's arguments are covered, not one
method's.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Levels of arrays and objects a frame may nest (the frame's own object is level 1).
MAX_DEPTH = 32


class NotCarried(ValueError):
    """A JSON text with a value UCS does not carry; the message says which and why."""


def _constant(name: str) -> Any:
    raise NotCarried(f"{name} is not a JSON number: numbers must be finite (send null or a string instead)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotCarried(f"the number {text[:40]} is too large to be carried (it would be infinite): "
                         "numbers must be finite, at most about 1.8e308")
    return value


def loads(text: str | bytes) -> Any:
    """``text`` (JSON, UTF-8 if bytes) as Python values; :class:`NotCarried` for a
    non-finite number, an unpaired surrogate or nesting deeper than :data:`MAX_DEPTH`,
    :class:`ValueError` for text that is not JSON."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise NotCarried(too_deep(MAX_DEPTH)) from None
    check(value)
    return value


def too_deep(limit: int, what: str = "the JSON") -> str:
    return f"{what} is nested deeper than {limit} levels; at most {limit} levels of arrays and objects are accepted"


def check(value: Any, max_depth: int = MAX_DEPTH, what: str = "the JSON") -> None:
    """Raise :class:`NotCarried` if ``value`` (decoded JSON) nests deeper than
    ``max_depth`` or holds a string (key or value) with an unpaired surrogate.

    Walked with a stack of its own, not by recursion: the check must not fail on
    what it checks."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise NotCarried(too_deep(max_depth, what))
            if isinstance(item, dict):
                for k, v in item.items():
                    _text(k)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            _constant(repr(item))


def _text(s: Any) -> None:
    if isinstance(s, str) and not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise NotCarried(f"a string has an unpaired surrogate ({s[e.start]!r} at position {e.start}): "
                             "strings must be valid Unicode text") from None
