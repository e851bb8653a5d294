"""The plugin loader: v2.4.0's rules, the class rule for files without
UCS_PLUGIN, failures reported and survived, reload of an edited file,
unload, shutdown, the seeds' module names kept to plugins, and the API's
superuser-only methods."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_plugins_harness import FakeTimer, LogCapture, PluginStack, logs_fixture, sqlite_store_fixture, write  # noqa: F401
from twisted.logger import LogLevel

from ucs.error import InvalidDataInput, NotFound, PermissionDenied, ProcessingError
from ucs.events import EVENT_AGENT_STATUS, EVENT_CALL_NEW
from ucs.plugins import importer

COUNTER = """
    from events import EVENT_AGENT_STATUS

    UCS_PLUGIN = "Counter"
    VERSION = {version}


    class Counter:
        def __init__(self, ucs):
            self.ucs = ucs
            self.seen = []
            self.started = self.stopped = 0
            ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

        def start(self):
            self.started += 1

        def changed(self, agent, args):
            self.seen.append((VERSION, agent, args))

        def stop(self):
            self.stopped += 1
            self.ucs.removeCallback(EVENT_AGENT_STATUS, self.changed)
"""


@pytest.fixture
def stack(sqlite_store: Any, tmp_path: Path) -> Any:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    s = PluginStack(sqlite_store, plugins)
    yield s
    s.stop()


# --- v2.4.0: what is loaded ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_files_with_ucs_plugin_are_loaded_started_and_called(stack: PluginStack) -> None:
    write(stack.dir, "counter", COUNTER.format(version=1))
    write(stack.dir, "__init__", "raise RuntimeError('never imported')")
    write(stack.dir, "helpers", "VALUE = 1  # no UCS_PLUGIN, no class: skipped")
    (stack.dir / "notes.txt").write_text("not python")
    await stack.start()
    counter = stack.plugin("counter")
    assert counter.started == 1 and counter.ucs.name == "counter"
    stack.bus.publish(EVENT_AGENT_STATUS, "agent-1", status=2, reason="Lunch")
    assert counter.seen == [(1, "agent-1", {"status": 2, "reason": "Lunch"})]
    states = {p["name"]: p["state"] for p in stack.host.list_plugins()}
    assert states == {"counter": "running", "helpers": "skipped"}
    assert "__init__" not in states


@pytest_twisted.ensureDeferred
async def test_unload_calls_stop_and_the_callbacks_are_gone(stack: PluginStack) -> None:
    write(stack.dir, "counter", COUNTER.format(version=1))
    await stack.start()
    counter = stack.plugin("counter")
    described = stack.host.unload("counter")
    assert described["state"] == "stopped" and counter.stopped == 1
    stack.bus.publish(EVENT_AGENT_STATUS, "agent-1", status=1, reason="")
    assert counter.seen == []
    with pytest.raises(ProcessingError, match="not running"):
        stack.host.unload("counter")


@pytest_twisted.ensureDeferred
async def test_shutdown_stops_every_plugin_last_loaded_first(stack: PluginStack) -> None:
    order = """
        UCS_PLUGIN = "P"
        class P:
            def __init__(self, ucs):
                self.ucs = ucs
            def stop(self):
                import events  # plugin imports work in stop() too
                self.ucs.stopped_order.append(self.ucs.name)
    """
    for name in ("a_first", "b_second", "c_third"):
        write(stack.dir, name, order)
    await stack.start()
    stopped: list[str] = []
    for name in ("a_first", "b_second", "c_third"):
        stack.host.get(name).facade.stopped_order = stopped  # type: ignore[union-attr]
    stack.host.stopService()
    assert stopped == ["c_third", "b_second", "a_first"]
    assert stack.host.running_plugins() == []


@pytest_twisted.ensureDeferred
async def test_a_file_without_ucs_plugin_is_skipped_as_the_seed_says(stack: PluginStack) -> None:
    # Seed 000 (v2.4.0): "If the variable is not in the file, then it is skipped" -- even
    # a file with one class that looks like a plugin (v4.38/v4.39 style): it is never
    # constructed, and the skip names the line to add.
    write(stack.dir, "transformer", """
        from typing import Any

        CONSTRUCTED = []

        class _Helper:
            def stop(self): ...

        class Mapping(dict):
            pass

        class Transformer:
            def __init__(self, ucs):
                CONSTRUCTED.append(ucs)
            def stop(self):
                pass
    """)
    # Two candidate classes: skipped, saying how to choose.
    write(stack.dir, "two", """
        class A:
            def __init__(self, ucs): ...
            def stop(self): ...
        class B:
            def __init__(self, ucs): ...
            def stop(self): ...
    """)
    # A class whose constructor takes no ucs is no plugin.
    write(stack.dir, "noucs", """
        class Thing:
            def __init__(self): ...
            def stop(self): ...
    """)
    await stack.start()
    listed = {p["name"]: p for p in await stack.call(stack.session(superuser=True), "plugins.list")}
    transformer = listed["transformer"]
    assert transformer["state"] == "skipped" and stack.plugin("transformer") is None
    assert 'add UCS_PLUGIN = "Transformer" to the file or set [plugins] classes.transformer' in transformer["error"]
    with pytest.raises(ProcessingError, match="no UCS_PLUGIN"):
        await stack.call(stack.session(superuser=True), "plugins.load", "transformer")
    two = stack.host.get("two")
    assert two.state == "skipped" and "to run one of its classes (A, B)" in two.error
    assert "classes.two" in two.error
    assert stack.host.get("noucs").state == "skipped"
    # Named by UCS_PLUGIN, it runs.
    write(stack.dir, "transformer", """
        UCS_PLUGIN = "Transformer"

        class Transformer:
            def __init__(self, ucs):
                self.ucs = ucs
            def stop(self):
                pass
    """)
    await stack.call(stack.session(superuser=True), "plugins.load", "transformer")
    assert type(stack.plugin("transformer")).__name__ == "Transformer"


@pytest_twisted.ensureDeferred
async def test_a_class_named_in_the_config(sqlite_store: Any, tmp_path: Path) -> None:
    write(tmp_path, "two", """
        class A:
            def __init__(self, ucs): self.ucs = ucs
            def stop(self): ...
        class B:
            def __init__(self, ucs): self.ucs = ucs
            def stop(self): ...
    """)
    s = PluginStack(sqlite_store, tmp_path, classes={"two": "B"})
    await s.start()
    try:
        assert type(s.plugin("two")).__name__ == "B"
        assert s.host.get("two").class_name == "B"
    finally:
        s.stop()


# --- failures are reported, and the server goes on ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_broken_plugins_are_reported_and_the_rest_runs(stack: PluginStack, logs: LogCapture) -> None:
    write(stack.dir, "a_syntax", "UCS_PLUGIN = 'X'\ndef broken(:\n")
    write(stack.dir, "b_import", "import no_such_module_anywhere\nUCS_PLUGIN = 'X'\n")
    write(stack.dir, "c_construct", """
        UCS_PLUGIN = "P"
        from events import EVENT_CALL_NEW
        class P:
            def __init__(self, ucs):
                ucs.addCallback(EVENT_CALL_NEW, self.seen)  # registered, then the constructor fails
                raise ValueError("bad configuration value")
            def seen(self, call, args):
                raise AssertionError("a plugin that failed to construct is never called")
    """)
    write(stack.dir, "d_start", """
        UCS_PLUGIN = "P"
        class P:
            stopped = False
            def __init__(self, ucs): self.ucs = ucs
            def start(self): 1 / 0
            def stop(self): self.ucs.log.info("d_start stopped")
    """)
    write(stack.dir, "e_name", "UCS_PLUGIN = 'Missing'\n")
    write(stack.dir, "f_exit", "import sys\nsys.exit(3)\n")
    write(stack.dir, "z_good", COUNTER.format(version=1))
    await stack.start()
    assert stack.host.running_plugins() == ["z_good"]
    errors = {p["name"]: p["error"] for p in stack.host.list_plugins() if p["state"] == "failed"}
    assert set(errors) == {"a_syntax", "b_import", "c_construct", "d_start", "e_name", "f_exit"}
    assert "failed to import: " in errors["a_syntax"] and "SyntaxError" in errors["a_syntax"]
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in errors["b_import"]
    assert "failed to construct: ValueError: bad configuration value" in errors["c_construct"]
    assert "failed to start: ZeroDivisionError" in errors["d_start"]
    assert "UCS_PLUGIN names 'Missing', which the file does not define" in errors["e_name"]
    assert "SystemExit: 3" in errors["f_exit"]
    for name, error in errors.items():
        assert str(stack.dir / f"{name}.py") in error
    # The traceback, file and plugin are in the log.
    failure = next(e for e in logs.events if e.get("plugin") == "c_construct" and "log_failure" in e)
    assert failure["file"] == str(stack.dir / "c_construct.py")
    assert "bad configuration value" in failure["log_failure"].getTraceback()
    # What the failed constructor registered is gone.
    stack.bus.publish(EVENT_CALL_NEW, "call")
    assert any("left callback seen for call.new registered" in t for t in logs.texts(LogLevel.warn))
    # start() failed: stop() was called; the module is gone.
    assert logs.having("d_start stopped")
    assert stack.module("d_start") is None and "ucs.plugins.files.d_start" not in sys.modules
    # Through the API: a clear message.
    su = stack.session(superuser=True)
    with pytest.raises(ProcessingError) as e:
        await stack.call(su, "plugins.load", "c_construct")
    assert str(e.value).startswith(f"plugin c_construct ({stack.dir / 'c_construct.py'}) failed to construct: "
                                   "ValueError: bad configuration value")
    assert str(e.value).endswith("the traceback is in the server log")


@pytest_twisted.ensureDeferred
async def test_load_of_unknown_or_bad_names(stack: PluginStack) -> None:
    await stack.start()
    su = stack.session(superuser=True)
    with pytest.raises(NotFound, match="there is no plugin 'nothing'"):
        await stack.call(su, "plugins.load", "nothing")
    for bad in ("../etc/passwd", "a/b", "", ".hidden"):
        with pytest.raises(InvalidDataInput, match="is not a plugin name"):
            await stack.call(su, "plugins.load", bad)
    write(stack.dir, "helpers", "X = 1\n")
    with pytest.raises(ProcessingError, match=r"helpers.py is not a plugin: no UCS_PLUGIN"):
        await stack.call(su, "plugins.load", "helpers")


# --- reload -------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_load_of_a_running_plugin_stops_it_and_picks_up_the_edited_file(stack: PluginStack) -> None:
    write(stack.dir, "counter", COUNTER.format(version=1))
    await stack.start()
    old = stack.plugin("counter")
    write(stack.dir, "counter", COUNTER.format(version=2))  # same size, same second: still picked up
    su = stack.session(superuser=True)
    described = await stack.call(su, "plugins.load", "counter.py")
    assert described["state"] == "running" and described["name"] == "counter"
    new = stack.plugin("counter")
    assert new is not old and old.stopped == 1 and new.started == 1
    stack.bus.publish(EVENT_AGENT_STATUS, "agent", status=1)
    assert old.seen == [] and [v for v, *_ in new.seen] == [2]
    assert not list(stack.dir.glob("__pycache__"))  # nothing written into the plugin directory


@pytest_twisted.ensureDeferred
async def test_reload_of_a_file_that_no_longer_imports_keeps_the_running_version(stack: PluginStack) -> None:
    write(stack.dir, "counter", COUNTER.format(version=1))
    await stack.start()
    running = stack.plugin("counter")
    write(stack.dir, "counter", COUNTER.format(version="1 +"))
    su = stack.session(superuser=True)
    with pytest.raises(ProcessingError, match="failed to import: .*SyntaxError.*the running version was kept"):
        await stack.call(su, "plugins.load", "counter")
    assert stack.plugin("counter") is running and running.stopped == 0
    stack.bus.publish(EVENT_AGENT_STATUS, "agent", status=1)
    assert len(running.seen) == 1
    listed = next(p for p in stack.host.list_plugins() if p["name"] == "counter")
    assert listed["state"] == "running" and "the running version was kept" in listed["error"]


@pytest_twisted.ensureDeferred
async def test_a_new_file_is_loaded_by_name_and_listed_until_then(stack: PluginStack) -> None:
    await stack.start()
    write(stack.dir, "later", COUNTER.format(version=7))
    su = stack.session(superuser=True)
    listed = await stack.call(su, "plugins.list")
    assert [(p["name"], p["state"]) for p in listed] == [("later", "available")]
    await stack.call(su, "plugins.load", "later")
    listed = await stack.call(su, "plugins.list")
    assert [(p["name"], p["state"], p["class"], p["kind"]) for p in listed] == [
        ("later", "running", "Counter", "file")]
    await stack.call(su, "plugins.unload", "later")
    assert (await stack.call(su, "plugins.list"))[0]["state"] == "stopped"


# --- leftovers ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_what_a_plugin_leaves_registered_is_removed_with_a_warning(stack: PluginStack,
                                                                          logs: LogCapture) -> None:
    write(stack.dir, "sloppy", """
        from events import EVENT_AGENT_STATUS
        UCS_PLUGIN = "Sloppy"
        class Sloppy:
            calls = []
            def __init__(self, ucs):
                ucs.addCallback(EVENT_AGENT_STATUS, self.changed)
                ucs.api.addMiddleware("config.users.get", self.mw)
                ucs.shared.addChangeHook("counts", self.hook)
                ucs.lookups.set_lookup_transformer(self.transform)
            def changed(self, agent, args): Sloppy.calls.append("callback")
            def mw(self, handler, *args):
                Sloppy.calls.append("middleware")
                return handler(*args)
            def hook(self, identifier, old, new):
                Sloppy.calls.append("hook")
                return new
            def transform(self, lookup_id, number, data):
                Sloppy.calls.append("transform")
                return data
            def stop(self):
                pass  # forgets to unregister
    """)
    await stack.start()
    cls = type(stack.plugin("sloppy"))
    stack.host.unload("sloppy")
    warning = next(t for t in logs.texts(LogLevel.warn) if "plugin sloppy left" in t)
    for what in ("callback changed for agent.status", "middleware mw of config.users.get",
                 "shared data hook for 'counts'", "lookup transformer"):
        assert what in warning
    su = stack.session(superuser=True)
    stack.bus.publish(EVENT_AGENT_STATUS, "agent")
    await stack.call(su, "config.users.get", 1)
    await stack.call(su, "shared.set", "counts", {"a": 1})
    await stack.lookups.lookup("123")
    assert cls.calls == []
    # A lingering reference to the facade (a thread) cannot register again.
    facade = stack.host.get("sloppy").facade
    with pytest.raises(ProcessingError, match="plugin sloppy is unloaded"):
        facade.addCallback(EVENT_AGENT_STATUS, lambda *a: None)  # type: ignore[union-attr]


# --- the seeds' module names ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_seed_module_names_work_in_plugins_only(stack: PluginStack) -> None:
    write(stack.dir, "imports", """
        import constants
        import events as ev
        from error import ProcessingError
        from constants import AGENT_AUX, AgentStatus
        import json  # the real one, not the plugin file below
        UCS_PLUGIN = "Imports"
        class Imports:
            def __init__(self, ucs):
                self.at_load = (constants.__name__, ev.__name__, ProcessingError.__module__, json.__name__)
            def later(self):
                import error  # inside a method: still mapped
                from constants import AGENT_READY
                return error.__name__, int(AGENT_READY)
            def stop(self): ...
    """)
    write(stack.dir, "json", "UCS_PLUGIN = 'J'\nclass J:\n    def __init__(self, ucs): ...\n")
    await stack.start()
    plugin = stack.plugin("imports")
    assert plugin.at_load == ("ucs.constants", "ucs.events", "ucs.error", "json")
    assert plugin.later() == ("ucs.error", 1)
    # Plugin modules have private names; nothing is shadowed.
    assert type(plugin).__module__ == "ucs.plugins.files.imports"
    assert sys.modules["ucs.plugins.files.imports"] is stack.module("imports")
    import json

    assert json.dumps is sys.modules["json"].dumps and not hasattr(json, "J")
    assert type(stack.plugin("json")).__module__ == "ucs.plugins.files.json"
    # Outside plugins the seeds' names do not exist.
    for name in ("constants", "events", "error"):
        assert name not in sys.modules
        with pytest.raises(ImportError):
            importlib.import_module(name)
        with pytest.raises(ImportError):
            exec(f"import {name}", {})
    # Unloaded: the module is gone from sys.modules.
    stack.host.unload("imports")
    assert "ucs.plugins.files.imports" not in sys.modules


def test_module_names_never_collide() -> None:
    assert importer.module_name("a_b") == "ucs.plugins.files.a_b"
    assert importer.module_name("a-b") != importer.module_name("a_b")
    assert importer.module_name("1st").startswith("ucs.plugins.files._1st")


# --- the API: superuser only -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_plugin_methods_are_refused_to_everyone_but_superusers(stack: PluginStack) -> None:
    write(stack.dir, "counter", COUNTER.format(version=1))
    await stack.start()
    for session in (stack.session(), stack.session(supervisor=True), stack.sessions.create()):
        for method, args in (("plugins.load", ["counter"]), ("plugins.unload", ["counter"]),
                             ("plugins.list", [])):
            with pytest.raises(PermissionDenied, match=f"{method} needs the superuser role"):
                await stack.call(session, method, *args)
    # A plugin calling the API as an agent's session is refused the same way.
    agent = stack.session()
    facade = stack.host.get("counter").facade
    with pytest.raises(PermissionDenied):
        await facade.api.plugins.unload(agent.sid, "counter")  # type: ignore[union-attr]
    assert stack.host.running_plugins() == ["counter"]
    # ... and allowed with its own superuser session.
    listed = await facade.api.plugins.list(facade.sid)  # type: ignore[union-attr]
    assert listed[0]["name"] == "counter"


# --- hooks must be fast ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_slow_hook_is_logged_with_its_name_and_time(sqlite_store: Any, tmp_path: Path,
                                                           logs: LogCapture) -> None:
    timer = FakeTimer()
    s = PluginStack(sqlite_store, tmp_path, timer=timer, budget=0.05)
    write(tmp_path, "slow", COUNTER.format(version=1))
    write(tmp_path, "slowmw", """
        UCS_PLUGIN = "M"
        class M:
            def __init__(self, ucs):
                ucs.api.addMiddleware("config.users.get", self.mw)
            def mw(self, handler, *args):
                return handler(*args)
            def stop(self): ...
    """)
    await s.start()
    try:
        timer.step = 0.2
        s.bus.publish(EVENT_AGENT_STATUS, "agent")
        timer.step = 0.0
        slow = [e for e in logs.events if e.get("hook") == "callback for agent.status"]
        assert len(slow) == 1 and slow[0]["plugin"] == "slow" and slow[0]["seconds"] == pytest.approx(0.2)
        assert "plugin slow: callback for agent.status took 200 ms on the reactor thread (budget 50 ms)" \
            in logs.texts(LogLevel.warn)[-1]
        listed = next(p for p in s.host.list_plugins() if p["name"] == "slow")
        assert listed["slow_hooks"] == 1 and listed["slowest_hook"]["hook"] == "callback for agent.status"
        # Middleware is timed without the handler it calls.
        timer.step = 0.03  # 4 readings: the middleware's own share is 2 steps = 60 ms
        await s.call(s.session(superuser=True), "config.users.get", 1)
        timer.step = 0.0
        mw = [e for e in logs.events if e.get("hook") == "middleware of config.users.get"]
        assert len(mw) == 1 and mw[0]["seconds"] == pytest.approx(0.06)
    finally:
        s.stop()


@pytest_twisted.ensureDeferred
async def test_the_minimal_plugin_of_the_docs(stack: PluginStack, logs: LogCapture) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    code = text.split("A minimal plugin file:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (stack.dir / "lunch.py").write_text(code, encoding="utf-8")
    await stack.start()

    class Agent(dict):
        pass

    stack.bus.publish(EVENT_AGENT_STATUS, Agent(status=2, reason="Lunch", displayname="Alice Agent"))
    assert "Alice Agent left for lunch" in logs.texts(LogLevel.info, "ucs.plugin.lunch")
    stack.host.unload("lunch")
    assert not any("left" in t and "registered" in t for t in logs.texts(LogLevel.warn))
