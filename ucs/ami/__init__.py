"""Asterisk Manager Interface: wire format, protocol, reconnecting client.

Layers, bottom up: :mod:`~ucs.ami.message` (bytes ⇄ ``dict`` messages),
:mod:`~ucs.ami.protocol` (one connection: ActionID ⇄ Deferred),
:mod:`~ucs.ami.auth` (Login / MD5 challenge), :mod:`~ucs.ami.client`
(reconnect, login, keepalive, :class:`IAMIListener` for the layer above).
:mod:`~ucs.ami.testing` replays real Asterisk captures over TCP for tests.
"""

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
