"""Plugins that misbehave in the whole server (issue 8), and the graceful shutdown.

- a bus callback that raises, and one that blocks the reactor thread past
  ``[plugins] hook_budget``: logged (with the plugin and the hook), counted in
  ``plugins.list``, and the server goes on — status changes still work;
- a status hook that raises, and one that blocks past its own budget: the
  requested change goes ahead, the traceback is logged;
- a plugin thread flooding ``ucs.log``: the reactor keeps up, statuses change;
- stopping the server stops the plugins, flushes the CDRs and closes the
  WebSocket sessions with a reason.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from faultkit import Faults
from serverkit import working_agent
from test_web_api import connect
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from ucs import demo
from ucs.constants import AgentStatus

RAISER = textwrap.dedent('''
    from events import EVENT_AGENT_STATUS

    UCS_PLUGIN = "Raiser"


    class Raiser:
        def __init__(self, ucs):
            self.ucs = ucs
            self.ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

        def changed(self, agent, args):
            raise RuntimeError("raiser: the CRM is down")

        def stop(self):
            self.ucs.shared.set("stopped.raiser", {"yes": True})
''')

BLOCKER = textwrap.dedent('''
    import threading
    from events import EVENT_AGENT_STATUS

    UCS_PLUGIN = "Blocker"


    class Blocker:
        def __init__(self, ucs):
            self.ucs = ucs
            self.ucs.addCallback(EVENT_AGENT_STATUS, self.changed)

        def changed(self, agent, args):
            threading.Event().wait(0.1)  # a synchronous HTTP request, on the reactor thread

        def stop(self):
            self.ucs.shared.set("stopped.blocker", {"yes": True})
''')

# The status hook: raises for AUX "Break", blocks (until the plugin stops) for AUX "Meeting".
GATE = textwrap.dedent('''
    import threading

    UCS_PLUGIN = "Gate"


    class Gate:
        def __init__(self, ucs):
            self.ucs = ucs
            self.release = threading.Event()
            self.ucs.agents.addChangeStatusHook(self.hook)

        def hook(self, agent, status, reason):
            if reason == "Break":
                raise ValueError("gate: cannot decide")
            if reason == "Meeting":
                self.release.wait(30)
            return status, reason

        def stop(self):
            self.release.set()
            self.ucs.agents.removeChangeStatusHook()
''')


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        text = formatEvent(event) or ""
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        lines.append(text)

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "raiser.py").write_text(RAISER)
    (d / "blocker.py").write_text(BLOCKER)
    (d / "gate.py").write_text(GATE)
    return d


@pytest_twisted.ensureDeferred
async def test_plugin_hooks_that_raise_or_block(tmp_path: Path, log_lines: list[str]) -> None:
    f = Faults(tmp_path, plugins={"directory": str(plugin_dir(tmp_path)), "hook_budget": 0.02})
    try:
        await f.start()
        server = f.ucs
        server.get_agents().hook.budget = 0.3  # the status hook's own budget (real seconds)
        reg, sessions = server.get_registry(), server.get_sessions()
        listed = await reg.call(sessions.system(), "plugins.list")
        assert sorted(p["name"] for p in listed if p["state"] == "running") == ["blocker", "gate", "raiser"]

        agent = await working_agent(server, 1)  # the status hook is consulted at login too
        await f.settle()
        # a callback raises, another blocks: the change is made all the same
        result = await reg.call(agent, "agent.changeStatus", ["AUX", "Lunch"])
        assert (result["status"], result["reason"]) == ("AUX", "Lunch")
        await f.settle()
        f.assert_in_step()
        assert any("raiser: the CRM is down" in line for line in log_lines)
        slow = [line for line in log_lines if "plugin blocker" in line and "reactor thread" in line]
        assert slow and "agent.status" in slow[0], slow
        listed = {p["name"]: p for p in await reg.call(sessions.system(), "plugins.list")}
        assert listed["blocker"]["slow_hooks"] >= 1 and listed["raiser"]["slow_hooks"] == 0

        # the status hook raises: the requested change goes ahead, the traceback is logged
        result = await reg.call(agent, "agent.changeStatus", ["AUX", "Break"])
        assert (result["status"], result["reason"]) == ("AUX", "Break")
        assert any("gate: cannot decide" in line for line in log_lines)
        # the status hook blocks past its budget: the change goes ahead after it
        result = await reg.call(agent, "agent.changeStatus", ["AUX", "Meeting"])
        assert (result["status"], result["reason"]) == ("AUX", "Meeting")
        await f.settle()
        f.assert_in_step()

        # the server goes on: calls are taken and tracked, statuses change
        result = await reg.call(agent, "agent.changeStatus", ["READY"])
        assert result["status"] == "READY"
        call = f.sim.caller_calls("5000", "420777000001", hangup_after=2)
        await f.advance(5)
        await server.get_cdr_writer().flushed()
        cdr = await (await server.when_store_open()).get_cdr(call.linkedid)
        assert cdr is not None and cdr["answered_by"] == "SIP/1001"
        (a,) = server.get_agents().all()
        assert a.status == AgentStatus.READY
        f.assert_in_step()
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_graceful_shutdown(tmp_path: Path, log_lines: list[str]) -> None:
    f = Faults(tmp_path, plugins={"directory": str(plugin_dir(tmp_path))})
    try:
        await f.start()
        server = f.ucs
        bar = await connect(server.get_web_service().ws_url)
        await bar.call("login", list(demo.user_of(1)))
        await bar.call("identifier", [demo.line_of(1)[1]])
        await bar.call("provision")
        anonymous = await connect(server.get_web_service().ws_url)  # not logged in
        await working_agent(server, 2)
        await f.settle()
        f.sim.caller_calls("5000", "420777000001", hangup_after=2)
        await f.advance(5)
        writer = server.get_cdr_writer()

        await f.stop()
        # the plugins were stopped (their stop() ran while the store was still open)
        assert server.get_shared().get("stopped.raiser") == {"yes": True}
        assert server.get_shared().get("stopped.blocker") == {"yes": True}
        # every WebSocket saw its session closed with a reason
        for c in (bar, anonymous):
            _clean, code, reason = await c.closed
            assert code == 1001 and reason == "UCS is shutting down"
        # the CDRs were flushed (test_faults_store: with one still queued when the stop begins)
        assert not writer.pending and writer.written == 1

        again = await f.start()
        stored = await (await again.when_store_open()).list_cdrs()
        assert len(stored) == 1 and stored[0]["answered_by"] in {"SIP/1001", "SIP/1002"}
        assert again.get_shared().get("stopped.raiser") == {"yes": True}  # saved before the store closed
    finally:
        await f.stop()
        f.close_clock()


FLOODER = textwrap.dedent('''
    import threading

    UCS_PLUGIN = "Flooder"


    class Flooder(threading.Thread):
        def __init__(self, ucs):
            super().__init__(daemon=True)
            self.ucs = ucs
            self.halt = threading.Event()
            self.lines = 0

        def run(self):
            while not self.halt.is_set():
                self.ucs.log.info("flood line %d", self.lines)
                self.lines += 1

        def stop(self):
            self.halt.set()
''')


@pytest_twisted.ensureDeferred
async def test_a_plugin_thread_flooding_the_log(tmp_path: Path, log_lines: list[str]) -> None:
    """A thread logging as fast as it can: the reactor keeps serving (what
    hands over to it does not pile up) and status changes go on."""
    from twisted.internet import reactor

    d = tmp_path / "plugins"
    d.mkdir()
    (d / "flooder.py").write_text(FLOODER)
    f = Faults(tmp_path, plugins={"directory": str(d)})
    try:
        await f.start()
        server = f.ucs
        reg = server.get_registry()
        agent = await working_agent(server, 1)
        backlog = 0
        for i in range(30):
            status = ["AUX", "Lunch"] if i % 2 == 0 else ["READY"]
            result = await reg.call(agent, "agent.changeStatus", status)
            assert result["status"] == status[0]
            backlog = max(backlog, len(reactor.threadCallQueue))  # type: ignore[attr-defined]
        await f.settle()
        f.assert_in_step()
        flood = sum(1 for line in log_lines if line.startswith("flood line"))
        assert flood > 1000, flood  # it did flood meanwhile
        # The reactor's queue from threads did not pile up: the plugin's lines wait in
        # a bounded buffer of its own, with one hand-over pending at a time.
        assert backlog < 20, backlog
    finally:
        await f.stop()
        f.close_clock()
