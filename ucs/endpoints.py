"""What UCS serves: every API method in the registry, and the web service's resources.

The registry holds every method of the agent bar's WebSocket API, the
Interaction Processor and plugins; each package registers its own
(``register`` in its ``api.py`` / ``*_api.py``).  The web service serves, beside
the agent bar's WebSocket and pages, ``/metrics``, ``/remember``,
``/recording``, the wallboard, the admin page and ``/stats.csv``.

Why a module of its own (issue 15): the list of what is served grows with each
feature and says nothing of how the components are built or wired; the
container (:class:`~ucs.server.UCSServer`) builds the registry and the web
service once (``get_registry``, ``get_web_service``) and hands them here to be
filled, in the same order as always.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ucs.agents import api as agents_api
from ucs.agents import history_api
from ucs.api import auth as auth_api
from ucs.api import operations as operations_api
from ucs.api import remember as remember_api
from ucs.api import state as state_api
from ucs.api.registry import Registry
from ucs.calls import control_api, recording_api
from ucs.constants import Role
from ucs.directory import api as directory_api
from ucs.directory import audit_api, csv_api
from ucs.lookup import api as lookup_api
from ucs.supervisor import api as supervisor_api
from ucs.web.service import WebService
from ucs.web.wallboard import admin_files, stats_resource, wallboard_files

if TYPE_CHECKING:
    from ucs.server import UCSServer


def register_api(reg: Registry, server: UCSServer) -> None:
    """Every API method, for the agent bar, the Interaction Processor and plugins."""
    auth_api.register(reg, server.get_auth())
    remember_api.register(reg, server.get_remember())
    state_api.register(reg, server.get_state())
    directory_api.register(reg, server.get_directory())
    audit_api.register(reg, server.get_store_proxy())
    csv_api.register(reg, server.get_directory(), server.get_store_proxy(), server.get_reactor())
    agents_api.register(reg, server.get_agents())
    history_api.register(reg, server.get_call_history())
    control_api.register(reg, server.get_call_control())
    recording_api.register(reg, server.get_call_control(), server.get_recording_links())
    lookup_api.register(reg, server.get_lookups())
    supervisor_api.register(reg, server.get_supervision(), server.get_agents(), server.get_call_tracker(),
                            server.get_ami_client(), server.get_sessions(), server.get_state())
    operations_api.register(reg, server.get_operations())
    reg.add("api.methods", lambda session: [reg.get(n).describe() for n in reg.names()],
            role=Role.ANONYMOUS, doc="Every API method with its arguments, role and states.")


def mount(web: WebService, server: UCSServer) -> None:
    """The web service's resources beside the agent bar's own."""
    directory = server.get_directory()
    web.demo.connect_sources = lambda: [  # the softphone's WebSockets (issue 18)
        line.ws_url for line in directory.lines.values() if line.kind == "webrtc" and line.ws_url]
    web.put("/metrics", server.get_metrics().resource())
    web.put("/remember", server.get_remember().resource())
    web.put("/recording", server.get_recording_links().resource())
    web.put("/wallboard", wallboard_files())
    web.put("/admin", admin_files())  # issue 19: the admin page
    web.put("/stats.csv", stats_resource(server.get_registry(), server.get_sessions()))
