"""A customer plugin in the plugin directory of the whole server: loaded at
start, sees an agent's status change made through the API, unloaded by a superuser."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher

from serverkit import start_demo, working_agent, write_plugin
from ucs.error import PermissionDenied
from ucs.events import EVENT_AGENT_STATUS, EVENT_SHARED_CHANGE

PLUGIN = textwrap.dedent('''
    """Remembers who went AUX last (seed 000 style: top-level imports, addCallback)."""
    from constants import AGENT_AUX
    from events import EVENT_AGENT_STATUS

    UCS_PLUGIN = "Watch"


    class Watch:
        def __init__(self, ucs):
            self.ucs = ucs
            self.heard = []  # every reason it was told of (for the test)
            self.ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

        def changed(self, agent, args):
            self.heard.append(agent["reason"])
            if agent["status"] == AGENT_AUX:
                self.ucs.shared.set("last_aux", {"user": agent["username"], "reason": agent["reason"]})

        def stop(self):
            self.ucs.removeCallback(EVENT_AGENT_STATUS, self.changed)
''')


@pytest_twisted.ensureDeferred
async def test_plugin_sees_a_status_change_then_is_unloaded(tmp_path: Path) -> None:
    write_plugin(tmp_path, "watch", PLUGIN)
    server = await start_demo(tmp_path)
    try:
        reg, sessions = server.get_registry(), server.get_sessions()
        listed = await reg.call(sessions.system(), "plugins.list")
        assert [(p["name"], p["state"]) for p in listed] == [("watch", "running")]
        watch = server.get_plugin_host().get("watch").instance
        agent = await working_agent(server, 2)
        changed: Deferred[None] = Deferred()
        server.get_bus().subscribe(EVENT_SHARED_CHANGE, lambda subject, args: changed.called or changed.callback(None))
        await reg.call(agent, "agent.changeStatus", ["AUX", "Break"])
        await changed.addTimeout(5, reactor)
        assert server.get_shared().get("last_aux") == {"user": "agent2", "reason": "Break"}
        with pytest.raises(PermissionDenied):
            await reg.call(agent, "plugins.unload", ["watch"])
        admin = sessions.create()
        await reg.call(admin, "login", ["admin", "admin-demo"])
        # The plugin's stop() unsubscribed it itself: the host found nothing left to remove
        # (it would warn "plugin watch left callback ... registered").
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        try:
            await reg.call(admin, "plugins.unload", ["watch"])
        finally:
            globalLogPublisher.removeObserver(logged.append)
        assert not [e for e in logged if "registered when it stopped" in e.get("log_format", "")]
        listed = await reg.call(sessions.system(), "plugins.list")
        assert [(p["name"], p["state"]) for p in listed] == [("watch", "stopped")]
        # The bus tells its subscribers in order, at once: once this one, subscribed after
        # the plugin, has heard of Lunch, the plugin would have heard of it too.
        lunch: Deferred[None] = Deferred()
        server.get_bus().subscribe(
            EVENT_AGENT_STATUS, lambda agent, args: lunch.called or agent.reason != "Lunch" or lunch.callback(None))
        await reg.call(agent, "agent.changeStatus", ["AUX", "Lunch"])
        await lunch.addTimeout(5, reactor)
        assert "Lunch" not in watch.heard and "Break" in watch.heard  # the unloaded plugin no longer hears
        assert server.get_shared().get("last_aux") == {"user": "agent2", "reason": "Break"}  # gone
    finally:
        await server.service.stopService()
