"""Shared data: named values that agent bars, integrations and plugins share.

An identifier (``"agent_emails"``) holds any JSON value; one never set holds
``{}``.  Values live in memory (reads are synchronous) and in the store's
key-value table (namespace ``shared``), written before a change is reported
done, and survive a restart.  Every change is published as
``EVENT_SHARED_CHANGE`` (subject: the identifier; ``data``: the new value).

Seed 000's change hook (v3.1.0): one callback per identifier,
``hook(identifier, old_data, new_data)``; what it returns is stored instead of
``new_data``; ``ProcessingError`` blocks the change (the caller gets that
error); any other exception is logged with its traceback and ``new_data`` is
stored as requested.  A second hook for the same identifier raises
``ProcessingError``.

Dicts whose keys are not all strings (the seed's hook turns usernames into
integer user ids) are stored in a tagged form, so they read back with the
same keys after a restart.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from ucs.error import InvalidDataInput, ProcessingError
from ucs.events import EVENT_SHARED_CHANGE
from ucs.interfaces import KVStore, Publisher
from ucs.store.base import no_nul

NAMESPACE = "shared"
MAX_IDENTIFIER = 200
#: Marks a dict stored as a list of [key, value] pairs (its keys were not all strings).
_TAG = "__ucs_items__"

ChangeHook = Callable[[str, Any, Any], Any]


def check_identifier(identifier: Any) -> str:
    if not isinstance(identifier, str) or not identifier.strip():
        raise InvalidDataInput({"identifier": f"{identifier!r} is not accepted; give a non-empty string"})
    if len(identifier) > MAX_IDENTIFIER:
        raise InvalidDataInput({"identifier": f"is {len(identifier)} characters long; at most {MAX_IDENTIFIER}"})
    return identifier


def encode(value: Any) -> Any:
    """``value`` as JSON can hold it, dicts with non-string keys tagged; ``ValueError`` if it cannot."""
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _TAG not in value:
            return {k: encode(v) for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise ValueError(f"a key {k!r} ({type(k).__name__}) cannot be stored; use strings or numbers")
            items.append([k, encode(v)])
        return {_TAG: items}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} cannot be stored; use a finite number")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"{type(value).__name__} cannot be stored; use JSON values (objects, lists, strings, numbers)")


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _TAG in value and isinstance(value[_TAG], list):
            return {k: decode(v) for k, v in value[_TAG]}
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class SharedData:
    log = Logger(namespace="ucs.shared")

    def __init__(self, store: KVStore, bus: Publisher | None = None) -> None:
        self._store = store
        self._bus = bus
        self._data: dict[str, Any] = {}
        self._hooks: dict[str, tuple[ChangeHook, str | None]] = {}
        self._lock = DeferredLock()  # one change at a time: a hook sees the value the last change left

    async def load(self) -> None:
        """Read every identifier from the store (at start, before anyone sets one)."""
        items = await self._store.kv_items(NAMESPACE)
        self._data = {k: decode(v) for k, v in items.items()}

    # -- reading -----------------------------------------------------------------------

    def get(self, identifier: str) -> Any:
        """A copy of the value (``{}`` if never set)."""
        return copy.deepcopy(self._data.get(check_identifier(identifier), {}))

    def identifiers(self) -> list[str]:
        return sorted(self._data)

    # -- hooks -------------------------------------------------------------------------

    def add_change_hook(self, identifier: str, hook: ChangeHook, owner: str | None = None) -> None:
        check_identifier(identifier)
        if not callable(hook):
            raise InvalidDataInput(f"the change hook for {identifier!r} must be callable, not {type(hook).__name__}")
        held = self._hooks.get(identifier)
        if held is not None:
            by = f" (by plugin {held[1]})" if held[1] else ""
            raise ProcessingError(f"shared data {identifier!r} already has a change hook{by}; only one is allowed")
        self._hooks[identifier] = (hook, owner)

    def remove_change_hook(self, identifier: str, owner: str | None = None) -> bool:
        """Remove the hook of ``identifier`` (only if ``owner`` set it, when given)."""
        held = self._hooks.get(identifier)
        if held is None or (owner is not None and held[1] != owner):
            return False
        del self._hooks[identifier]
        return True

    def hook_owner(self, identifier: str) -> str | None:
        held = self._hooks.get(identifier)
        return held[1] if held is not None else None

    # -- changing ----------------------------------------------------------------------

    def set(self, identifier: str, data: Any) -> Deferred[Any]:
        """Change ``identifier`` through its hook; fires with the value stored."""
        return Deferred.fromCoroutine(self._set(identifier, data))

    async def _set(self, identifier: str, data: Any) -> Any:
        check_identifier(identifier)
        try:
            encode(data)
        except ValueError as e:
            raise InvalidDataInput({"data": str(e)}) from None
        await self._lock.acquire()
        try:
            old = self._data.get(identifier, {})
            value = self._through_hook(identifier, old, data)
            try:
                encoded = encode(value)
            except ValueError as e:
                self.log.error("the change hook of shared data {identifier} returned what cannot be stored "
                               "({problem}); storing the data as requested", identifier=identifier, problem=e)
                value, encoded = data, encode(data)
            await self._store.kv_set(NAMESPACE, identifier, encoded)
            # What was stored, not the caller's object, which it may change later.
            self._data[identifier] = value = decode(no_nul(encoded))
        finally:
            self._lock.release()
        if self._bus is not None:
            self._bus.publish(EVENT_SHARED_CHANGE, identifier, data=copy.deepcopy(value))
        return copy.deepcopy(value)

    def _through_hook(self, identifier: str, old: Any, new: Any) -> Any:
        held = self._hooks.get(identifier)
        if held is None:
            return new
        hook, owner = held
        try:
            return hook(identifier, copy.deepcopy(old), copy.deepcopy(new))
        except ProcessingError:
            raise
        except Exception:
            self.log.failure("the change hook of shared data {identifier} (plugin {plugin}) failed; "
                             "storing the data as requested", identifier=identifier, plugin=owner or "-")
            return new
