"""The AMI connection to Asterisk, built from ``[ami]``.

Split out of ``ucs.server`` (issue 15): the container only says what the AMI
client feeds (the :class:`~ucs.pbx.link.PBXLink`) and where it connects; how
the client is set up from ``[ami]`` -- credentials (the simulated PBX's in demo
mode), events, keepalive, action timeout, reconnect backoff, the noise it
skips, an address looked up at each attempt -- is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from ucs.ami.client import AMIClient, IAMIListener
from ucs.config import Config
from ucs.pbx.pbx import NOISE_EVENTS


def build_ami_client(config: Config, reactor: Any, listener: IAMIListener,
                     address: Callable[[], tuple[str, int]]) -> AMIClient:
    """The AMI client (service name ``ami``) for ``config``'s ``[ami]``, telling
    ``listener``; ``address()`` is asked where to connect at every attempt."""
    a = config.ami
    endpoint = LateTCPEndpoint(reactor, address)
    events: bool | str = {"on": True, "off": False}.get(a.events, a.events)
    client = AMIClient(
        endpoint, *ami_credentials(config), listener,
        clock=reactor, events=events, authType=a.auth,  # type: ignore[arg-type]
        keepaliveInterval=a.ping_interval or None, actionTimeout=a.action_timeout,
        retryPolicy=backoffPolicy(initialDelay=a.reconnect_min_delay, maxDelay=a.reconnect_max_delay),
        skipEvents=NOISE_EVENTS,
    )
    client.setName("ami")
    return client


def ami_credentials(config: Config) -> tuple[str, str]:
    """(user name, secret): ``[ami]``'s, or the simulated PBX's in demo mode."""
    if config.demo.enabled:
        from ucs.sim.lab import AMI_USER

        return AMI_USER
    return config.ami.username, config.ami.secret


@implementer(IStreamClientEndpoint)
class LateTCPEndpoint:
    """A TCP endpoint whose address is looked up at each connection attempt."""

    def __init__(self, reactor: Any, address: Callable[[], tuple[str, int]]) -> None:
        self._reactor = reactor
        self._address = address

    def connect(self, factory: Any) -> Deferred[Any]:
        host, port = self._address()
        return TCP4ClientEndpoint(self._reactor, host, port, timeout=10).connect(factory)
