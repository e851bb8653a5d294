"""The checks behind every option of the config file, and the error they raise.

Kept apart from the sections so that each section module declares its
options with the same small vocabulary (:func:`string`, :func:`integer`,
:func:`number`, :func:`choice`, ... and :func:`option`) and every message
about a bad value has one shape: what was found and what is accepted. A
kind's check raises :class:`_Invalid` with that text; the loader
(:mod:`ucs.config.load`) turns it into a :class:`ConfigError` naming the file
and the dotted key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, with a message fit to show the operator as is.

    ``source`` is the file (or ``"command line"``), ``key`` the dotted key
    (``"store.url"``) or ``None`` for file-level problems.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.key = key

    def __str__(self) -> str:
        return self.message


class _Invalid(Exception):
    """Raised by a kind's check; the loader adds the file and the key."""


# --- kinds of values ---------------------------------------------------------


@attrs.frozen
class Kind:
    """What one option accepts: a check (which may normalise) and its description."""

    accepted: str
    check: Callable[[Any], Any]
    toml_type: str


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _wrong_type(value: object, accepted: str) -> _Invalid:
    return _Invalid(f"{value!r} is {_type_name(value)}; use {accepted}")


def string(accepted: str = "a string", *, nonempty: bool = False) -> Kind:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if nonempty and not v.strip():
            raise _Invalid(f"{v!r} is empty; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def boolean() -> Kind:
    accepted = "true or false"

    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise _wrong_type(v, accepted)
        return v

    return Kind(accepted, check, "boolean")


def integer(lo: int, hi: int, accepted: str | None = None) -> Kind:
    accepted = accepted or f"an integer {lo}-{hi}"

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _wrong_type(v, accepted)
        if not lo <= v <= hi:
            raise _Invalid(f"{v!r} is out of range; use {accepted}")
        return v

    return Kind(accepted, check, "integer")


def port(*, allow_zero: bool = False) -> Kind:
    lo = 0 if allow_zero else 1
    accepted = "a port number 1-65535" + (" (0: any free port)" if allow_zero else "")
    return integer(lo, 65535, accepted)


def number(lo: float, hi: float, unit: str) -> Kind:
    accepted = f"a number of {unit} from {lo:g} to {hi:g}"

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _wrong_type(v, accepted)
        if not (math.isfinite(v) and lo <= v <= hi):
            raise _Invalid(f"{v!r} is out of range; use {accepted}")
        return float(v)

    return Kind(accepted, check, "number")


def choice(*options: str) -> Kind:
    accepted = "one of " + ", ".join(repr(o) for o in options)

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v.lower() not in options:
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return v.lower()

    return Kind(accepted, check, "string")


def string_list(accepted: str = "a list of strings", item: Callable[[str], str] | None = None) -> Kind:
    def check(v: Any) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)):
            raise _wrong_type(v, accepted)
        out = []
        for i, x in enumerate(v):
            if not isinstance(x, str):
                raise _Invalid(f"item {i} {x!r} is {_type_name(x)}; use {accepted}")
            out.append(item(x) if item else x)
        return tuple(out)

    return Kind(accepted, check, "list of strings")


def string_table(accepted: str = "a table of names to strings") -> Kind:
    def check(v: Any) -> dict[str, str]:
        if not isinstance(v, dict):
            raise _wrong_type(v, accepted)
        for k, x in v.items():
            if not isinstance(x, str):
                raise _Invalid(f"{k} = {x!r} is {_type_name(x)}; use {accepted}")
        return dict(v)

    return Kind(accepted, check, "table")


def table_list(accepted: str = "a list of tables") -> Kind:
    def check(v: Any) -> tuple[dict[str, Any], ...]:
        if not isinstance(v, (list, tuple)):
            raise _wrong_type(v, accepted)
        for i, x in enumerate(v):
            if not isinstance(x, dict):
                raise _Invalid(f"item {i} {x!r} is {_type_name(x)}; use {accepted}")
        return tuple(dict(x) for x in v)

    return Kind(accepted, check, "array of tables")


def option(default: T, kind: Kind, doc: str) -> T:
    """Declare one option of a section: its default, what it accepts and its documentation."""
    return attrs.field(default=default, metadata={"kind": kind, "doc": doc})  # type: ignore[no-any-return]
