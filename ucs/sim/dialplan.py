"""A small dialplan: contexts of extensions (exact or ``_`` patterns) of steps."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Step = tuple[str, str]  # (application, data)

#: What an application returns: go on to the next priority, go where it set
#: (``Goto``), wait (the channel's job calls back), end the dialplan (hang up).
CONTINUE, JUMP, WAIT, END = 0, 1, 2, 3

_PATTERN_CHARS = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}
_VAR = re.compile(r"\$\{([A-Za-z0-9_()]+)(?::(-?[0-9]+)(?::(-?[0-9]+))?)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = pattern.index("]", i)
            out.append("[" + re.escape(pattern[i + 1 : j]).replace("\\-", "-") + "]")
            i = j + 1
            continue
        out.append(_PATTERN_CHARS.get(c.upper(), re.escape(c)))
        i += 1
    return re.compile("".join(out) + r"\Z")


class Dialplan:
    def __init__(self) -> None:
        self._contexts: dict[str, dict[str, list[Step]]] = {}
        self._patterns: dict[str, list[tuple[re.Pattern[str], list[Step]]]] = {}

    def add(self, context: str, exten: str, steps: Iterable[Step]) -> None:
        """``add("internal", "_1XXX", [("Dial", "SIP/${EXTEN},20,tT")])``."""
        steps = [(app, data) for app, data in steps]
        self._contexts.setdefault(context, {})[exten] = steps
        if exten.startswith("_"):
            pats = self._patterns.setdefault(context, [])
            pats[:] = [(p, s) for p, s in pats if p.pattern != _compile(exten[1:]).pattern]
            pats.append((_compile(exten[1:]), steps))

    def lookup(self, context: str, exten: str) -> list[Step] | None:
        ctx = self._contexts.get(context)
        if ctx is None:
            return None
        steps = ctx.get(exten)
        if steps is not None:
            return steps
        for pattern, steps in self._patterns.get(context, ()):
            if pattern.match(exten):
                return steps
        return None

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        steps = self.lookup(context, exten)
        return steps is not None and 1 <= priority <= len(steps)

    @property
    def contexts(self) -> list[str]:
        return list(self._contexts)


def substitute(data: str, lookup: Callable[[str], str]) -> str:
    """Replace ``${NAME}`` with ``lookup(NAME)``."""
    if "${" not in data:
        return data
    return _VAR.sub(lambda m: _substring(lookup(m.group(1)), m.group(2), m.group(3)), data)


def _substring(value: str, offset: str | None, length: str | None) -> str:
    """``${EXTEN:2}``, ``${EXTEN:-4:2}``: Asterisk's substring of a variable."""
    if offset is None:
        return value
    start = int(offset)
    value = value[start:] if start >= 0 else value[max(len(value) + start, 0):]
    if length is None:
        return value
    n = int(length)
    return value[:n] if n >= 0 else value[:n]
