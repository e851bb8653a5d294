"""Each example plugin of seeds 000/001, as customers write them (only the
translation damage fixed, see plugins/examples/), copied into a plugin
directory, loaded, exercised through its hook — against the simulated
Asterisk over TCP where the hook concerns agents or calls — unloaded, and
shown to be gone."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from test_agents_harness import AgentStack, close, sqlite_url, stack_on
from test_control_stack import ALICE, Stack, started
from test_plugins_harness import SEEDS, LogCapture, PluginStack, logs_fixture, sqlite_store_fixture  # noqa: F401
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent

from ucs.calls.call import INCOMING
from ucs.constants import AgentStatus
from ucs.error import InvalidDataInput, PermissionDenied, ProcessingError
from ucs.events import EVENT_CALL_RINGING
from ucs.lookup import LookupService, StaticSource
from ucs.lookup.calls import CallerLookup
from ucs.plugins.shared import SharedData
from ucs.store import open_store

AUX, READY = AgentStatus.AUX, AgentStatus.READY


async def unload(p: PluginStack, name: str, session: Any = None) -> None:
    """``plugins.unload`` the seed ``name``; fails if its ``stop()`` left anything registered:
    the host then removes it itself and warns "plugin … left … registered when it stopped"
    (as tests/test_server_plugins.py checks).  Every seed unregisters what it registered."""
    with LogCapture() as logged:
        await p.call(session or p.session(superuser=True), "plugins.unload", name)
    left = [formatEvent(e) for e in logged.events if "registered when it stopped" in e.get("log_format", "")]
    assert not left, left


def copy_seed(name: str, directory: Path, as_name: str | None = None) -> Path:
    target = directory / f"{as_name or name}.py"
    shutil.copy(SEEDS / f"{name}.py", target)
    return target


async def agents_and_plugins(tmp_path: Path, *seeds: str) -> tuple[AgentStack, PluginStack]:
    s = await stack_on(sqlite_url(tmp_path))
    agents = await s.start()
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    for name in seeds:
        copy_seed(name, plugin_dir)
    p = PluginStack(s.store, plugin_dir, bus=s.bus, directory=s.directory, agents=agents)
    await p.start()
    return s, p


# --- v2.4.0: the example plugin (a thread, a bus callback, getAgents) ----------------------


@pytest_twisted.ensureDeferred
async def test_example_plugin_thread_callback_and_get_agents(tmp_path: Path, logs: LogCapture) -> None:
    s, p = await agents_and_plugins(tmp_path, "example")
    try:
        plugin = p.plugin("example")
        assert isinstance(plugin, threading.Thread) and plugin.is_alive()  # start() started the thread
        assert plugin.name == "ExamplePluginThread"
        agents = s.agents
        assert agents is not None
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()

        # The bus callback: fn(agent, args), agent['status'], agent['reason'], agent["displayname"].
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.settle()
        left = [e for e in logs.events if e.get("log_namespace") == "ucs.plugin.example"]
        assert [e["text"] for e in left] == ["Agent Alice Agent left for lunch"]
        assert left[0]["log_level"] == LogLevel.info and left[0]["ucs_plugin"] == "example"

        # The thread's loop: getAgents() from a thread that is not the reactor's.
        at_lunch = logs.wait_for("is at lunch")
        plugin.work.set()  # instead of waiting its 60 seconds
        event = await at_lunch
        assert event["text"] == "Agent Alice Agent is at lunch"

        # Unload: stop() ends the thread and removes the callback.
        await unload(p, "example")
        await deferToThread(plugin.join, 10)
        assert not plugin.is_alive()
        await agents.change_status(alice.id, "READY")
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.settle()
        assert len([e for e in logs.events if e.get("log_namespace") == "ucs.plugin.example"]) == 2
        assert not any("left" in t and "registered" in t for t in logs.texts(LogLevel.warn))
    finally:
        p.stop()
        await close(s)


# --- v2.4.0: the agent status change hook -----------------------------------------------------


def at_hour(hour: int) -> SimpleNamespace:
    """A stand-in for the plugin's ``time`` module: ``time.localtime().tm_hour``."""
    return SimpleNamespace(localtime=lambda: SimpleNamespace(tm_hour=hour))


@pytest_twisted.ensureDeferred
async def test_status_hook_plugin(tmp_path: Path, logs: LogCapture) -> None:
    s, p = await agents_and_plugins(tmp_path, "status_hook")
    try:
        agents = s.agents
        assert agents is not None
        await s.directory.add("auxreasons", {"name": "Getting to know the operating instructions"})
        module = p.module("status_hook")
        module.time = at_hour(9)

        # OFFLINE → READY at login becomes AUX with the plugin's reason.
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, "Getting to know the operating instructions")
        assert s.members("SIP/1001") == {("support", True, "Getting to know the operating instructions"),
                                         ("sales", True, "Getting to know the operating instructions")}
        # (None, reason) blocks with that reason; ProcessingError blocks too.
        with pytest.raises(ProcessingError, match="^It's too early for lunch$"):
            await agents.change_status(alice.id, "AUX", "Lunch")
        module.time = at_hour(18)
        with pytest.raises(ProcessingError, match="^It's time for dinner$"):
            await agents.change_status(alice.id, "AUX", "Lunch")
        assert alice.reason == "Getting to know the operating instructions"
        # Anything else goes through as requested.
        module.time = at_hour(12)
        await agents.change_status(alice.id, "AUX", "Lunch")
        await agents.change_status(alice.id, "READY")
        await s.settle()
        assert (alice.status, alice.reason) == (READY, "")

        # One plugin only: a second copy fails to construct, saying who holds it.
        copy_seed("status_hook", p.dir, "status_hook_copy")
        with pytest.raises(ProcessingError, match="already registered by plugin status_hook"):
            await p.call(p.session(superuser=True), "plugins.load", "status_hook_copy")

        # Unloaded: the hook is gone.
        await unload(p, "status_hook")
        assert agents.hook.fn is None
        bob = await agents.login(s.user("bob"), s.line("SIP/1002"))
        await s.settle()
        assert bob.status == READY
        module.time = at_hour(9)
        await agents.change_status(bob.id, "AUX", "Lunch")
        assert (bob.status, bob.reason) == (AUX, "Lunch")
        # Now the copy can have it.
        await p.call(p.session(superuser=True), "plugins.load", "status_hook_copy")
        assert agents.hook.fn is not None
    finally:
        p.stop()
        await close(s)


# --- v3.1.0: the shared data change hook ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_shared_data_hook_plugin(sqlite_store: Any, tmp_path: Path, logs: LogCapture) -> None:
    p = PluginStack(sqlite_store, tmp_path)
    copy_seed("shared_data_hook", tmp_path)
    await p.start()  # users: admin (1), alice (2), bob (3)
    try:
        boss = p.session(superuser=True)  # shared data is the whole centre's
        stored = await p.call(boss, "shared.set", "agent_emails", {"alice": 3, "nobody": 1})
        assert stored == {2: 3}  # usernames became user ids
        assert p.shared.get("agent_emails") == {2: 3}
        assert "Unknown username: nobody" in logs.texts(LogLevel.warn, "ucs.plugin.shared_data_hook")
        await p.call(boss, "shared.set", "agent_emails", {"alice": 5, "bob": 1})
        assert "User ID 2 email count changed from 3 to 5" in logs.texts(LogLevel.debug, "ucs.plugin")
        assert await p.call(p.session(), "shared.get", "agent_emails") == {2: 5, 3: 1}

        # ProcessingError blocks the change; the caller gets it.
        with pytest.raises(ProcessingError, match="^Only associative array is accepted$"):
            await p.call(boss, "shared.set", "agent_emails", [1, 2])
        assert p.shared.get("agent_emails") == {2: 5, 3: 1}
        # Other identifiers are not the hook's business.
        assert await p.call(boss, "shared.set", "other", [1, 2]) == [1, 2]

        # One hook per identifier.
        copy_seed("shared_data_hook", tmp_path, "shared_copy")
        with pytest.raises(ProcessingError, match="'agent_emails' already has a change hook .by plugin shared_data_hook"):
            await p.call(p.session(superuser=True), "plugins.load", "shared_copy")

        # Persisted, integer keys and all.
        again = SharedData(sqlite_store)
        await again.load()
        assert again.get("agent_emails") == {2: 5, 3: 1} and again.get("other") == [1, 2]

        # Unloaded: data is stored as given.
        await unload(p, "shared_data_hook")
        assert await p.call(boss, "shared.set", "agent_emails", {"alice": 1}) == {"alice": 1}
    finally:
        p.stop()


@pytest_twisted.ensureDeferred
async def test_shared_data_hook_failing_stores_the_data_as_requested(sqlite_store: Any, tmp_path: Path,
                                                                    logs: LogCapture) -> None:
    p = PluginStack(sqlite_store, tmp_path)
    await p.start()
    try:
        boss = p.session(superuser=True)  # shared data is the whole centre's
        await p.call(boss, "shared.set", "agent_emails", ["not", "a", "dict"])
        copy_seed("shared_data_hook", tmp_path)
        await p.call(p.session(superuser=True), "plugins.load", "shared_data_hook")
        # The hook calls old_data.get() on a list: AttributeError → stored as requested, logged.
        assert await p.call(boss, "shared.set", "agent_emails", {"alice": 2}) == {"alice": 2}
        failure = next(e for e in logs.events if "log_failure" in e and e.get("identifier") == "agent_emails")
        assert failure["plugin"] == "shared_data_hook"
        assert "AttributeError" in failure["log_failure"].getTraceback()
        # Roles: agents read, superusers write (a supervisor's rights end at their queues and teams).
        with pytest.raises(PermissionDenied):
            await p.call(p.session(), "shared.set", "agent_emails", {})
        with pytest.raises(PermissionDenied, match="shared.set needs the superuser role; this session has supervisor"):
            await p.call(p.session(supervisor=True), "shared.set", "agent_emails", {})
        with pytest.raises(InvalidDataInput, match="identifier"):
            await p.call(boss, "shared.set", "", {})
    finally:
        p.stop()


# --- v3.8.0: API middleware -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_middleware_plugin(sqlite_store: Any, tmp_path: Path, logs: LogCapture) -> None:
    p = PluginStack(sqlite_store, tmp_path)
    copy_seed("middleware", tmp_path)
    await p.start()
    try:
        su = p.session(superuser=True)
        admin = await p.call(su, "config.users.get", 1)
        assert admin["username"] == "admin"
        dev = [e for e in logs.events if e.get("ucs_level") == "dev"]
        assert [e["text"].split(":")[0] for e in dev] == ["Middleware get_user args", "Middleware get_user result"]
        assert dev[0]["log_level"] == LogLevel.debug and dev[0]["log_namespace"] == "ucs.plugin.middleware"

        with pytest.raises(InvalidDataInput) as e:
            await p.call(su, "config.users.edit", {"id": 1, "username": "root"})
        assert e.value.to_dict() == {"code": 400, "error": "invalid_data",
                                     "message": "username: Admin username can't be changed",
                                     "fields": {"username": "Admin username can't be changed"}}
        with pytest.raises(InvalidDataInput, match="password: Admin password is too short"):
            await p.call(su, "config.users.edit", {"id": 1, "password": "short"})
        edited = await p.call(su, "config.users.edit", {"id": 1, "displayname": "Boss"})
        assert edited["displayname"] == "Boss"
        with pytest.raises(PermissionDenied, match="^This UCS forbids user removal$"):
            await p.call(su, "config.users.delete", 3)
        assert 3 in p.directory.users

        await unload(p, "middleware", su)
        assert (await p.call(su, "config.users.edit", {"id": 1, "username": "root"}))["username"] == "root"
        assert (await p.call(su, "config.users.delete", 3))["deleted"] is True
    finally:
        p.stop()


@pytest_twisted.ensureDeferred
async def test_middleware_of_several_plugins_runs_in_the_order_added(sqlite_store: Any, tmp_path: Path) -> None:
    for name in ("a_outer", "b_inner"):
        (tmp_path / f"{name}.py").write_text(
            "UCS_PLUGIN = 'M'\n"
            "class M:\n"
            "    def __init__(self, ucs):\n"
            "        self.ucs = ucs\n"
            "        ucs.api.addMiddleware('config.users.get', self.mw)\n"
            "    def mw(self, handler, session, user_id):\n"
            "        r = handler(session, user_id)  # config.users.get answers at once: a dict\n"
            "        return {**r, 'via': r.get('via', []) + [self.ucs.name]}\n"
            "    def stop(self):\n"
            "        self.ucs.api.removeMiddleware('config.users.get', self.mw)\n"
        )
    p = PluginStack(sqlite_store, tmp_path)
    await p.start()
    try:
        su = p.session(superuser=True)
        # a_outer was added first: it is outermost and sees the result last.
        assert (await p.call(su, "config.users.get", 1))["via"] == ["b_inner", "a_outer"]
        await p.call(su, "plugins.load", "a_outer")  # reloaded: now added last, innermost
        assert (await p.call(su, "config.users.get", 1))["via"] == ["a_outer", "b_inner"]
    finally:
        p.stop()


# --- v4.38.0: the CDR metadata transformer (printed without UCS_PLUGIN; the example adds it) ----


@pytest_twisted.ensureDeferred
async def test_metadata_transformer_plugin(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    s = await started(store=store)
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    copy_seed("metadata_transformer", plugin_dir)
    p = PluginStack(store, plugin_dir, bus=s.bus, call_control=s.control)
    await p.start(users=False)
    try:
        assert p.host.get("metadata_transformer").class_name == "MetadataTransformer"
        call = await s.incoming()
        got = await s.control.cdr_metadata(call.uniqueid, {"call_code": ["Warranty claim", "Out-of-warranty"]})
        assert got == {"accountcode": "Warranty claim|Out-of-warranty"}
        assert call.account_code == "Warranty claim|Out-of-warranty"

        # One transformer: a second plugin is refused, naming the holder.
        copy_seed("metadata_transformer", plugin_dir, "metadata_copy")
        with pytest.raises(ProcessingError, match="already set by plugin metadata_transformer"):
            await p.call(p.session(superuser=True), "plugins.load", "metadata_copy")

        await unload(p, "metadata_transformer")
        got = await s.control.cdr_metadata(call.uniqueid, {"call_code": ["Other"]})
        assert got["call_code"] == ["Other"] and call.account_code == "Warranty claim|Out-of-warranty"

        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        cdr = await store.get_cdr(call.uniqueid)
        assert cdr["metadata"] == {"accountcode": "Warranty claim|Out-of-warranty", "call_code": ["Other"]}
    finally:
        p.stop()
        await s.stop()
        await store.close()


# --- v4.39.0: the caller lookup transformer (printed without UCS_PLUGIN; the example adds it) ---


@pytest_twisted.ensureDeferred
async def test_lookup_transformer_plugin_on_a_simulated_call(tmp_path: Path, sqlite_store: Any) -> None:
    s: Stack = await started()
    lookups = LookupService([StaticSource(4, {
        "420777123456": {"name": "Our Customer", "external_id": "C-17", "companies": ["First", "Second"]},
    })])
    filler = CallerLookup(lookups, s.bus, s.clock, normalized=False)
    s.tracker.observers.insert(0, filler)
    p = PluginStack(sqlite_store, tmp_path, bus=s.bus, lookups=lookups)
    copy_seed("lookup_transformer", tmp_path)
    await p.start(users=False)
    ringing: list[str] = []
    s.bus.subscribe(EVENT_CALL_RINGING, lambda call, args: ringing.append(call.name))
    try:
        call = await s.incoming()  # the lab's customer is 420777123456
        assert call.direction == INCOMING
        assert call.name == "?Our Customer"
        assert ringing and set(ringing) == {"?Our Customer"}  # named before the agent's phone rang
        assert call.data["companies"] == ["First", "Second"]
        assert call.external_id == "C-17"
        await s.settle(s.control.hangup(ALICE))

        await unload(p, "lookup_transformer")
        await s.advance(1)
        ringing.clear()
        call = await s.incoming(agent="SIP/1002", name="Bob Agent")
        assert call.name == "Our Customer"
    finally:
        p.stop()
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_lookup_transformer_plugin_names_unknown_callers(tmp_path: Path, sqlite_store: Any) -> None:
    lookups = LookupService([StaticSource(4, {})])
    p = PluginStack(sqlite_store, tmp_path, lookups=lookups)
    copy_seed("lookup_transformer", tmp_path)
    await p.start(users=False)
    try:
        facade = p.host.get("lookup_transformer").facade
        assert facade is not None
        found = await facade.lookups.lookup("123")
        assert found == {"lookup_id": 4, "number": "123", "name": "Dang!", "external_id": "", "data": {}}
        # Another plugin may not take the transformer while this one has it.
        copy_seed("lookup_transformer", tmp_path, "lookup_copy")
        with pytest.raises(ProcessingError, match="already set by plugin lookup_transformer"):
            await p.call(p.session(superuser=True), "plugins.load", "lookup_copy")
    finally:
        p.stop()
