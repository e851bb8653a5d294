"""The simulator as a Twisted service: what ``twistd -n ucs --demo`` embeds."""

from __future__ import annotations

import logging
from typing import Any

from twisted.application import service
from twisted.internet.defer import gatherResults
from twisted.internet.error import CannotListenError

from ucs.sim.demo import Demo
from ucs.sim.lab import demo_lab
from ucs.sim.pbx import Sim
from ucs.sim.server import AMIServer

log = logging.getLogger(__name__)


class SimService(service.Service):
    """Serve a simulated PBX over AMI on ``interface:port``, optionally with demo callers.

    ``SimService(port=0, phones=4, call_rate=2.0)`` builds the demo lab
    (:func:`ucs.sim.lab.demo_lab`: static phones SIP/1001..., queues support
    and sales) and, with ``call_rate`` > 0, callers arriving at that many calls
    a minute.  Pass ``sim`` for another configuration.  Once started,
    :meth:`address` says where the AMI is (``port=0`` lets the system choose)
    and :attr:`credentials` how to log in.  With ``webrtc_port`` (0: any free
    port) the WebRTC lines' SIP WebSocket is served too (:attr:`webrtc`, a
    :class:`ucs.sim.sipws.SIPWebSocketService`; ``webrtc.url``).
    """

    def __init__(
        self,
        *,
        port: int = 5038,
        interface: str = "127.0.0.1",
        sim: Sim | None = None,
        phones: int = 4,
        call_rate: float = 0.0,
        demo_options: dict[str, Any] | None = None,
        reactor: Any = None,
        webrtc_port: int | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.sim = sim if sim is not None else demo_lab(reactor, phones=phones)
        self.server = AMIServer(self.sim)
        opts = dict(demo_options or {})
        if call_rate > 0:
            opts["rate"] = call_rate
        self.demo = Demo(self.sim, **opts) if "rate" in opts else None
        self._port_number = port
        self.interface = interface
        self._listening: Any = None
        #: The SIP WebSocket of the WebRTC lines (issue 18), with ``webrtc_port``.
        self.webrtc: Any = None
        if webrtc_port is not None:
            from ucs.sim.sipws import SIPWebSocketService

            self.webrtc = SIPWebSocketService(self.sim, reactor, port=webrtc_port, interface=interface)

    @property
    def credentials(self) -> tuple[str, str]:
        """An AMI (username, secret) the simulator accepts."""
        return next(iter(self.sim.ami_users.items()))

    def address(self) -> tuple[str, int]:
        """(host, port) of the AMI: the real port once listening."""
        return self.interface, self.port

    @property
    def port(self) -> int:
        if self._listening is None:
            return self._port_number
        return int(self._listening.getHost().port)

    def start_listening(self) -> None:
        """Open the AMI port (again: after :meth:`stop_listening`, the same port
        number), as an Asterisk that comes back would."""
        if self._listening is None:
            self._listening = self.reactor.listenTCP(self._port_number, self.server, interface=self.interface)
            self._port_number = int(self._listening.getHost().port)

    def stop_listening(self) -> Any:
        """Close the AMI port, leaving the simulated PBX running: Asterisk unreachable
        (tests of a lost link). Connections already open stay open."""
        if self._listening is None:
            return None
        d = self._listening.stopListening()
        self._listening = None
        return d

    def startService(self) -> None:
        super().startService()
        self.start_listening()
        log.info("ucs.sim: simulated Asterisk %s, AMI on %s:%d", self.sim.version, self.interface, self.port)
        if self.webrtc is not None:
            try:
                self.webrtc.startService()
            except CannotListenError as e:  # the PBX runs on without its WebRTC lines' WebSocket
                log.error("ucs.sim: no SIP WebSocket for the WebRTC lines: cannot listen on %s:%d (%s)",
                          self.webrtc.interface, self.webrtc.port, e.socketError)
                self.webrtc.stopService()
                self.webrtc = None
        if self.demo is not None:
            self.demo.start()

    def stopService(self) -> Any:
        super().stopService()
        if self.demo is not None:
            self.demo.stop()
        for s in list(self.server.sessions):
            s.close()
        stopping = self.stop_listening()
        if self.webrtc is not None:
            return gatherResults([d for d in (self.webrtc.stopService(), stopping) if d is not None], consumeErrors=True)
        return stopping
