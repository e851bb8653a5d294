"""Asterisk Manager Interface: wire format, protocol, reconnecting client.

Layers, bottom up: :mod:`~ucs.ami.message` (bytes ⇄ ``dict`` messages),
:mod:`~ucs.ami.protocol` (one connection: ActionID ⇄ Deferred),
:mod:`~ucs.ami.auth` (Login / MD5 challenge), :mod:`~ucs.ami.client`
(reconnect, login, keepalive, :class:`IAMIListener` for the layer above).
:mod:`~ucs.ami.testing` replays real Asterisk captures over TCP for tests.

The names below are imported from their modules at first use (PEP 562): a
program that needs only the wire format (``ucs-replay``: ``ucs.ami.message``)
starts without loading Twisted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ucs.ami.auth import eventsHeader, login, md5Key
    from ucs.ami.client import TRANSITIONS, AMIClient, AMIListener, IAMIListener, LinkState
    from ucs.ami.errors import (
        AMIActionError,
        AMIAuthError,
        AMIConnectionLost,
        AMIError,
        AMINotConnected,
        AMITimeoutError,
    )
    from ucs.ami.message import (
        MAX_FRAME,
        AMIParser,
        FrameError,
        HeaderInjectionError,
        Message,
        format_action,
        format_message,
        parse_frame,
    )
    from ucs.ami.protocol import (
        DEFAULT_TIMEOUT,
        ActionResult,
        AMIProtocol,
        EventListResult,
        IAMIController,
        counterIDs,
    )

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_FRAME",
    "TRANSITIONS",
    "AMIActionError",
    "AMIAuthError",
    "AMIClient",
    "AMIConnectionLost",
    "AMIError",
    "AMIListener",
    "AMINotConnected",
    "AMIParser",
    "AMIProtocol",
    "AMITimeoutError",
    "ActionResult",
    "EventListResult",
    "FrameError",
    "HeaderInjectionError",
    "IAMIController",
    "IAMIListener",
    "LinkState",
    "Message",
    "counterIDs",
    "eventsHeader",
    "format_action",
    "format_message",
    "login",
    "md5Key",
    "parse_frame",
]


#: Where each public name lives.
_WHERE = {
    "eventsHeader": "auth", "login": "auth", "md5Key": "auth",
    "TRANSITIONS": "client", "AMIClient": "client", "AMIListener": "client", "IAMIListener": "client",
    "LinkState": "client",
    "AMIActionError": "errors", "AMIAuthError": "errors", "AMIConnectionLost": "errors", "AMIError": "errors",
    "AMINotConnected": "errors", "AMITimeoutError": "errors",
    "MAX_FRAME": "message", "AMIParser": "message", "FrameError": "message", "HeaderInjectionError": "message",
    "Message": "message", "format_action": "message", "format_message": "message", "parse_frame": "message",
    "DEFAULT_TIMEOUT": "protocol", "ActionResult": "protocol", "AMIProtocol": "protocol",
    "EventListResult": "protocol", "IAMIController": "protocol", "counterIDs": "protocol",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
