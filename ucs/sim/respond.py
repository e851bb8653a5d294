"""An AMI action as the simulator receives it, and the shapes of its answers.

:class:`Handlers` is the base of every group of action handlers (the core
ones in :mod:`ucs.sim.actions`, the queue ones in :mod:`ucs.sim.queue_actions`,
chan_sip's in :mod:`ucs.sim.sip_actions`, PJSIP's in :mod:`ucs.sim.pjsip`):
it gives them the PBX and the three shapes of a response Asterisk sends, a
plain ``Success``, an ``Error``, and an event list (the ``EventList: start``
response, one event per item, the ``...Complete`` event with ``ListItems``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ucs.sim.wire import clean, frame

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.model import Channel
    from ucs.sim.pbx import Sim

Pairs = list[tuple[str, object]]


class ActionMessage:
    """An action as received: header names are case-insensitive, some repeat."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict[str, list[str]]) -> None:
        self.headers = headers

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.headers.get(name.lower())
        return clean(v[0]) if v else default

    def getall(self, name: str) -> list[str]:
        return [clean(v) for v in self.headers.get(name.lower(), [])]

    def aid(self) -> Pairs:
        v = self.headers.get("actionid")
        return [("ActionID", clean(v[0]))] if v else []


def true_value(value: str | None) -> bool:
    """A header's boolean as Asterisk's ``ast_true`` reads it."""
    return (value or "").strip().lower() in ("true", "yes", "1", "on", "y", "t")


def variables(m: ActionMessage, strip: bool = False) -> dict[str, str]:
    """The ``Variable: k=v,k2=v2`` headers (repeatable) as a dict."""
    out: dict[str, str] = {}
    for v in m.getall("variable"):
        for part in app_args(v.lstrip()):
            k, _, val = part.partition("=")
            if k.strip():
                out[k.strip()] = val.strip() if strip else val
    return out


def app_args(text: str) -> list[str]:
    """``text`` split at its commas as Asterisk's ``AST_STANDARD_APP_ARGS`` splits a
    ``Variable`` header: not inside parentheses or double quotes (the quotes and
    backslash escapes removed), so ``Call-Info(x)=<sip:a>;answer-after=0,B=2`` is two."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            cur.append(ch)
        elif ch == "(":
            depth += 1
            cur.append(ch)
        elif ch == ")":
            depth = max(0, depth - 1)
            cur.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


class Handlers:
    """What every group of action handlers (``a_<action>`` methods) shares."""

    sim: Sim

    @staticmethod
    def ok(m: ActionMessage, message: str | None = None, *extra: tuple[str, object]) -> bytes:
        pairs: Pairs = [("Response", "Success"), *m.aid()]
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        return frame(*pairs)

    @staticmethod
    def error(m: ActionMessage, message: str) -> bytes:
        return frame(("Response", "Error"), *m.aid(), ("Message", message))

    @staticmethod
    def aid_line(m: ActionMessage) -> str:
        """The ``ActionID`` header line an event of the list carries ('' if none)."""
        aid = m.aid()
        return f"ActionID: {aid[0][1]}\r\n" if aid else ""

    @staticmethod
    def event_list(
        m: ActionMessage, message: str, complete: str, items: Sequence[str], *extra: tuple[str, object]
    ) -> bytes:
        """A whole event list: the start response, ``items`` (each a whole
        event, ending in its blank line) and the ``complete`` event counting them.
        """
        aid = m.aid()
        start = frame(("Response", "Success"), *aid, ("EventList", "start"), ("Message", message))
        end = frame(("Event", complete), *aid, ("EventList", "Complete"), ("ListItems", len(items)), *extra)
        return start + "".join(items).encode() + end

    def _channel(self, name: str | None) -> Channel | None:
        return self.sim.find_channel(name) if name else None
