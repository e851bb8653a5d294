"""The simulator as a Twisted service: what ``twistd -n ucs --demo`` embeds."""

from __future__ import annotations

import logging
from typing import Any

from twisted.application import service

from ucs.sim.demo import Demo
from ucs.sim.lab import lab
from ucs.sim.pbx import Sim
from ucs.sim.server import AMIServer

log = logging.getLogger(__name__)


class SimService(service.Service):
    """Serve a simulated PBX over AMI on ``interface:port``, optionally with the demo.

    ``SimService(port=5038, demo=True)`` builds the capture lab; pass ``sim``
    for another configuration.  ``port=0`` lets the system choose (see
    :attr:`port` once started).
    """

    def __init__(
        self,
        *,
        port: int = 5038,
        interface: str = "127.0.0.1",
        sim: Sim | None = None,
        demo: bool = False,
        demo_options: dict[str, Any] | None = None,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.sim = sim if sim is not None else lab(reactor, seed=None)
        self.server = AMIServer(self.sim)
        self.demo = Demo(self.sim, **(demo_options or {})) if demo else None
        self._port_number = port
        self.interface = interface
        self._listening: Any = None

    @property
    def port(self) -> int:
        if self._listening is None:
            return self._port_number
        return int(self._listening.getHost().port)

    def startService(self) -> None:
        super().startService()
        self._listening = self.reactor.listenTCP(self._port_number, self.server, interface=self.interface)
        log.info("ucs.sim: simulated Asterisk %s, AMI on %s:%d", self.sim.version, self.interface, self.port)
        if self.demo is not None:
            self.demo.start()

    def stopService(self) -> Any:
        super().stopService()
        if self.demo is not None:
            self.demo.stop()
        for s in list(self.server.sessions):
            s.transport.loseConnection()
        if self._listening is not None:
            d = self._listening.stopListening()
            self._listening = None
            return d
        return None
