"""The ``ucs`` facade: the seed's log levels, ucs.tree, ucs.api paths, and
plugin threads using the facade safely (their calls run on the reactor)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_plugins_harness import LogCapture, PluginStack, logs_fixture, sqlite_store_fixture, write  # noqa: F401
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel

from ucs.error import InvalidDataInput, MethodNotFound, NotFound, ProcessingError
from ucs.events import EVENT_SHARED_CHANGE
from ucs.plugins.facade import PluginContext, UCS


@pytest.fixture
def stack(sqlite_store: Any, tmp_path: Path) -> Any:
    s = PluginStack(sqlite_store, tmp_path)
    yield s
    s.stop()


PLAIN = """
    UCS_PLUGIN = "P"
    class P:
        def __init__(self, ucs):
            self.ucs = ucs
        def stop(self): ...
"""


@pytest_twisted.ensureDeferred
async def test_log_levels_of_the_seed(stack: PluginStack, logs: LogCapture) -> None:
    write(stack.dir, "talker", PLAIN)
    await stack.start()
    log = stack.plugin("talker").ucs.log
    log.dev("dev %s", 1)
    log.dbug("User ID %d email count changed from %s to %s", 2, 3, 5)
    log.info(f"an f-string with {{braces}} {1}")
    log.warn("Unknown username: %s", "nobody")
    log.error("bad %d", "not a number")  # the arguments do not fit: logged anyway
    try:
        raise KeyError("x")
    except KeyError:
        log.exception("while doing %s", "things")
    mine = [e for e in logs.events if e.get("log_namespace") == "ucs.plugin.talker"]
    assert [(e["ucs_level"], e["log_level"], e["text"]) for e in mine] == [
        ("dev", LogLevel.debug, "dev 1"),
        ("dbug", LogLevel.debug, "User ID 2 email count changed from 3 to 5"),
        ("info", LogLevel.info, "an f-string with {braces} 1"),
        ("warn", LogLevel.warn, "Unknown username: nobody"),
        ("error", LogLevel.error, "bad %d ('not a number',)"),
        ("error", LogLevel.error, "while doing things"),
    ]
    assert "KeyError" in mine[-1]["log_failure"].getTraceback()
    assert all(e["ucs_plugin"] == "talker" for e in mine)


@pytest_twisted.ensureDeferred
async def test_tree(stack: PluginStack) -> None:
    write(stack.dir, "tree", PLAIN)
    await stack.start()
    tree = stack.plugin("tree").ucs.tree
    assert tree.getUsers("username") == {1: "admin", 2: "alice", 3: "bob"}
    assert tree.getUsers("displayname")[2] == "Alice Agent"
    assert "password_hash" not in tree.getUsers()[1]
    with pytest.raises(InvalidDataInput, match="user has no field 'password_hash'; fields: data, displayname"):
        tree.getUsers("password_hash")
    await stack.directory.add("queues", {"name": "Support", "asterisk_name": "support"})
    assert tree.getQueues("name") == {1: "Support"}
    assert tree.getGroups() == {} and tree.getTeams() == {} and tree.getLines() == {}


@pytest_twisted.ensureDeferred
async def test_api_paths(stack: PluginStack) -> None:
    write(stack.dir, "caller", PLAIN)
    await stack.start()
    ucs = stack.plugin("caller").ucs
    assert (await ucs.api.config.users.get(ucs.sid, 2))["username"] == "alice"
    assert (await ucs.api.config.users.get(ucs.sid, id=3))["username"] == "bob"
    assert (await ucs.api.config.users.get(None, 1))["username"] == "admin"  # None: the plugin's own session
    with pytest.raises(MethodNotFound, match="there is no API method 'config.user.get'"):
        await ucs.api.config.user.get(ucs.sid, 2)
    with pytest.raises(NotFound, match="session 'nope' does not exist"):
        await ucs.api.config.users.get("nope", 2)
    with pytest.raises(InvalidDataInput, match="either all positional or all by name"):
        ucs.api.config.users.get(ucs.sid, 2, id=2)
    with pytest.raises(TypeError):
        ucs.api(ucs.sid)
    with pytest.raises(MethodNotFound):
        ucs.api.addMiddleware("no.such.method", lambda h, *a: h(*a))
    assert repr(ucs.api.config.users) == "<ucs.api config.users>"
    # ucs.api.cdr is both the cdr.* methods and the metadata transformer.
    with pytest.raises(MethodNotFound, match="'cdr.metadata'"):
        await ucs.api.cdr.metadata(ucs.sid, "1.1", {})
    with pytest.raises(ProcessingError, match="call control is not available"):
        ucs.api.cdr.set_metadata_transformer(lambda uid, meta: None)
    # Its session is a superuser's, closed when the plugin is unloaded.
    sid = ucs.sid
    assert stack.sessions.get(sid).kind == "plugin"
    stack.host.unload("caller")
    with pytest.raises(NotFound):
        stack.sessions.get(sid)


@pytest_twisted.ensureDeferred
async def test_parts_missing_from_this_ucs_say_so(stack: PluginStack) -> None:
    write(stack.dir, "lonely", PLAIN)
    await stack.start()
    ucs = stack.plugin("lonely").ucs
    with pytest.raises(ProcessingError, match="the agents service is not available in this UCS"):
        ucs.agents.getAgents()
    with pytest.raises(ProcessingError, match="the agents service is not available"):
        ucs.agents.addChangeStatusHook(lambda a, s, r: (s, r))


# --- threads ---------------------------------------------------------------------------------------

THREADED = """
    import threading
    from events import EVENT_SHARED_CHANGE

    UCS_PLUGIN = "Worker"

    class Worker(threading.Thread):
        def __init__(self, ucs):
            super().__init__(name="WorkerPluginThread")
            self.ucs = ucs
            self.results = {}
            self.changes = []

        def changed(self, identifier, args):
            self.changes.append((threading.current_thread().name, identifier, args["data"]))

        def run(self):
            ucs = self.ucs
            r = self.results
            r["thread"] = threading.current_thread().name
            r["users"] = ucs.tree.getUsers("username")
            r["user"] = ucs.api.config.users.get(ucs.sid, 2)        # the value, not a Deferred
            ucs.addCallback(EVENT_SHARED_CHANGE, self.changed)
            r["stored"] = ucs.shared.set("counts", {"a": 1})          # waits until stored
            r["read"] = ucs.shared.get("counts")
            try:
                ucs.api.no.such.method(ucs.sid)
            except Exception as e:
                r["error"] = type(e).__name__
            ucs.log.info("worker done")

        def stop(self):
            pass
"""


@pytest_twisted.ensureDeferred
async def test_a_plugin_thread_uses_the_facade_safely(stack: PluginStack, logs: LogCapture) -> None:
    write(stack.dir, "worker", THREADED)
    done = logs.wait_for("worker done")
    await stack.start()
    event = await done
    assert threading.current_thread() is threading.main_thread()  # the log line reached the reactor thread
    worker = stack.plugin("worker")
    assert event["ucs_plugin"] == "worker"
    r = worker.results
    assert r["thread"] == "WorkerPluginThread"
    assert r["users"] == {1: "admin", 2: "alice", 3: "bob"}
    assert r["user"]["username"] == "alice"
    assert r["stored"] == r["read"] == {"a": 1}
    assert r["error"] == "MethodNotFound"
    # The callback it registered from its thread is called on the reactor thread.
    assert worker.changes == [("MainThread", "counts", {"a": 1})]
    await deferToThread(worker.join, 10)
    stack.bus.publish(EVENT_SHARED_CHANGE, "counts", data={"b": 2})
    assert worker.changes[-1] == ("MainThread", "counts", {"b": 2})


def test_hooks_run_in_threads_are_not_held_to_the_reactor_budget(logs: LogCapture) -> None:
    from twisted.internet import reactor

    now = [0.0]
    ctx = PluginContext(reactor, timer=lambda: now[0], budget=0.01)
    ucs = UCS(ctx, "t")

    def slow() -> str:
        now[0] += 1.0
        return "ok"

    timed = ucs._timed("status hook", slow)
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(timed()))
    thread.start()
    thread.join(10)
    assert result == ["ok"] and ucs.slow.count == 0
    assert timed() == "ok" and ucs.slow.count == 1  # on the reactor thread it counts


def test_a_thread_logging_faster_than_the_reactor_loses_its_oldest_lines_and_says_so(logs: LogCapture) -> None:
    class HeldReactor:
        """The reactor busy elsewhere: what threads hand over waits here."""

        def __init__(self) -> None:
            self.handed: list[Any] = []

        def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
            self.handed.append((f, args, kwargs))

    held = HeldReactor()
    log = UCS(PluginContext(held), "chatty").log
    limit = log.THREAD_BUFFER
    thread = threading.Thread(target=lambda: [log.info("line %d", i) for i in range(limit + 500)])
    thread.start()
    thread.join(10)
    assert len(held.handed) == 1  # one hand-over pending, not one per line
    f, args, kwargs = held.handed.pop()
    f(*args, **kwargs)
    mine = [e for e in logs.events if e.get("log_namespace") == "ucs.plugin.chatty"]
    assert "500 log lines from its threads were dropped" in mine[0]["log_format"].format(**mine[0])
    assert [e["text"] for e in mine[1:]] == [f"line {i}" for i in range(500, limit + 500)]
    log.info("after")  # the next line from a thread is handed over again
    thread = threading.Thread(target=lambda: log.info("from a thread again"))
    thread.start()
    thread.join(10)
    assert len(held.handed) == 1
