"""The Interaction Processor service (seed 003): JSON over a WebSocket for CTI clients.

The container wires it with one call, before the web service starts::

    from ucs import iserver
    iserver.install(self, root)     # in UCSServer._build_services, after the web service

It hangs the endpoint on the web server at ``[iserver] path`` (with the web
server's origin rules and size limits) and adds the :class:`IServer` service
to ``root``.  See docs/iserver.md for the messages.
"""

from __future__ import annotations

from typing import Any

from ucs.iserver.processor import Controller, IServer
from ucs.iserver.protocol import IServerFactory, IServerProtocol, IServerResource
from ucs.iserver.teams import TeamWatch

__all__ = ["Controller", "IServer", "IServerFactory", "IServerProtocol", "IServerResource", "TeamWatch", "install"]


def install(server: Any, parent: Any = None) -> IServer | None:
    """Build the Interaction Processor from the container ``server`` (a
    :class:`ucs.server.UCSServer`), put its WebSocket on the web server's root at
    ``config.iserver.path`` and add its service to ``parent`` (the root service).
    Returns it, or ``None`` when ``[iserver] enabled`` is false."""
    cfg = server.config.iserver
    if not cfg.enabled:
        return None
    web = server.get_web_service()
    options = web.options
    agents, tracker, _ = server.get_readers()  # issue 20: on a standby, the owner's model and events
    ix = IServer(
        registry=server.get_registry(), sessions=server.get_sessions(), bus=server.get_view_bus(),
        agents=agents, directory=server.get_directory(), tracker=tracker,
        store=server.get_store_proxy(), ami=server.get_ami_client(), reactor=server.get_reactor(),
        # Every node of a cluster tells its clients the cluster's domain (seed 003: the
        # processors serving the same pool of clients); a single process, [iserver]'s.
        instance_domain=cfg.instance_domain or (server.config.cluster.domain if server.config.cluster.enabled
                                                else ""), version=web.version,
        max_request_size=options.max_request_size, max_pending=options.max_pending,
        max_client_buffer=options.max_client_buffer, max_message_size=options.max_frame_size,
    )
    factory = IServerFactory(ix, options, web.heartbeat, web.hub.origin_allowed, server=f"UCS/{web.version}")
    web.put(cfg.path, IServerResource(factory))
    if parent is not None:
        ix.setServiceParent(parent)
    return ix
