"""The protocols several layers share: what a component needs from another,
typed structurally (``typing.Protocol``), so that it can be given the real
thing or a test's fake.

A leaf like :mod:`ucs.constants`: it imports nothing from UCS.  Protocols only
one module uses stay in that module (``ucs.calls.control.CDRStore`` …).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred


class ActionSender(Protocol):
    """Sends AMI actions: :class:`ucs.ami.client.AMIClient` (its ``sendAction``)."""

    def sendAction(
        self, action: str, headers: Mapping[str, object] = ..., *, timeout: float | None = None
    ) -> Deferred[Any]: ...


class KVStore(Protocol):
    """Documents by namespace and key: the store (:class:`ucs.store.Store`)."""

    def kv_get(self, namespace: str, key: str, default: Any = None) -> Deferred[Any]: ...
    def kv_set(self, namespace: str, key: str, value: Any) -> Deferred[None]: ...
    def kv_delete(self, namespace: str, key: str) -> Deferred[bool]: ...
    def kv_items(self, namespace: str) -> Deferred[dict[str, Any]]: ...
    def kv_write(self, items: list[tuple[str, str, Any]], *,
                 audit: list[dict[str, Any]] = ..., fence: Any = ...) -> Deferred[None]: ...


class Publisher(Protocol):
    """Publishes named events: the events bus (:class:`ucs.bus.EventBus`)."""

    def publish(self, name: str, subject: Any = None, **args: Any) -> None: ...
