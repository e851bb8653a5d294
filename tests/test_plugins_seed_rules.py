"""Where UCS's plugins meet seeds 000/001 to the letter, or depart from them on
purpose (docs/plugins.md, "Seed 000/001 and UCS"): real plugin files, loaded by
the real host, the agents' part over the simulated Asterisk."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_agents_harness import close, sqlite_url, stack_on
from test_plugins_harness import SEEDS, LogCapture, PluginStack, logs_fixture, sqlite_store_fixture, write  # noqa: F401
from twisted.logger import formatEvent

from ucs.constants import AgentStatus
from ucs.plugins.facade import PluginContext
from ucs.plugins.host import PluginHost

AUX, READY = AgentStatus.AUX, AgentStatus.READY


@pytest_twisted.ensureDeferred
async def test_the_seed_example_thread_runs_verbatim(sqlite_store: Any, tmp_path: Path) -> None:
    """The seed's Example calls ``super().__init__(self)``, which CPython's Thread refuses;
    the plugin's ``threading.Thread`` takes it, and nothing outside plugins changes."""
    text = (SEEDS / "example.py").read_text(encoding="utf-8")
    assert "super().__init__(self)" in text  # as in seeds 000 and 001
    with pytest.raises(AssertionError, match="group argument must be None"):
        class Plain(threading.Thread):
            def __init__(self) -> None:
                super().__init__(self)  # type: ignore[arg-type]
        Plain()
    (tmp_path / "example.py").write_text(text, encoding="utf-8")
    write(tmp_path, "other", """
        UCS_PLUGIN = "Other"

        class Other:
            def __init__(self, ucs):
                self.ucs = ucs
            def stop(self):
                pass
    """)
    p = PluginStack(sqlite_store, tmp_path)
    await p.start()
    try:
        example = p.plugin("example")
        assert p.host.get("example").state == "running"
        assert isinstance(example, threading.Thread) and example.is_alive()
        assert example.name == "ExamplePluginThread"
        # ucs is each plugin's own facade (docs/plugins.md says why), named after it
        assert example.ucs is not p.plugin("other").ucs
        assert (example.ucs.name, p.plugin("other").ucs.name) == ("example", "other")
        await p.call(p.session(superuser=True), "plugins.unload", "example")
        example.join(5)
        assert not example.is_alive()
    finally:
        p.stop()


@pytest_twisted.ensureDeferred
async def test_the_seed_transformer_without_ucs_plugin_is_skipped_and_says_what_to_add(
        sqlite_store: Any, tmp_path: Path) -> None:
    """The seed's v4.38 example as printed (no ``UCS_PLUGIN``): skipped, as v2.4.0 says."""
    text = (SEEDS / "metadata_transformer.py").read_text(encoding="utf-8")
    verbatim = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("UCS_PLUGIN"))
    (tmp_path / "metadata_transformer.py").write_text(verbatim, encoding="utf-8")
    p = PluginStack(sqlite_store, tmp_path)
    await p.start()
    try:
        [listed] = await p.call(p.session(superuser=True), "plugins.list")
        assert listed["state"] == "skipped"
        assert 'add UCS_PLUGIN = "MetadataTransformer"' in listed["error"]
    finally:
        p.stop()


@pytest_twisted.ensureDeferred
async def test_a_plugin_directory_given_relative_is_logged_as_searched(tmp_path: Path, monkeypatch: Any) -> None:
    """The default ``plugins`` is relative to where UCS starts (the seed's
    /opt/ucs/server/plugins when UCS starts in /opt/ucs/server); the start says which."""
    monkeypatch.chdir(tmp_path)
    from twisted.internet import reactor
    with LogCapture() as logged:
        host = PluginHost(PluginContext(reactor), "plugins", packages=())
        host.load_all()
        (tmp_path / "plugins").mkdir()
        host.load_all()
    lines = [formatEvent(e) for e in logged.events if "plugin directory" in formatEvent(e)]
    where = os.path.join(str(tmp_path), "plugins")
    assert lines == [f"plugins: 0 running; plugin directory {where} (does not exist)",
                     f"plugins: 0 running; plugin directory {where}"]


@pytest_twisted.ensureDeferred
async def test_the_status_hook_is_asked_for_requests_and_callbacks_hear_the_phone(tmp_path: Path) -> None:
    """A pause made on the phone already happened on Asterisk: the status hook is not asked
    (it could neither block nor change it); bus callbacks hear it like any change."""
    s = await stack_on(sqlite_url(tmp_path))
    agents = await s.start()
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    write(plugin_dir, "watch", """
        from events import EVENT_AGENT_STATUS

        UCS_PLUGIN = "Watch"

        class Watch:
            def __init__(self, ucs):
                self.ucs = ucs
                self.asked = []
                self.heard = []
                ucs.agents.addChangeStatusHook(self.hook)
                ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

            def hook(self, agent, status, reason):
                self.asked.append((int(status), reason))
                return status, reason

            def changed(self, agent, args):
                self.heard.append((int(agent.status), agent.reason))

            def stop(self):
                self.ucs.agents.removeChangeStatusHook()
                self.ucs.removeCallback(EVENT_AGENT_STATUS, self.changed)
    """)
    p = PluginStack(s.store, plugin_dir, bus=s.bus, directory=s.directory, agents=agents)
    await p.start()
    try:
        watch = p.plugin("watch")
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.settle()
        assert (int(AUX), "Lunch") in watch.asked
        asked = len(watch.asked)
        other = await s.other_client()
        await other.action("QueuePause", Interface="SIP/1001", Paused="false")
        await s.settle()
        assert alice.status == READY
        assert watch.heard[-1] == (int(READY), "") and len(watch.asked) == asked
    finally:
        p.stop()
        await close(s)


@pytest_twisted.ensureDeferred
async def test_callbacks_left_registered_are_removed_not_called(sqlite_store: Any, tmp_path: Path) -> None:
    """The seed warns that callbacks not unregistered in stop() go on being called; UCS
    removes them (docs/plugins.md says why) and names each in a warning."""
    write(tmp_path, "forgetful", """
        from events import EVENT_AGENT_STATUS

        UCS_PLUGIN = "Forgetful"

        class Forgetful:
            def __init__(self, ucs):
                self.heard = []
                ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

            def changed(self, agent, args):
                self.heard.append(agent)

            def stop(self):
                pass  # forgets removeCallback
    """)
    p = PluginStack(sqlite_store, tmp_path)
    await p.start()
    try:
        plugin = p.plugin("forgetful")
        p.bus.publish("agent.status", {"status": 1})
        assert len(plugin.heard) == 1
        with LogCapture() as logged:
            await p.call(p.session(superuser=True), "plugins.unload", "forgetful")
        assert any("plugin forgetful left callback changed for agent.status registered when it stopped; removed"
                   in formatEvent(e) for e in logged.events)
        p.bus.publish("agent.status", {"status": 2})
        assert len(plugin.heard) == 1
    finally:
        p.stop()
